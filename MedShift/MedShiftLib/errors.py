"""Exceptions MedShift raises for problems a user can act on."""


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
