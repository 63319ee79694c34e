"""Writing an image with SimpleITK and proving it arrived whole, before it is published under its name.

SimpleITK's writers do not all report a failed write: on a full disk (or past `ulimit -f`) the NIfTI
writer prints "wrote only 0 of N bytes" and returns, the compressed NRRD and the PNG writers can cut the
file short without an error. So `write_itk_checked` reads every file it wrote back and compares its pixels
with those it was given; a file that is not whole is an error, never an output. The operating system's
reason (a full disk, a file-size limit) is found by writing as many bytes again from Python, which does
report it (`disk_refusal`), so the caller can stop a batch on a full disk with one plain line; what the
writers print on standard error themselves is not shown.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..atomic_files import temporary_prefix
from ..errors import MedShiftError
from .itk_files import itk_error_text, sitk

_PROBE_CHUNK = 1 << 20


def disk_refusal(folder: Path, size: int) -> OSError | None:
    """The OSError the system gives when `size` bytes are written into `folder` (None when they fit)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=temporary_prefix("probe"), dir=folder)
    except OSError as exc:
        return exc
    try:
        zeros, left = bytes(min(max(size, 1), _PROBE_CHUNK)), max(size, 1)
        while left > 0:
            left -= os.write(fd, zeros[:left])
        os.fsync(fd)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
        os.unlink(probe)
    return None


def _failed(target: Path, final_path: Path, fmt: str, size: int, why: str) -> Exception:
    """The error for a file that did not arrive whole: the system's reason (OSError) when there is one."""
    refusal = disk_refusal(target.parent, size)
    if refusal is not None and refusal.errno is not None:
        return OSError(refusal.errno, os.strerror(refusal.errno), str(final_path))
    return MedShiftError(f"{final_path}: the {fmt.upper()} file could not be written whole ({why}); "
                         "check the disk, or choose another --out")


def _same_pixels(written: np.ndarray, read: np.ndarray, rows_at_once: int = 256) -> bool:
    """True when two pixel arrays hold the same values (NaN equal to NaN), compared a block of rows at a time
    (no whole-image temporary)."""
    if written.shape != read.shape or written.dtype != read.dtype:
        return False
    flat_written, flat_read = written.reshape(-1, *written.shape[-1:]), read.reshape(-1, *read.shape[-1:])
    nan_equal = written.dtype.kind == "f"
    return all(np.array_equal(flat_written[k:k + rows_at_once], flat_read[k:k + rows_at_once], equal_nan=nan_equal)
               for k in range(0, flat_written.shape[0], rows_at_once))


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Within the block, what C/C++ code prints on standard error (file descriptor 2) goes to the null device."""
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (a GUI without a console)
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def write_itk_checked(image, target: Path, final_path: Path, fmt: str, compress: bool = False) -> None:
    """Write `image` to `target` with SimpleITK, then read it back: an error unless every pixel came back.

    Raises OSError (with the system's errno, e.g. ENOSPC, EFBIG, naming `final_path`) when the disk refused
    the bytes, else MedShiftError; the caller removes `target` (it is a temporary)."""
    pixels = sitk.GetArrayViewFromImage(image)
    size = int(pixels.nbytes) + 4096
    try:
        with _native_stderr_silenced():  # the writers' own lines ("wrote only 0 of N bytes"): ours says it once
            sitk.WriteImage(image, str(target), useCompression=compress)
    except RuntimeError as exc:
        raise _failed(target, final_path, fmt, size, itk_error_text(exc)) from None
    try:
        back_image = sitk.ReadImage(str(target))  # kept alive while its pixels are viewed (no numpy copy)
    except RuntimeError as exc:
        raise _failed(target, final_path, fmt, size, f"it reads back damaged: {itk_error_text(exc)}") from None
    if not _same_pixels(pixels, sitk.GetArrayViewFromImage(back_image)):
        raise _failed(target, final_path, fmt, size, "its pixels read back different")
