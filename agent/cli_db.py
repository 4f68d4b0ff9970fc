"""`mediavault db ...`: build and describe the business database."""

from __future__ import annotations

import typer

db_app = typer.Typer(help="Build and inspect the business database.", no_args_is_help=True)
