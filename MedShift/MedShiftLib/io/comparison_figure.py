"""Side-by-side pictures of radiographs (input, translation, reference) as labelled 8-bit PNGs or JPEGs."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic_files import write_bytes_atomically


def display_window(pixels: np.ndarray, photometric: str = "MONOCHROME2",
                   percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """8-bit display of a radiograph: robust-percentile window, MONOCHROME1 inverted."""
    values = pixels.astype(np.float64)
    low, high = np.percentile(values, percentiles)
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    if photometric == "MONOCHROME1":
        scaled = 1 - scaled
    return (scaled * 255 + 0.5).astype(np.uint8)


def save_side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str], path: str | Path,
                      panel_size: int | None = None) -> Path:
    """Write grey panels next to each other with a caption above each (written atomically).

    A `.jpg`/`.jpeg` path gets a JPEG (quality 80: a documentation picture of modest size), any other a PNG.
    """
    from PIL import Image, ImageDraw

    if len(panels) != len(labels):
        raise ValueError("one label per panel")
    images = [Image.fromarray(display_window(p) if p.dtype != np.uint8 else p) for p in panels]
    size = panel_size or max(max(im.size) for im in images)
    images = [im.resize((size, round(size * im.size[1] / im.size[0])), Image.BICUBIC) for im in images]
    gap, caption = 4, 22
    height = max(im.size[1] for im in images) + caption
    canvas = Image.new("L", (len(images) * (size + gap) - gap, height), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (im, label) in enumerate(zip(images, labels)):
        x = i * (size + gap)
        canvas.paste(im, (x, caption))
        draw.text((x + 4, 5), label, fill=0)
    path = Path(path)
    buffer = io.BytesIO()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        canvas.save(buffer, format="JPEG", quality=80, optimize=True)
    else:
        canvas.save(buffer, format="PNG")
    write_bytes_atomically(path, buffer.getvalue())
    return path
