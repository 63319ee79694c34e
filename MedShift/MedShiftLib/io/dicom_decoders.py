"""Which pydicom decoder reads compressed DICOM pixel data, and one line naming the packages to install when
none installed can (pydicom 3's plugins: pylibjpeg with pylibjpeg-libjpeg decodes every JPEG process,
12-bit JPEG Extended and JPEG Lossless included; python-gdcm most; Pillow only 8-bit JPEG and JPEG 2000).
"""
from __future__ import annotations

import re
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from ..errors import InputImageError

_PACKAGE_NAMES = {"gdcm": "python-gdcm"}


def _install_commands(decoder) -> str:
    """'pip install pylibjpeg pylibjpeg-libjpeg; pip install python-gdcm': the decoders pydicom lacks, pylibjpeg first
    (it decodes every JPEG process, 12-bit JPEG Extended included)."""
    options = []
    for line in decoder.missing_dependencies:  # e.g. "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"
        plugin, _, needs = line.partition(" - requires ")
        packages = [p.strip() for p in needs.replace(" and ", ",").split(",") if p.strip() and p.strip() != "numpy"]
        names = [re.split(r"[<>=!~ ]", p, maxsplit=1)[0] for p in packages]  # "pylibjpeg>=2.0" -> "pylibjpeg"
        options.append(" ".join([_PACKAGE_NAMES.get(n, n) for n in names] or [plugin]))
    return "; ".join(f"pip install {o}" for o in sorted(options, key=lambda o: not o.startswith("pylibjpeg")))


def check_decoder_available(ds: Dataset, path: Path) -> None:
    """Raise InputImageError naming the packages to install when the pixel data's compression cannot be decoded."""
    transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if not transfer_syntax.is_compressed:
        return
    try:
        decoder = pydicom.pixels.get_decoder(transfer_syntax)
    except NotImplementedError as exc:
        raise InputImageError(
            f"{path}: pixel data compressed as {transfer_syntax.name} ({transfer_syntax}) is not supported; "
            "convert the file to an uncompressed transfer syntax (e.g. with dcmdjpeg or gdcmconv --raw)"
        ) from exc
    if not decoder.is_available:
        raise InputImageError(f"{path}: pixel data is compressed as {transfer_syntax.name} and no decoder for it is "
                              f"installed; install one of: {_install_commands(decoder)}")


def decoding_error(ds: Dataset, path: Path, frame: int, exc: Exception) -> InputImageError:
    """One line for pixel data that could not be decoded; for compressed data the installed decoders could not
    handle (Pillow and 12-bit JPEG), the packages that decode it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    commands = _install_commands(pydicom.pixels.get_decoder(transfer_syntax)) if transfer_syntax.is_compressed else ""
    if commands and lines and lines[0].startswith("Unable to decode as exceptions were raised by all"):
        return InputImageError(f"{path}: pixel data compressed as {transfer_syntax.name} ({ds.get('BitsStored', '?')}"
                               f"-bit) cannot be decoded by the installed decoders ({'; '.join(lines[1:])}); "
                               f"install one of: {commands}")
    return InputImageError(f"{path}: cannot decode the pixel data of frame {frame}: {' '.join(lines)}")
