"""Which files an image file is made of: its own, plus the data files a detached header names.

A NRRD header (`.nhdr`) names its pixel data with `data file:` (one file, a `LIST` of files on the
following lines, or a printf pattern with a range); a MetaImage header (`.mhd`) with `ElementDataFile`
(one file, `LIST`, a pattern, or `LOCAL` for data in the header file itself). Relative names are
relative to the header's folder. Writing over any of these destroys the input, so the translation
refuses outputs that land on one (pipeline/output_plan.py, radiograph_files.write_radiograph).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MAX_HEADER_BYTES = 1024 * 1024
MAX_PATTERN_FILES = 100_000
_NRRD_KEY = re.compile(r"^data ?file\s*:\s*(.*)$", re.IGNORECASE)
_META_KEY = re.compile(r"^ElementDataFile\s*=\s*(.*)$")


def _header_lines(path: Path) -> list[str]:
    """The text lines of the first MAX_HEADER_BYTES of a file ([] when it cannot be read or is no regular file).

    Opened without blocking and checked on the descriptor, so a FIFO named like a header never hangs the run."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        with os.fdopen(os.dup(fd), "rb") as handle:
            text = handle.read(MAX_HEADER_BYTES).decode("latin-1")
    except OSError:
        return []
    finally:
        os.close(fd)
    return text.splitlines()


def _pattern_files(value: str) -> list[str] | None:
    """The names of a `pattern min max step` data-file value, or None when it is not one."""
    parts = value.split()
    if len(parts) < 4 or "%" not in parts[0]:
        return None
    try:
        first, last, step = (int(p) for p in parts[1:4])
    except ValueError:
        return None
    if step == 0:
        return None
    numbers = range(first, last + (1 if step > 0 else -1), step)
    if len(numbers) > MAX_PATTERN_FILES:
        return None
    try:
        return [parts[0] % n for n in numbers]
    except (TypeError, ValueError):
        return None


def _named_files(lines: list[str], key: re.Pattern, stop_at_blank: bool) -> list[str]:
    """Data file names after `key` in header lines (a single name, a LIST, or a pattern)."""
    for index, line in enumerate(lines):
        if stop_at_blank and not line.strip():
            break
        match = key.match(line.strip())
        if not match:
            continue
        value = match.group(1).strip()
        if value.upper() == "LOCAL" or not value:
            return []
        if value.split()[0].upper() == "LIST":
            return [name.strip() for name in lines[index + 1:] if name.strip()]
        return _pattern_files(value) or [value]
    return []


def detached_data_files(path: str | Path) -> list[Path]:
    """The data files a `.nhdr` or `.mhd` header names (resolved paths); [] for any other file."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".nhdr"):
        names = _named_files(_header_lines(path), _NRRD_KEY, stop_at_blank=True)
    elif name.endswith(".mhd"):
        names = _named_files(_header_lines(path), _META_KEY, stop_at_blank=False)
    else:
        return []
    return [Path(os.path.realpath(path.parent / n)) for n in names]


def files_of_image(path: str | Path) -> list[Path]:
    """Every file an image is read from: the file itself (resolved) and its detached data files."""
    return [Path(os.path.realpath(path)), *detached_data_files(path)]


def files_written_for(path: str | Path) -> list[Path]:
    """The files write_radiograph creates for `path`: the file, plus the data file of a `.nhdr`/`.mhd` header."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".nhdr"):
        return [path, path.with_name(path.name[: -len(".nhdr")] + ".raw.gz")]
    if name.endswith(".mhd"):
        return [path, path.with_name(path.name[: -len(".mhd")] + ".zraw")]
    return [path]


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when two paths name the same file (resolved, or the same inode through a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
