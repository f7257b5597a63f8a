"""Pulling patients and appointments from Cliniko's REST API into clients and visits.

``api`` talks HTTP (auth, paging, pacing, retries), ``mapping`` turns
Cliniko's records into rebook's rows (pure functions, each field cited),
``pull`` runs one sync: fetch into a private staging file, then write it in
one short transaction through ``campaigns.clients.writer``. rebook only
ever reads from Cliniko. May import ``config``, ``store``, ``clients`` and
``errors``; never ``delivery`` or ``content``.
"""
