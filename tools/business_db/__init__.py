"""The business database: SQL guard, scoped sessions (SQLite, Postgres), demo data, dates."""
