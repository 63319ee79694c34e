"""Writing files through a temporary name in the same folder and renaming, so a crash never leaves half a file.

The finished file gets the permissions a plain open() would give it (0666 less the umask), or keeps
those of the file it replaces; the private 0600 of the temporary file is not left behind. The temporary
file is flushed to disk (fsync) before the rename and the folder after it, so a power cut leaves the old
file or the new one, never an empty one.

With `overwrite=False` the finished file is created exclusively (a hard link, which fails when the name
exists), so two processes writing the same name never lose a result silently: the second one gets
FileExistsError.

Temporary names carry this machine's tag and the writing process's id (`temporary_prefix`). A process
killed with SIGKILL cannot remove its own, so the first write into a folder removes those whose
process no longer runs on this machine (`sweep_stale_temporaries`); SIGTERM is turned into an
exception by the command line (cli_errors.py), so the `finally` below removes them on the way out.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_MARK = ".medshift-"
_HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY_NAME = re.compile(r"^\..*\.medshift-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-")
_swept: set[str] = set()
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)


def temporary_prefix(name: str) -> str:
    """Prefix of this process's temporary names for `name`: `.NAME.medshift-HOST-PID-`."""
    return f".{name}{TEMPORARY_MARK}{_HOST_TAG}-{os.getpid()}-"


def _process_running(pid: int) -> bool:
    """True when a process with this id runs on this machine (or cannot be checked)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove temporary files and folders in `folder` left by MedShift processes of this machine that have ended."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY_NAME.match(entry.name)
        if not match or match["host"] != _HOST_TAG or _process_running(int(match["pid"])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _sweep_once(folder: Path) -> None:
    """Sweep `folder` the first time this process writes into it."""
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        sweep_stale_temporaries(folder)


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | Path, path: str | Path, overwrite: bool = True) -> None:
    """Move the finished file `tmp` to `path`: replacing it, or (overwrite=False) only if `path` does not exist.

    The exclusive move raises FileExistsError when `path` exists, also when another process creates it
    meanwhile (a hard link; where the file system has none, a check and a rename)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):  # no hard links here: a check and a rename (a small race window remains)
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def publish_folder(temp_folder: Path, path: Path, overwrite: bool = True) -> None:
    """Move every file written into `temp_folder` beside `path`, the one named like `path` last.

    Used for a header and its detached data file: the header appears only once its data is in place.
    overwrite=False creates each exclusively (FileExistsError when one exists), except a data file whose
    header does not exist: that is the leftover of a run killed between the two moves, not an output, and
    is replaced. The files this call created are removed again when a later one cannot be moved."""
    last = temp_folder / path.name
    header_exists = os.path.lexists(path)
    created: list[Path] = []
    try:
        for file in [f for f in sorted(temp_folder.iterdir()) if f != last] + [last]:
            fsync_file(file)
            destination = path.parent / file.name
            leftover = file != last and not header_exists and os.path.lexists(destination)
            publish(file, destination, overwrite or leftover)
            if not leftover:
                created.append(destination)
    except BaseException:
        if not overwrite:
            for destination in created:
                destination.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


@contextmanager
def atomic_target(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it becomes `path`, on error it is removed.

    overwrite=False refuses (FileExistsError) when `path` exists by the time the file is finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode_for(path))
        fsync_file(tmp)
        publish(tmp, path, overwrite)
        fsync_folder(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def temporary_folder(beside: str | Path) -> Iterator[Path]:
    """A private folder beside `beside` (same file system, so its files can be renamed into place), removed after."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(beside.parent)
    folder = Path(tempfile.mkdtemp(prefix=temporary_prefix("write"), dir=beside.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and prove that files can be created in it (OSError saying why otherwise)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _sweep_once(folder)
    with tempfile.NamedTemporaryFile(prefix=temporary_prefix("probe"), dir=folder):
        pass
    return folder


def _mode_for(path: Path) -> int:
    """Permission bits for the finished file: those of the file it replaces, else 0666 less the umask."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomically(path: str | Path, data: bytes, overwrite: bool = True) -> Path:
    """Write `data` to `path` atomically (overwrite=False: only when `path` does not exist yet)."""
    with atomic_target(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)
