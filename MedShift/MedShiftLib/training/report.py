"""What a training run reports in its folder besides the weights: the log, the loss curve, sample grids.

    log.jsonl            one JSON object per logged step: step, loss, grad_norm, lr, images_per_s,
                         and validation_loss at checkpoints
    loss_curve.png       training and validation loss against the step, logarithmic loss axis
    samples_step{N}.png  a few validation images (rows), each translated by the EMA model into every
                         domain (columns, labelled with the domain names); the first column is the input

Pictures are drawn from model-range values [-1, 1] mapped linearly to 0..255 (no per-image windowing,
so pictures of different steps compare directly). Everything is written atomically.
"""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic_files import write_bytes_atomically
from ..engine.network import VelocityUNet
from ..engine.translation import invert_and_regenerate
from ..settings import TranslationSettings

logger = logging.getLogger(__name__)

SAMPLE_TAU = 0.6
SAMPLE_SOLVER = "euler"
SAMPLE_STEPS = 4
SAMPLE_IMAGES = 4


def read_training_log(path: str | Path) -> list[dict]:
    """The records of a log.jsonl in order; a torn last line (a killed run) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def truncate_training_log(path: str | Path, last_step: int) -> list[dict]:
    """Keep only the records up to `last_step` (the resumed state's step); returns them."""
    path = Path(path)
    records = [r for r in read_training_log(path) if int(r["step"]) <= last_step]
    if path.exists():
        write_bytes_atomically(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    return records


def save_loss_curve(records: Sequence[dict], path: str | Path) -> Path | None:
    """Plot training and validation loss against the step (log-scale loss) to a PNG; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, LogFormatter
    except ImportError:
        logger.warning("matplotlib is not installed: no loss_curve.png (pip install matplotlib)")
        return None
    train = [(r["step"], r["loss"]) for r in records if r.get("loss", 0) > 0]
    val = [(r["step"], r["validation_loss"]) for r in records if r.get("validation_loss", 0) > 0]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train), label="training loss", color="tab:blue", linewidth=1)
    if val:
        axes.plot(*zip(*val), label="validation loss (EMA)", color="tab:orange", marker="o", markersize=3)
    if train or val:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
        axes.legend()
    axes.set_xlabel("step")
    axes.set_ylabel("flow-matching loss")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes_atomically(path, buffer.getvalue())


@torch.no_grad()
def translate_to_every_domain(model: VelocityUNet, images: torch.Tensor, labels: torch.Tensor,
                              tau: float = SAMPLE_TAU, steps: int = SAMPLE_STEPS,
                              solver: str = SAMPLE_SOLVER) -> torch.Tensor:
    """Images (N, 1, H, W) of domains `labels` translated into each domain: (N, domains, H, W) on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    settings = TranslationSettings("source", "target", tau=tau, solver=solver, steps=steps,
                                   tile_size=max(images.shape[-2:]))
    columns = []
    for domain in range(model.config.num_domains):
        target = torch.full_like(labels, domain)
        columns.append(invert_and_regenerate(model, images, labels, target, settings)[:, 0].float().cpu())
    model.train(was_training)
    return torch.stack(columns, dim=1)


def _to_gray8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip((pixels + 1.0) / 2.0, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def save_sample_grid(images: torch.Tensor, source_names: Sequence[str], translations: torch.Tensor,
                     domain_names: Sequence[str], path: str | Path, panel_size: int = 128) -> Path:
    """A grid PNG: row i is input i (labelled with its domain) followed by its translation into each domain."""
    from PIL import Image, ImageDraw

    rows, columns = translations.shape[0], translations.shape[1] + 1
    if len(source_names) != rows or len(domain_names) != columns - 1:
        raise ValueError("one source name per image and one domain name per translation column")
    gap, caption = 4, 18
    canvas = Image.new("L", (columns * (panel_size + gap) - gap, caption + rows * (panel_size + caption + gap)), 255)
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(["input"] + [f"-> {d}" for d in domain_names]):
        draw.text((j * (panel_size + gap) + 3, 3), name, fill=0)
    for i in range(rows):
        y = caption + i * (panel_size + caption + gap)
        draw.text((3, y + 2), f"{source_names[i]}", fill=0)
        panels = [images[i, 0].float().cpu().numpy()] + [translations[i, j].numpy() for j in range(columns - 1)]
        for j, pixels in enumerate(panels):
            tile = Image.fromarray(_to_gray8(pixels)).resize((panel_size, panel_size), Image.BICUBIC)
            canvas.paste(tile, (j * (panel_size + gap), y + caption))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return write_bytes_atomically(path, buffer.getvalue())
