"""Where each translation goes, decided for the whole run before any compute.

`plan_outputs` names every output (same name and format as its input, or `--format`'s; an extension-less
DICOM gets `.dcm`; a JPEG input a `.png` output, since JPEG is lossy and never written: format_change_note
says so), and refuses the whole run (OutputPlanError) when
* two inputs would be written to the same output (the names and both inputs are given),
* an output, or the data file a detached `.nhdr`/`.mhd` header writes, would land on any file an
  input is read from (its header or its detached data files, compared resolved and by inode),
* `--out` is not a folder that can be made and written to.
An output that exists already is skipped unless `overwrite` (a detached header's data file alone is not an
output: radiograph_files replaces such a leftover). `check_output_holds` then refuses, per
image and before its compute, a format that cannot hold the result (a float image into PNG/TIFF).
Outputs are finally created exclusively (radiograph_files.write_radiograph, overwrite=False), so a
concurrent run that writes the same name meanwhile makes this one fail for that file instead of losing
a result.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..atomic_files import check_writable_folder
from ..errors import InputImageError, MedShiftError
from ..io.file_dependencies import files_of_image, files_written_for
from ..io.radiograph import RadiographImage
from ..io.radiograph_files import SUPPORTED_EXTENSIONS, has_supported_extension, radiograph_format

OUTPUT_FORMATS: dict[str, str] = {"dicom": ".dcm", "nrrd": ".nrrd", "nifti": ".nii.gz", "mha": ".mha",
                                  "png": ".png", "tiff": ".tif", "bmp": ".bmp", "npy": ".npy"}
"""`--format` choices and the extension each gives the output."""
LOSSLESS_FOR_ANY_PIXELS = ("nrrd", "mha", "nifti")
PLAN_PROGRESS_EVERY = 1000


class OutputPlanError(MedShiftError):
    """The outputs of a run cannot be written as asked; nothing was computed."""


@dataclass(frozen=True)
class PlannedOutput:
    """One input, its output path, and why it is skipped (None: it is translated)."""

    input: Path
    output: Path
    skip_reason: str | None = None


def _stem(name: str) -> str:
    """The file name without its image extension (`.nii.gz` counted whole)."""
    lower = name.lower()
    for extension in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(extension):
            return name[: -len(extension)]
    return name


def output_name(input_path: Path, output_format: str | None = None) -> str:
    """The output's file name: the input's, with `output_format`'s extension when given; `.dcm` added to an
    extension-less DICOM (so the output's format is known)."""
    if output_format is not None:
        return _stem(input_path.name) + OUTPUT_FORMATS[output_format]
    input_format = radiograph_format(input_path)
    if input_format == "jpeg":
        return _stem(input_path.name) + OUTPUT_FORMATS["png"]
    if not has_supported_extension(input_path):
        return input_path.name + OUTPUT_FORMATS[input_format]
    return input_path.name


def format_change_note(plans: list[PlannedOutput]) -> str | None:
    """One line saying which inputs are written in another format than their own (JPEG as PNG), or None."""
    changed = [plan.input.name for plan in plans if radiograph_format(plan.input) == "jpeg"
               and radiograph_format(plan.output) == "png"]
    if not changed:
        return None
    names = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return (f"{names}: JPEG is lossy, so the translation is written as PNG (lossless); pass --format to choose "
            "another format")


def _check_folder(out_dir: Path) -> None:
    """OutputPlanError unless `out_dir` is a folder or can become one (nothing is created here)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPlanError(f"--out {out_dir} is a file, not a folder; give a folder for the outputs")
    ancestor = out_dir
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPlanError(f"--out {out_dir}: {ancestor} is a file, not a folder; give another --out")


class _ReadFiles:
    """Every file the inputs are read from, found by resolved path or by inode in constant time."""

    def __init__(self, files: list[Path]) -> None:
        self.by_path: dict[str, tuple[Path, Path]] = {}
        self.by_inode: dict[tuple[int, int], tuple[Path, Path]] = {}
        for source in files:
            for dependency in files_of_image(source):
                self.by_path.setdefault(str(dependency), (source, dependency))
                try:
                    status = os.stat(dependency)
                except OSError:
                    continue
                self.by_inode.setdefault((status.st_dev, status.st_ino), (source, dependency))

    def reader_of(self, written: Path, resolved: str, exists: bool) -> tuple[Path, Path] | None:
        """(input, file it is read from) when writing `written` (resolved: `resolved`) would land on it."""
        found = self.by_path.get(resolved)
        if found is None and exists:
            try:
                status = os.stat(written)
            except OSError:
                return None
            found = self.by_inode.get((status.st_dev, status.st_ino))
        return found


def _existing_entries(out_dir: Path) -> dict[str, bool]:
    """The names in `out_dir` (one listing), each with whether it is a symbolic link."""
    try:
        return {entry.name: entry.is_symlink() for entry in os.scandir(out_dir)}
    except OSError:
        return {}


def plan_outputs(files: list[Path], out_dir: str | Path, overwrite: bool = False,
                 output_format: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[PlannedOutput]:
    """Every input's output in `out_dir`; OutputPlanError when the run would overwrite an input or collide.

    Linear in the number of inputs (one listing of `out_dir`, look-ups by resolved path and inode);
    `progress(done, total)` hears every PLAN_PROGRESS_EVERY inputs and at the end. A detached header's data
    file without its header (left by a run killed between the two) is not an output: that input is translated."""
    out_dir = Path(out_dir)
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise OutputPlanError(f"unknown output format {output_format!r}; choose one of: {', '.join(OUTPUT_FORMATS)}")
    _check_folder(out_dir)
    read, entries = _ReadFiles(files), _existing_entries(out_dir)
    resolved_out = os.path.realpath(out_dir)
    plans, taken = [], {}
    for count, f in enumerate(files, start=1):
        output = out_dir / output_name(f, output_format)
        key = os.path.normcase(os.path.join(resolved_out, output.name))
        if key in taken:
            raise OutputPlanError(f"{taken[key]} and {f} would both be written to {output}; translate them into "
                                  "separate --out folders, or rename one")
        taken[key] = f
        for written in files_written_for(output):
            exists = written.name in entries
            resolved = os.path.realpath(written) if entries.get(written.name) else os.path.join(resolved_out,
                                                                                                 written.name)
            found = read.reader_of(written, resolved, exists)
            if found is not None:
                source, dependency = found
                what = "is the input" if dependency == Path(os.path.realpath(source)) else \
                    f"is a data file the input {source} is read from"
                raise OutputPlanError(f"output {written} {what}; choose another --out so no input is overwritten")
        reason = (f"{output} exists; pass --overwrite to replace it" if output.name in entries and not overwrite
                  else None)
        plans.append(PlannedOutput(f, output, reason))
        if progress is not None and (count % PLAN_PROGRESS_EVERY == 0 or count == len(files)):
            progress(count, len(files))
    return plans


def prepare_output_folder(out_dir: str | Path) -> Path:
    """Create `out_dir` and prove it writable (a probe file); OutputPlanError saying what to do otherwise."""
    out_dir = Path(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        reason = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                  errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
                  errno.EEXIST: "a file of that name exists", errno.ENOTDIR: "part of the path is a file"
                  }.get(exc.errno, exc.strerror or str(exc))
        raise OutputPlanError(f"cannot write into --out {out_dir} ({reason}); choose a folder you can write to") \
            from None
    return out_dir


def check_output_holds(image: RadiographImage, output: Path) -> None:
    """InputImageError (before any compute) when the output's format cannot hold this image's translation."""
    fmt = radiograph_format(output)
    if fmt == "bmp" and image.pixels.dtype not in ("uint8", "bool"):
        raise InputImageError(f"{output.name}: BMP holds only 8-bit pixels, but this image has {image.pixels.dtype} "
                              "pixels; use --format png or --format tiff")
    if fmt in ("png", "tiff") and image.pixels.dtype not in ("uint8", "uint16", "bool"):
        suggestion = " or ".join(f"--format {f}" for f in LOSSLESS_FOR_ANY_PIXELS)
        raise InputImageError(f"{output.name}: {fmt.upper()} holds only 8- or 16-bit unsigned pixels, but this image "
                              f"has {image.pixels.dtype} pixels; use {suggestion}")
