"""Mail in and out: inbox adapters (CSV, .eml, mbox, Maildir) and the outbox of approved replies."""
