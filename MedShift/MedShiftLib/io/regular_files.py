"""Opening inputs so that a FIFO, a device or a socket is refused instead of hanging the run.

Opening a FIFO for reading blocks until a writer comes, and inside SimpleITK's C++ readers neither Ctrl-C
nor SIGTERM reaches Python, so a run whose input was replaced by a FIFO hung until SIGKILL. Here the file
is opened with O_NONBLOCK (which never blocks, whatever the file is) and its type checked on the opened
descriptor (fstat), so what is checked is what was opened. `readable_path` then gives the libraries a
name for that very descriptor (a symbolic link, named like the input, to /proc/self/fd/N), so a FIFO
put in the input's place after the check is never opened. Where /proc is missing (not Linux) or the
temporary folder cannot take the link, and for a detached header (.nhdr/.mhd, whose data files are named
relative to it), the check is made on the input and each data file just before the library opens them by
name (a swap in that instant is not caught).
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputImageError
from .file_dependencies import detached_data_files
from .path_kinds import special_file_kind

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def open_regular_file(path: str | Path) -> int:
    """A read-only descriptor of `path`, opened without blocking; InputImageError unless it is a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise InputImageError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise InputImageError(f"{path}: cannot be opened ({exc.strerror or exc}); check the file") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = special_file_kind(mode) or ("a folder" if stat.S_ISDIR(mode) else "not a regular file")
        raise InputImageError(f"{path}: is {kind}, not an image file; give the image file itself")
    return fd


def check_regular_file(path: str | Path) -> None:
    """InputImageError unless `path` is a regular file (never blocks, see open_regular_file)."""
    os.close(open_regular_file(path))


def _link_to_descriptor(fd: int, name: str) -> Path | None:
    """A symbolic link `name` in a new private folder pointing at /proc/self/fd/FD, or None where it cannot be made."""
    proc = f"/proc/self/fd/{fd}"
    if not os.path.exists(proc):
        return None
    try:
        folder = tempfile.mkdtemp(prefix="medshift-read-")
    except OSError:
        return None
    link = Path(folder) / name  # the same name: libraries pick the format by its extension
    try:
        os.symlink(proc, link)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return link


@contextmanager
def readable_path(path: str | Path) -> Iterator[Path]:
    """A path to hand a library for reading `path`: one that names the regular file checked now."""
    path = Path(path)
    fd = open_regular_file(path)
    link = None
    try:
        if not path.name.lower().endswith((".nhdr", ".mhd")):
            link = _link_to_descriptor(fd, path.name)
        if link is None:  # a detached header, or no /proc (or no room in the temporary folder): check, then use
            for data_file in detached_data_files(path):
                check_regular_file(data_file)
        yield link or path
    finally:
        os.close(fd)
        if link is not None:
            shutil.rmtree(link.parent, ignore_errors=True)
