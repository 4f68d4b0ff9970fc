"""Where outcomes live: the case store (SQLite or Postgres), checkpoints and the audit log."""
