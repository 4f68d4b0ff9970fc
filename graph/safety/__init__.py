"""The safety check: what a reader sees of an email, and the risk rules applied to it."""
