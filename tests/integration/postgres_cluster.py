"""A throwaway PostgreSQL cluster for the integration tests.

``initdb`` into a fresh temporary directory, a unix socket in that directory (no TCP), the
server run as the ``postgres`` OS user when the tests run as root (the server refuses to run
as root), a free port number, and everything removed again by :meth:`PostgresCluster.stop`.
One cluster serves a whole test session; each test that writes gets its own database.

When ``CI=true`` a missing PostgreSQL installation is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

#: Where Debian/Ubuntu put the server binaries; MEDIAVAULT_PG_BIN overrides.
DEFAULT_BIN_DIRS = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)
SERVER_USER = "postgres"


def find_server_binaries() -> Path | None:
    """The directory holding initdb, postgres and pg_ctl, or None."""
    candidates = [os.environ.get("MEDIAVAULT_PG_BIN", ""), *DEFAULT_BIN_DIRS]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def require_server_binaries() -> Path:
    """The server binaries; a failure when CI=true and they are missing, else a skip."""
    found = find_server_binaries()
    if found is not None:
        return found
    message = (
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL or set "
        "MEDIAVAULT_PG_BIN"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (needed when CI=true)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One running throwaway cluster; superuser ``postgres``, trust auth on its socket only."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Short path: a unix socket path may not exceed ~107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="mvpg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._databases = 0

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def start(self) -> PostgresCluster:
        if self._as_root:
            shutil.chown(self.root, user=SERVER_USER, group=None)
        self.root.chmod(0o755)
        done = self._run(
            self.bin_dir / "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.socket_dir}'",
                # A throwaway cluster: durability is not worth the time.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=60",
            ]
        )
        started = self._run(
            self.bin_dir / "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postgres did not start: {started.stderr.strip()}\n{log}")
        return self

    def stop(self) -> None:
        if self.data_dir.exists():
            self._run(
                self.bin_dir / "pg_ctl",
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A libpq URL for the cluster's socket."""
        return (
            f"postgresql://{quote(user)}@/{quote(dbname)}"
            f"?host={quote(str(self.socket_dir))}&port={self.port}"
        )

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its name."""
        import psycopg

        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# One cluster per test session, whichever test module asks first. Each module declares its
# own `pg_cluster` fixture that calls this (a conftest.py in this folder would shadow
# tests/conftest.py, which unit test modules import by name).
_SHARED: PostgresCluster | None = None


def shared_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    """The session's running cluster (superuser ``postgres``), started on first use."""
    global _SHARED
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = "psycopg is missing: install the postgres extra (pip install -e '.[postgres]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (needed when CI=true)")
        pytest.skip(message)
    if _SHARED is None:
        cluster = PostgresCluster(require_server_binaries()).start()
        _SHARED = cluster

        def stop() -> None:
            global _SHARED
            _SHARED = None
            cluster.stop()

        # Registered on the session, so the cluster outlives the module that started it.
        request.session.config.add_cleanup(stop)
    return _SHARED
