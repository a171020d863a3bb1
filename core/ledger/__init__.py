"""The durable trade ledger: the bus's trade events in a database (PostgreSQL, or SQLite embedded)."""
