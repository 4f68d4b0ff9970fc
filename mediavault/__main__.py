"""``python -m mediavault``: the operator CLI."""

from mediavault.cli import app

app()
