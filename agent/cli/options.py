"""Options shared by the `mediavault` commands, so each means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="State directory (MEDIAVAULT_HOME).")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Business database: SQLite file or postgresql:// DSN.")
]
ModelOption = Annotated[str | None, typer.Option("--model", help="`rules` or `openai:<model>`.")]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Business date (YYYY-MM-DD).")]
ReviewOption = Annotated[
    str | None, typer.Option("--review", help="all, none, or reason codes that need review.")
]
