"""Packages MedShift imports only where a file format or feature needs them.

The translation path (and training's reading of PNG, TIFF or .npy data folders) imports only torch,
numpy, scipy and safetensors when it starts, so a GPU machine without SimpleITK, pydicom, POT, xraydb, matplotlib
or tqdm runs it; each format or feature imports its package when first used, and a missing one gives a
one-line MissingPackageError with the pip command. Progress bars are optional: without tqdm none is shown.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .errors import MissingPackageError


def import_optional(module: str, needed_for: str, pip_name: str | None = None) -> ModuleType:
    """The module `module`, imported now; MissingPackageError (one line, with the pip command) when it is absent.

    The translation path imports only torch, numpy, scipy and safetensors at start; each file format or
    feature that needs another package imports it through here when it is used.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = pip_name or module
        missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None
        why = "is not installed" if missing and exc.name.split(".")[0] == module.split(".")[0] else \
            f"cannot be imported ({exc})"
        raise MissingPackageError(f"the Python package {package} is needed for {needed_for} but {why}; "
                                  f"install it with: pip install {package}") from None


class OptionalModule:
    """A module imported on its first attribute use, through import_optional: `sitk = OptionalModule("SimpleITK",
    "NRRD, NIfTI and MHA files")` lets a module use `sitk.ReadImage` while importing it needs no SimpleITK.

    `requires` names the package a MedShift module needs (imported first, so a missing one is named).
    """

    def __init__(self, module: str, needed_for: str, pip_name: str | None = None, requires: str | None = None):
        self._spec = (module, needed_for, pip_name, requires)
        self._module: ModuleType | None = None

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self._module is None:
            module, needed_for, pip_name, requires = self._spec
            if requires is not None:
                import_optional(requires, needed_for, pip_name)
            self._module = import_optional(module, needed_for, pip_name)
        return getattr(self._module, name)


class _NoProgressBar:
    """What progress_bar gives when no bar is shown: accepts tqdm's calls and does nothing."""

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_postfix(self, **values: Any) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(enabled: bool, **options: Any):
    """A tqdm progress bar with `options` when enabled and tqdm is installed; otherwise one that shows nothing."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            return _NoProgressBar()
        return tqdm(**options)
    return _NoProgressBar()
