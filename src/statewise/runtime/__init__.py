"""The durable runtime: load, decide, commit, act made safe on a real database.

``Runtime(machine, store, actions=registry)`` keeps entities in a store (SQLite by
default, PostgreSQL for many worker processes), applies events exactly once, and runs
actions after the commit through an outbox, at least once, with idempotency keys.
"""
