"""Options shared by the `mediavault` commands, so each means the same everywhere."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule
from rich.segment import Segment
from rich.text import Text

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

#: Width for output that is not a terminal (a file, a pipe, a test): wide enough that no table
#: cell is folded in the middle of a word. Tables take only the width their content needs.
NON_TERMINAL_WIDTH = 1000


def wide_console(*, stderr: bool = False) -> Console:
    """The console a command prints data to.

    A terminal gets its own width; anything else gets full-width tables and unwrapped lines
    (rich would otherwise fold every table at 80 columns, mid-word, for a file or a pipe).
    """
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if console.is_terminal:
        return console
    return _PlainConsole(stderr=stderr, highlight=False, soft_wrap=True, width=NON_TERMINAL_WIDTH)


class _PlainConsole(Console):
    """A console for files and pipes: table rows end where their text ends."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # Rich pads every table row to the table's width; in a file that is trailing blanks.
        text = super()._render_buffer(buffer)
        return "\n".join(line.rstrip() for line in text.split("\n"))


def section_rule(console: Console, title: str) -> None:
    """A section heading: a rule across a terminal, a plain line elsewhere."""
    if console.is_terminal:
        console.print(Rule(title))
    else:
        console.print(Text(f"── {title} ──"))
