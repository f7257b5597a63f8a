"""The clinic's clients and visits: importing exports, segments as SQL, sample data.

Owns ``importer``, ``csv_file`` and ``csv_rows`` (exports in), ``segments`` (rules to one
query), ``lookup`` (a client and their visits, read for a message) and
``sample``. May import ``store``, ``config`` and the plain views of ``content.context``.
"""
