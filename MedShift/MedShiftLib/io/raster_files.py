"""PNG, TIFF, JPEG and BMP radiographs through Pillow (imported when such a file is first read or written).

Reading gives the stored values: 8- or 16-bit grey as uint8/uint16, 32-bit integer or float TIFF as
int32/float32; colour as (rows, cols, 3 or 4) for the caller to turn grey with a warning (palette and
CMYK/YCbCr images are expanded to RGB first; Pillow reads a 16-bit colour PNG at 8 bits per channel).
Every page of a TIFF is a frame; the other formats hold one.

Pixel spacing, decided here (docs/formats.md):
* TIFF: XResolution/YResolution are taken as the pixel spacing when they are physical: ResolutionUnit
  inch or centimetre (inch when the tag is absent, as the TIFF standard says), both resolutions positive,
  and not 72 or 96 pixels per inch (what screenshots and image editors write by default) nor exactly one
  pixel per mm (the placeholder SimpleITK writes, and MedShift wrote before, for an image without a known
  spacing). ResolutionUnit "none" is an aspect ratio only. Anything else leaves the spacing unknown.
* PNG: the sCAL chunk (which SimpleITK writes and reads) is kept as the spacing value, but a PNG's spacing
  counts as unknown: SimpleITK writes 1 mm into every PNG it saves.
* JPEG, BMP: unknown. Their density fields hold screen dots per inch far more often than a detector pitch.

Writing: PNG and TIFF store uint8 or uint16 pixels, BMP only uint8 (see radiograph_files for the
lossless rule). A PNG gets an sCAL chunk with the spacing (as SimpleITK writes it); a TIFF gets
XResolution/YResolution in pixels per centimetre when the spacing is known, no resolution otherwise.
JPEG is never written: it is lossy (radiograph_files refuses it; translate writes PNG instead).
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputImageError
from ..optional_packages import OptionalModule
from .input_size import check_input_size

PIL_Image = OptionalModule("PIL.Image", "PNG, TIFF, JPEG and BMP files", pip_name="pillow")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IHDR_END = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, then the header chunk: length and type, 13 bytes, CRC
PILLOW_FORMATS = {"png": "PNG", "tiff": "TIFF", "jpeg": "JPEG", "bmp": "BMP"}
SCREEN_DPI = (72.0, 96.0)
"""Resolutions (pixels per inch) that image editors and screenshots write by default: no physical size."""
PLACEHOLDER_DPI = 25.4
"""One pixel per mm: SimpleITK's resolution for an image whose spacing is the default 1 mm."""
_RESOLUTION_UNITS_MM = {2: 25.4, 3: 10.0}  # TIFF ResolutionUnit 2 = inch, 3 = centimetre, in mm
_TO_RGB_MODES = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa")


@dataclass
class RasterFrames:
    """The chosen frames of a raster file and its pixel spacing (x, y) in mm."""

    arrays: list[np.ndarray]
    spacing: tuple[float, float]
    spacing_known: bool
    spacing_source: str


