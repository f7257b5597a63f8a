"""Sending: who gets a run, the exactly-once ledger, the transports, retries and bounces.

Owns ``run`` (a campaign run), ``pipeline`` and ``workers`` (one process's
part, and helper processes), ``audience``, ``ledger`` and ``committer``,
``transports/`` (SMTP and Maildir), ``ratelimit``, ``history`` and ``forget``
(erasing a client on request). The only package that talks to a transport;
it may import every other part of ``campaigns``.
"""
