"""What stands at a path that is neither a regular file nor a folder, in words (for one-line errors)."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

SPECIAL_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                      (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def special_file_kind(mode: int) -> str | None:
    """'a FIFO (named pipe)', 'a socket', 'a character device' or 'a block device' for such a file's mode, else None."""
    return next((kind for test, kind in SPECIAL_FILE_KINDS if test(mode)), None)


def describe_unusable_path(path: str | Path, wanted: str = "image file", missing: str = "file or folder") -> str:
    """Why `path` is no file or folder to read, and what to do: 'no such file or folder; check the path',
    'is a FIFO (named pipe), not an image file; ...', 'is a symbolic link loop; ...'.

    `wanted` names what the path should be ("data folder": '..., not a data folder; give the data folder
    itself'), `missing` what is not there when nothing is ("data folder": 'no such data folder; ...')."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"is a symbolic link loop (its links lead back to themselves); give the {wanted} itself"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"is a broken symbolic link (to {os.readlink(path)}, which does not exist); check the link"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be looked at (permission denied); ask for read permission"
        if exc.errno == errno.ENOTDIR:
            return "no such file or folder (part of the path is a file); check the path"
        return f"no such {missing}; check the path"
    kind = special_file_kind(mode)
    if kind is not None:
        article = "an" if wanted[:1] in ("a", "e", "i", "o", "u") else "a"
        return f"is {kind}, not {article} {wanted}; give the {wanted} itself"
    if stat.S_ISDIR(mode):
        return "is a folder"
    return "is a file"
