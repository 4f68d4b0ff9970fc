"""How every `mediavault` command reports a problem: one red line on stderr, then an exit code.

Never a traceback, never markup: the message is printed as plain text with control and
bidirectional-format characters made visible, since it may quote a file name or an email.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from mediavault.graph.context import ConfigurationError, Context

#: A bad invocation, path or setting (Click's own usage errors exit 2 as well).
EXIT_USAGE = 2


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN``.

    Line breaks and tabs are kept when asked, else they become spaces: a reason or message
    written on two lines reads as one line, not as ``\\x0a``. Every other control character
    (an escape sequence, a bidi override) stays visible as its code.
    """
    out = []
    for char in text:
        if char in "\n\t\r":
            out.append(char if keep_newlines and char != "\r" else " ")
        elif ord(char) < 32 or 127 <= ord(char) < 160 or char in "\u2028\u2029":
            out.append(f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _one_line(message: str) -> str:
    # Format characters too (U+202E would reverse the rest of the line on a terminal).
    return "".join(f"\\u{ord(char):04x}" if unicodedata.category(char) == "Cf" else char
                   for char in printable(message))


def fail(message: str, code: int = EXIT_USAGE, *, prefix: str = "error: ") -> NoReturn:
    """Print ``message`` as one red line on stderr and end the command with exit ``code``."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text(f"{prefix}{_one_line(message)}", style="bold red"))
    raise typer.Exit(code)


def context_for(home: Path | None, **overrides: object) -> Context:
    """The settings for an operator command; a bad setting is one error line and exit 2.

    The state paths are checked too (owner-only folders and files, see
    :mod:`~mediavault.agent.stores.state_files`), before the command touches them.
    """
    from mediavault.agent.stores.state_files import check_state_paths

    try:
        context = Context().with_overrides(home=home, **overrides)
        check_state_paths(context)
    except ConfigurationError as problem:
        fail(str(problem))
    return context
