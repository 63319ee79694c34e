"""Every command's outputs planned against its inputs before anything is written (as `translate` plans its own).

A command names what it writes (files, and folders it writes new files into) and what it reads (files,
and folders such as a data set). `refuse_outputs_over_inputs` raises MedShiftError, before any work, when
* an output file is one of the input files (compared resolved, and by inode through a hard link), or
* an output file or folder is an input folder or lies inside one: writing there changes a data set that a
  later run reads (a JSON file over a manifest, a figure taken for a training image).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import MedShiftError
from .file_dependencies import files_of_image, same_file

DATA_FOLDER_OPTIONS = ("--data", "--train-data", "DATA_DIR")
Named = tuple[str, "str | Path | None"]
"""(option that named it, path); a None path (an option not given) is ignored."""


def _inside(path: str, folder: str) -> bool:
    """True when resolved `path` is `folder` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_outputs_over_inputs(output_files: Iterable[Named] = (), output_folders: Iterable[Named] = (),
                               input_files: Iterable[Named] = (), input_folders: Iterable[Named] = ()) -> None:
    """MedShiftError naming both options when an output would land on an input (see the module docstring)."""
    read_files = [(option, Path(path)) for option, path in input_files if path is not None]
    read_folders = [(option, os.path.realpath(path)) for option, path in input_folders if path is not None]
    for option, path in [*output_folders, *output_files]:
        if path is None:
            continue
        resolved = os.path.realpath(path)
        for source_option, folder in read_folders:
            if _inside(resolved, folder):
                what = "the data folder" if source_option in DATA_FOLDER_OPTIONS else "the folder"
                raise MedShiftError(f"{option} {path} is inside {what} {folder} ({source_option}), which this command "
                                    f"reads; writing there would change it: choose an {option} outside it")
    for option, path in output_files:
        if path is None:
            continue
        for source_option, source in read_files:
            if any(same_file(path, read) for read in files_of_image(source)):
                raise MedShiftError(f"{option} {path} is the file given as {source_option}; MedShift never "
                                    f"overwrites its input: choose another {option}")
