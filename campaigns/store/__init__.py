"""The database: the schema, opening and upgrading it, and the SQL helpers of the hot paths.

Owns ``tables`` (the one schema), ``database`` (engines, Alembic upgrades on start),
``migrations/``, ``prepared`` and ``upsert``, ``secrets`` (keys kept in the database) and
``forgotten`` (keyed hashes of forgotten clients). Imports nothing of rebook's but
``config`` and ``errors``: everything else builds on it.
"""
