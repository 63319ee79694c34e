"""What stands at a path that is neither a regular file nor a folder, in words (for one-line errors)."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_SPECIAL = ((stat.S_ISFIFO, "is a FIFO (named pipe), not an image file"),
            (stat.S_ISSOCK, "is a socket, not an image file"),
            (stat.S_ISCHR, "is a character device, not an image file"),
            (stat.S_ISBLK, "is a block device, not an image file"))


def describe_unusable_path(path: str | Path) -> str:
    """Why `path` is no file or folder to read, and what to do: 'no such file or folder; check the path',
    'is a FIFO (named pipe), not an image file; ...', 'is a symbolic link loop; ...'."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (its links lead back to themselves); give the image file itself"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"is a broken symbolic link (to {os.readlink(path)}, which does not exist); check the link"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be looked at (permission denied); ask for read permission"
        if exc.errno == errno.ENOTDIR:
            return "no such file or folder (part of the path is a file); check the path"
        return "no such file or folder; check the path"
    for test, what in _SPECIAL:
        if test(mode):
            return f"{what}; give the image file itself"
    if stat.S_ISDIR(mode):
        return "is a folder"
    return "is a file"
