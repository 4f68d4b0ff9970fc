"""`mediavault sql`: run a query exactly as the agent would, for a given sender."""

from __future__ import annotations

import typer


def sql_command(query: str = typer.Argument(..., help="A SELECT statement.")) -> None:
    """Run QUERY through the agent's gate, SQL guard and sender scoping."""
    raise typer.Exit(2)
