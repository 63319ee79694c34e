"""Which Python packages MedShift still needs in this Slicer: Resources/requirements.txt against what is installed.

Versions are compared with the PyPA `packaging` library, which Slicer bundles (5.10: packaging 25.0).
Torch is listed apart because the PyTorch extension installs it (the right CUDA build for the driver).
Nothing here imports slicer, Qt or torch.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
TORCH = "torch"


def read_requirements(path: str | Path = REQUIREMENTS_FILE) -> list:
    """The requirements of a requirements file (packaging.requirements.Requirement), comments left out."""
    from packaging.requirements import Requirement

    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (its PyPI name), or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def unmet(requirements: list, version_of: Callable[[str], str | None] | None = None) -> list[str]:
    """The requirements (as text, e.g. 'pydicom>=3.0') that are not installed or installed too old.

    `version_of(name)` gives an installed version or None (default: installed_version)."""
    version_of = version_of or installed_version
    missing = []
    for requirement in requirements:
        version = version_of(requirement.name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(str(requirement))
    return missing


def split_torch(requirements: list) -> tuple[object | None, list]:
    """(the torch requirement or None, every other requirement)."""
    torch = next((r for r in requirements if r.name.lower() == TORCH), None)
    return torch, [r for r in requirements if r is not torch]


IMPORT_NAMES = {"pillow": "PIL"}
"""Distributions whose import name is not their PyPI name."""


def import_name(distribution: str) -> str:
    """The top-level module a distribution provides (e.g. 'PIL' for 'pillow')."""
    return IMPORT_NAMES.get(distribution.lower(), distribution)


def already_loaded(requirement_texts: list[str], modules: dict | None = None) -> list[str]:
    """The requirements whose module this Python has already imported (an upgrade takes effect after a restart)."""
    from packaging.requirements import Requirement

    modules = sys.modules if modules is None else modules
    return [text for text in requirement_texts if import_name(Requirement(text).name) in modules]


WORKER_ONLY = {"pydicom"}
"""Distributions only the worker process needs at the required version: Slicer's own process never reads
DICOM files for MedShift (the panel hands the worker NRRD files), so Slicer's bundled pydicom 2.4, loaded
by its DICOM module, may stay loaded; the worker starts fresh and imports the upgraded one."""


def restart_needed(installed: list[str], modules: dict | None = None) -> list[str]:
    """The installed requirements that Slicer's process had already loaded in an older version and itself needs."""
    from packaging.requirements import Requirement

    return [text for text in already_loaded(installed, modules)
            if Requirement(text).name.lower() not in WORKER_ONLY]


def loaded_too_old(requirement_texts: list[str], modules: dict | None = None) -> list[str]:
    """'pydicom 2.4.4 (needs >=3.0)' for each requirement whose module is loaded here in a version it refuses."""
    from packaging.requirements import Requirement

    modules = sys.modules if modules is None else modules
    stale = []
    for text in requirement_texts:
        requirement = Requirement(text)
        version = getattr(modules.get(import_name(requirement.name)), "__version__", None)
        if version is not None and not requirement.specifier.contains(str(version), prereleases=True):
            stale.append(f"{requirement.name} {version} (needs {requirement.specifier})")
    return stale
