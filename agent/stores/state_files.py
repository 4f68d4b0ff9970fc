"""The state directory's files: private to their owner, and only ever regular files.

Cases, checkpoints, the audit log, the outbox and the demo database hold customers' personal
data, so everything MediaVault creates in ``MEDIAVAULT_HOME`` is readable by its owner only:
folders 0700, files 0600 (SQLite gives its ``-wal`` and ``-shm`` files the mode of the main
file). State left by older versions with looser modes is tightened when it is next opened.

A state path that is a FIFO, a device or a socket (or a symlink to one) would hang a run or
read endless bytes; it is refused with a :class:`ConfigurationError` that names it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from mediavault.graph.context import ConfigurationError, Context

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def describe_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words (``a FIFO (named pipe)``, ``a folder`` ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()  # follows symlinks: a link to /dev/zero is a character device
    except FileNotFoundError:
        return None


def require_regular_file(path: Path, what: str = "state file") -> None:
    """Refuse ``path`` when it exists and is not a regular file (a symlink to one is fine)."""
    found = _stat(path)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise ConfigurationError(
            f"{what} {path} is {describe_kind(found.st_mode)}, not a regular file; move it "
            "away (MediaVault reads and writes only regular files)"
        )


def private_dir(path: Path, what: str = "state folder") -> Path:
    """Create ``path`` as a 0700 folder, or tighten it to 0700; refuse anything but a folder."""
    found = _stat(path)
    if found is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR_MODE)
        found = _stat(path)
        if found is None:  # pragma: no cover - removed between the two calls
            raise ConfigurationError(f"{what} {path} vanished while it was created")
    if not stat.S_ISDIR(found.st_mode):
        raise ConfigurationError(
            f"{what} {path} is {describe_kind(found.st_mode)}, not a folder"
        )
    _tighten(path, found, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path, what: str = "state file") -> Path:
    """Create ``path`` empty with mode 0600 if missing (so that SQLite never creates it with the
    umask's mode), or tighten an existing one; refuse anything but a regular file."""
    found = _stat(path)
    if found is None:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        found = _stat(path)
        if found is None:  # pragma: no cover - removed between the two calls
            return path
    if not stat.S_ISREG(found.st_mode):
        raise ConfigurationError(
            f"{what} {path} is {describe_kind(found.st_mode)}, not a regular file; move it "
            "away (MediaVault reads and writes only regular files)"
        )
    _tighten(path, found, PRIVATE_FILE_MODE)
    return path


def _tighten(path: Path, found: os.stat_result, mode: int) -> None:
    if stat.S_IMODE(found.st_mode) & ~mode and found.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(found.st_mode) & mode)


def check_state_paths(context: Context) -> None:
    """Refuse state paths that are FIFOs, devices or sockets, creating nothing (for commands
    that only read: a mistyped ``--home`` must not leave a folder behind)."""
    found = _stat(context.home)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise ConfigurationError(
            f"MEDIAVAULT_HOME {context.home} is {describe_kind(found.st_mode)}, not a folder")
    if found is not None:
        _check_files(context, tighten=False)


def prepare_home(context: Context) -> Path:
    """The context's state folder, private, with its state files checked.

    Creates ``home`` (0700), tightens the folder, the outbox and the files an older version
    left readable by others, and refuses a state path that is a FIFO, a device or a socket.
    """
    home = private_dir(context.home, "MEDIAVAULT_HOME")
    _check_files(context, tighten=True)  # a dozen stat calls: cheap enough to do every time
    return home


def _check_files(context: Context, *, tighten: bool) -> None:
    for path in (context.checkpoint_path, context.cases_path, context.audit_path):
        for companion in (path, path.with_name(path.name + "-wal"),
                          path.with_name(path.name + "-shm"),
                          path.with_name(path.name + ".head")):
            require_regular_file(companion)
            found = _stat(companion)
            if tighten and found is not None:
                _tighten(companion, found, PRIVATE_FILE_MODE)
    if not context.db_is_server:
        require_regular_file(context.db_path, "business database")
        found = _stat(context.db_path)
        if tighten and context.db is None and found is not None:  # the demo database: ours
            _tighten(context.db_path, found, PRIVATE_FILE_MODE)
    if tighten and context.outbox_path.exists():
        private_dir(context.outbox_path, "outbox")
