"""Exceptions MedShift raises for problems a user can act on, and the import of optional packages."""
from __future__ import annotations

import importlib
from types import ModuleType


class MedShiftError(Exception):
    """Base class: a problem the user can fix; the CLI prints its message on one line."""


class InputImageError(MedShiftError):
    """An input image (file, node or array) cannot be used as given."""


class DomainError(MedShiftError):
    """A domain name the model does not know."""


class CheckpointError(MedShiftError):
    """A checkpoint file that is missing, corrupt, hostile or incompatible."""


class DataFolderError(MedShiftError):
    """A training data folder that cannot be used."""


class TranslationCancelled(MedShiftError):
    """The user cancelled a running translation; nothing was written."""


class MissingPackageError(MedShiftError):
    """A file format or feature needs a Python package that is not installed."""


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
