"""The Slicer side of MedShift: volume nodes <-> radiographs, translating nodes, the panel's background job,
CT projection into a node, and the panel's parameters. Used by MedShift.py; MedShiftLib never imports it.

A sub-folder package, so Slicer does not take its files for modules. Modules that touch MRML import
`slicer`/`vtk` inside their functions, so they load without a scene (the tests use the PyPI slicer-core
package). Importing the package inside a Slicer older than MINIMUM_SLICER_VERSION raises ImportError with
a message saying so, before any code that needs a newer Python is read; this file therefore keeps to
Python 3.9 syntax.
"""
from __future__ import annotations

import sys

MINIMUM_SLICER_VERSION = (5, 10)
MINIMUM_PYTHON_VERSION = (3, 10)


def unsupported_slicer_message(slicer_version: tuple, python_version: tuple) -> str | None:
    """Why MedShift cannot run in this Slicer, or None when it can."""
    if tuple(slicer_version) >= MINIMUM_SLICER_VERSION and tuple(python_version) >= MINIMUM_PYTHON_VERSION:
        return None
    return ("MedShift needs 3D Slicer {}.{} or newer (with Python {}.{}+); this is Slicer {}.{} with Python {}.{}. "
            "Install a current Slicer from https://download.slicer.org and add MedShift there."
            .format(*MINIMUM_SLICER_VERSION, *MINIMUM_PYTHON_VERSION, *slicer_version[:2], *python_version[:2]))


def _check_running_slicer() -> None:
    """ImportError when imported inside a Slicer application that is too old (nothing outside Slicer)."""
    app = getattr(sys.modules.get("slicer"), "app", None)
    if app is None or not hasattr(app, "majorVersion"):
        return
    message = unsupported_slicer_message((app.majorVersion, app.minorVersion), sys.version_info[:2])
    if message:
        raise ImportError(message)


_check_running_slicer()