def _open(path: Path, fmt: str):
    """The opened Pillow image, or InputImageError for a file Pillow cannot read as `fmt`."""
    try:
        image = PIL_Image.open(path, formats=[PILLOW_FORMATS[fmt]])
    except PIL_Image.DecompressionBombError as exc:
        raise InputImageError(f"{path}: has more pixels than MedShift reads ({exc})") from None
    except (PIL_Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputImageError(f"{path}: cannot read this {fmt.upper()} file, it looks damaged or is not a "
                              f"{fmt.upper()} file ({exc})") from None
    return image


def _png_size(path: Path) -> tuple[int, int] | None:
    """(rows, cols) from a PNG's header chunk, or None when the file does not start like a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or not head.startswith(b"\x89PNG") or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def raster_frame_count(path: Path, fmt: str) -> int:
    """Pages of a TIFF (1 for the other formats), from the headers only; an image too large is refused here."""
    size = _png_size(path) if fmt == "png" else None
    if size is not None:  # before Pillow's own, vaguer bomb check
        check_input_size(str(path), *size, size[0] * size[1] * 8)
    with _open(path, fmt) as image:
        if size is None:  # a PNG's size was checked from its header already
            check_input_size(str(path), image.height, image.width, image.height * image.width * 8)
        return int(getattr(image, "n_frames", 1)) if fmt == "tiff" else 1


def _pixels(image, path: Path, fmt: str) -> np.ndarray:
    """The decoded pixels of the current frame, as stored (see the module docstring)."""
    try:
        if image.mode in _TO_RGB_MODES:
            image = image.convert("RGBA" if image.mode in ("PA", "RGBa") or "transparency" in image.info else "RGB")
        elif image.mode == "1":
            image = image.convert("L")
        elif image.mode == "La":
            image = image.convert("LA")
        array = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged data, found when decoding
        raise InputImageError(f"{path}: cannot read this {fmt.upper()} file, it looks truncated or damaged "
                              f"({exc})") from None
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if fmt == "png" and image.mode == "I":  # older Pillow reads 16-bit grey PNG as 32-bit integers
        array = array.astype(np.uint16)
    return array


def _tiff_spacing(image) -> tuple[tuple[float, float], bool]:
    """(x, y) spacing in mm and whether it is physical, from a TIFF's resolution tags (module docstring)."""
    tags = image.tag_v2
    try:
        unit = int(tags.get(296, 2))
        x_resolution, y_resolution = float(tags.get(282, 0)), float(tags.get(283, tags.get(282, 0)))
    except (TypeError, ValueError, ZeroDivisionError):
        return (1.0, 1.0), False
    if unit not in _RESOLUTION_UNITS_MM or not (x_resolution > 0 and y_resolution > 0):
        return (1.0, 1.0), False
    length = _RESOLUTION_UNITS_MM[unit]
    spacing = (length / x_resolution, length / y_resolution)
    dpi = {round(r * 25.4 / length, 6) for r in (x_resolution, y_resolution)}
    defaults = set(SCREEN_DPI) | {PLACEHOLDER_DPI}
    return spacing, not dpi <= defaults


def tiff_spacing_is_physical(path: str | Path) -> bool:
    """True when a TIFF file's resolution tags give a physical pixel spacing (module docstring); False for an
    unreadable file. For images loaded by other readers (Slicer's), which take any resolution as spacing."""
    try:
        with PIL_Image.open(path, formats=["TIFF"]) as image:
            return _tiff_spacing(image)[1]
    except (OSError, ValueError, SyntaxError, PIL_Image.UnidentifiedImageError, PIL_Image.DecompressionBombError):
        return False


def _png_scale(path: Path) -> tuple[float, float] | None:
    """The (x, y) spacing in a PNG's sCAL chunk, which SimpleITK writes and Pillow does not read (unit ignored,
    as SimpleITK does); None without one."""
    with open(path, "rb") as handle:
        if handle.read(8) != PNG_SIGNATURE:
            return None
        while len(header := handle.read(8)) == 8 and header[4:] not in (b"IDAT", b"IEND"):
            chunk = handle.read(int.from_bytes(header[:4], "big"))
            handle.seek(4, 1)  # the chunk's CRC
            if header[4:] == b"sCAL":
                values = chunk[1:].split(b"\x00")
                try:
                    return float(values[0]), float(values[1])
                except (IndexError, ValueError):
                    return None
    return None


def read_raster_frames(path: Path, fmt: str, frames: list[int] | None) -> RasterFrames:
    """The chosen frames (all when None; indices already checked against raster_frame_count) and spacing."""
    with _open(path, fmt) as image:
        count = int(getattr(image, "n_frames", 1)) if fmt == "tiff" else 1
        arrays = []
        for k in range(count) if frames is None else frames:
            image.seek(k)
            arrays.append(_pixels(image, path, fmt))
        spacing, known, source = (1.0, 1.0), False, "none"
        if fmt == "tiff":
            spacing, known = _tiff_spacing(image)
            source = "TIFF resolution" if known else "none"
        elif fmt == "png":
            spacing = _png_scale(path) or spacing
    return RasterFrames(arrays, spacing, known, source)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def write_raster(pixels: np.ndarray, spacing: tuple[float, float], spacing_known: bool, path: Path, fmt: str) -> None:
    """Write uint8/uint16 `pixels` to `path` as PNG, TIFF or BMP (module docstring: what each keeps)."""
    if fmt == "bmp" and pixels.dtype != np.uint8:
        raise InputImageError(f"{path}: BMP holds only 8-bit grey pixels, but this image has {pixels.dtype} pixels; "
                              "write .png or .tif, which keep 16 bits")
    image = PIL_Image.fromarray(np.ascontiguousarray(pixels))
    x, y = (float(s) for s in spacing)
    options = {}
    if fmt == "tiff":
        options = dict(software="MedShift")
        if spacing_known and x > 0 and y > 0:
            options.update(resolution_unit=3, x_resolution=10.0 / x, y_resolution=10.0 / y)
    encoded = io.BytesIO()
    image.save(encoded, format=PILLOW_FORMATS[fmt], **options)
    data = encoded.getbuffer()
    if fmt == "png":  # Pillow writes no sCAL chunk: put it right after the header chunk
        scale = _png_chunk(b"sCAL", b"\x01" + repr(x).encode() + b"\x00" + repr(y).encode())
        data = b"".join((data[:IHDR_END], scale, data[IHDR_END:]))
    with open(path, "xb") as handle:  # Python's own write: a full disk raises OSError (Pillow's BMP writer does not)
        handle.write(data)
