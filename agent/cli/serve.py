"""`mediavault serve` runs the review console; `mediavault reviewers` manages its accounts."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mediavault.agent.cli.options import HomeOption
from mediavault.graph.context import ConfigurationError, Context

err_console = Console(stderr=True, soft_wrap=True)  # paths and URLs stay on one line

reviewers_app = typer.Typer(
    help="Reviewer accounts for the review console (`mediavault serve`).",
    no_args_is_help=True,
)
#: Scripts may pass a new reviewer's password here instead of typing it.
PASSWORD_ENV = "MEDIAVAULT_REVIEWER_PASSWORD"

UsersFileOption = Annotated[
    Path | None,
    typer.Option(
        "--users-file",
        help="Reviewer accounts file (MEDIAVAULT_REVIEWERS_FILE; "
        "default: reviewers.json in the home directory).",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _context(home: Path | None, db: str | None = None, model: str | None = None) -> Context:
    try:
        return Context().with_overrides(home=home, db=str(db) if db else None, model=model)
    except ConfigurationError as problem:
        raise _fail(str(problem)) from None


def _users_file(home: Path | None, users_file: Path | None) -> Path:
    if users_file is not None:
        return users_file
    from mediavault.agent.web.settings import REVIEWERS_FILE_NAME

    configured = os.environ.get("MEDIAVAULT_REVIEWERS_FILE", "").strip()
    return Path(configured) if configured else _context(home).home / REVIEWERS_FILE_NAME


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Only this machine can connect unless you change it.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    home: HomeOption = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Business database: a SQLite file or a postgresql:// DSN."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="`rules` or `openai:<model>`; drafts revised after a reject are written by it.",
        ),
    ] = None,
    user_header: Annotated[
        str | None,
        typer.Option(
            "--user-header",
            help="Trust this header from a reverse proxy on a trusted "
            "address as the signed-in reviewer "
            "(MEDIAVAULT_WEB_USER_HEADER).",
        ),
    ] = None,
) -> None:
    """Run the review console: a web page where reviewers decide on the agent's drafts.

    It listens on 127.0.0.1 (this machine only) unless --host says otherwise.
    """
    context = _context(home, db, model)
    try:
        from mediavault.agent.web.accounts import AccountError, ReviewerAccounts
        from mediavault.agent.web.app import create_app
        from mediavault.agent.web.settings import ConsoleSettings
    except ImportError as problem:  # pragma: no cover - only without the web dependencies
        raise _fail(
            f"the review console needs its web dependencies ({problem.name}); "
            "reinstall with `pip install -e .`"
        ) from None
    try:
        settings = ConsoleSettings.from_env(context, host=host, user_header=user_header)
        names = ReviewerAccounts(settings.reviewers_path).names()
    except (ConfigurationError, AccountError, OSError) as problem:
        raise _fail(str(problem)) from None
    if not names and not settings.user_header:
        raise _fail(
            f"no reviewer accounts in {settings.reviewers_path}; create one with "
            "`mediavault reviewers add NAME`"
        )
    if not _is_loopback(host):
        err_console.print(
            f"[yellow]warning:[/yellow] listening on {host}: other machines can reach the "
            "console. Serve it behind a TLS proxy, set MEDIAVAULT_WEB_SECURE_COOKIES=1 and "
            "list its public name in MEDIAVAULT_WEB_ALLOWED_HOSTS.",
            highlight=False,
        )
    import uvicorn

    from mediavault.agent.mail.outbox import remove_abandoned_partial_replies

    remove_abandoned_partial_replies(context.outbox_path)  # left by a killed console
    err_console.print(
        f"Review console for {context.home} at http://{host}:{port}/ "
        f"({len(names)} reviewer account(s)); Ctrl+C stops it.",
        highlight=False,
    )
    # One worker: decisions on one case are serialised inside this process. proxy_headers
    # off: the trusted-proxy check must see the real peer address, not X-Forwarded-For.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        workers=1,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )


def _read_password(password_stdin: bool) -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first: str = typer.prompt("Password", hide_input=True)
    second: str = typer.prompt("Repeat the password", hide_input=True)
    if first != second:
        raise _fail("the passwords differ")
    return first


@reviewers_app.command("add")
def add_reviewer_command(
    name: Annotated[str, typer.Argument(help="Reviewer name (letters, digits, . _ @ -).")],
    home: HomeOption = None,
    users_file: UsersFileOption = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from standard input "
            f"instead of prompting (or set {PASSWORD_ENV}).",
        ),
    ] = False,
) -> None:
    """Create a reviewer account, or set a new password for an existing one.

    The password is prompted for, read with --password-stdin, or taken from
    MEDIAVAULT_REVIEWER_PASSWORD; only its argon2id hash is stored.
    """
    from mediavault.agent.web.accounts import AccountError, add_reviewer

    path = _users_file(home, users_file)
    try:
        created = add_reviewer(path, name, _read_password(password_stdin))
    except (AccountError, OSError) as problem:
        raise _fail(str(problem)) from None
    what = "created" if created else "password changed"
    typer.echo(f"reviewer {name}: {what} ({path})")


@reviewers_app.command("remove")
def remove_reviewer_command(
    name: Annotated[str, typer.Argument(help="Reviewer name.")],
    home: HomeOption = None,
    users_file: UsersFileOption = None,
) -> None:
    """Delete a reviewer account; their open sessions end on their next request."""
    from mediavault.agent.web.accounts import AccountError, remove_reviewer

    path = _users_file(home, users_file)
    try:
        removed = remove_reviewer(path, name)
    except (AccountError, OSError) as problem:
        raise _fail(str(problem)) from None
    if not removed:
        raise _fail(f"no reviewer {name!r} in {path}", code=1)
    typer.echo(f"reviewer {name}: removed ({path})")


@reviewers_app.command("list")
def list_reviewers_command(
    home: HomeOption = None,
    users_file: UsersFileOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the accounts (name, created_at) as JSON.")
    ] = False,
) -> None:
    """List the reviewer accounts."""
    from mediavault.agent.web.accounts import AccountError, reviewer_list

    path = _users_file(home, users_file)
    try:
        accounts = reviewer_list(path)
    except (AccountError, OSError) as problem:
        raise _fail(str(problem)) from None
    if as_json:
        typer.echo(json.dumps(accounts, indent=2))
        return
    names = [str(account["name"]) for account in accounts]
    for name in names:
        typer.echo(name)
    if not names:
        err_console.print(f"no reviewer accounts in {path}", highlight=False)
