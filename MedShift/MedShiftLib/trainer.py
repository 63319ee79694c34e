"""Training a MedShift checkpoint from a data folder (one sub-folder per domain).

Shared by `medshift train` and the MedShiftTraining Slicer module. Each run folder gets:
    latest.safetensors       EMA weights + metadata, rewritten every `checkpoint_every` steps
    best.safetensors         the EMA weights with the lowest validation flow-matching loss so far
    training_state.safetensors  raw weights, EMA, optimizer and scheduler, for --resume
    log.jsonl                one JSON line per logged step (loss, lr, images/s, validation loss)
Data order, crops and noise derive from (seed, step), so a resumed run continues as the original would.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from . import __version__
from .checkpoint import CheckpointInfo, save_checkpoint
from .couplings import COUPLINGS, make_coupling
from .datasets import RadiographDomainDataset, scan_data_folder, split_by_subject
from .devices import resolve_device
from .errors import DataFolderError, MedShiftError
from .training import make_ema, train_step, warmup_cosine
from .training_state import read_training_state, restore_training_state, save_training_state
from .velocity_unet import MODEL_PRESETS, VelocityUNet, config_from_preset


@dataclass
class TrainingConfig:
    """Every option of a training run (stored in the checkpoint's provenance)."""

    data_dir: str
    out_dir: str
    resolution: int = 256
    preset: str = "default"
    batch_size: int = 16
    steps: int = 2000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    coupling: str = "ot"
    bridge_sigma: float = 0.1
    label_dropout: float = 0.2
    validation_fraction: float = 0.1
    checkpoint_every: int = 250
    log_every: int = 25
    num_workers: int = 2
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    domains: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise MedShiftError for options that cannot work, before any work is done."""
        if self.preset not in MODEL_PRESETS:
            raise MedShiftError(f"unknown model preset {self.preset!r}; choose one of: {', '.join(MODEL_PRESETS)}")
        if self.coupling not in COUPLINGS:
            raise MedShiftError(f"unknown coupling {self.coupling!r}; choose one of: {', '.join(COUPLINGS)}")
        for name in ("resolution", "batch_size", "steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise MedShiftError(f"{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.label_dropout < 1.0:
            raise MedShiftError("label dropout must be in [0, 1)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise MedShiftError("validation fraction must be in [0, 1)")


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch), able to start part-way through an epoch."""

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0) -> None:
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=g)[self.start:].tolist())

    def __len__(self) -> int:
        return self.size - self.start


def working_pixel_spacing(records, resolution: int) -> float | None:
    """Pixel spacing (mm) of the working grid when every image's manifest gives the same spacing and size.

    A whole image's short side maps to `resolution` pixels (as the validation crop does), so one
    working pixel covers spacing * short_side / resolution millimetres; None when unknown or mixed."""
    values = {(r.extra.get("pixel_spacing_mm"), r.extra.get("rows"), r.extra.get("cols")) for r in records}
    if len(values) != 1:
        return None
    spacing, rows, cols = values.pop()
    try:
        return float(spacing) * min(int(rows), int(cols)) / resolution
    except (TypeError, ValueError):
        return None


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, coupling, loader: DataLoader, device: torch.device, seed: int) -> float:
    """Mean flow-matching loss on the validation images with fixed noise and times."""
    model.eval()
    total, count = 0.0, 0
    for i, (x1, labels) in enumerate(loader):
        x1 = x1.to(device)
        sample = coupling.sample(x1, generator=_step_generator(seed, -1 - i))
        prediction = model(sample.x_t, sample.t, labels.to(device))
        total += float(torch.mean((prediction - sample.u_t) ** 2)) * len(x1)
        count += len(x1)
    return total / max(count, 1)


def train(config: TrainingConfig, progress: bool = True, stop_after: int | None = None) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    `stop_after` ends the run after that many steps in this call (to test resuming)."""
    from tqdm import tqdm

    config.check()
    device = resolve_device(config.device)
    folder = scan_data_folder(config.data_dir, domains=config.domains or None)
    train_records, val_records = split_by_subject(folder, config.validation_fraction, config.seed)
    if len(train_records) < config.batch_size:
        raise DataFolderError(f"{config.data_dir}: {len(train_records)} training images, fewer than the batch size "
                              f"{config.batch_size}; lower --batch-size or add images")
    domains = list(folder.domains)
    train_set = RadiographDomainDataset(train_records, domains, config.resolution, train=True, seed=config.seed)
    val_set = RadiographDomainDataset(val_records, domains, config.resolution, train=False, seed=config.seed)

    torch.manual_seed(config.seed)
    model_config = config_from_preset(config.preset, len(domains))
    if config.resolution % model_config.downsampling_factor:
        raise MedShiftError(f"resolution {config.resolution} must be a multiple of {model_config.downsampling_factor} "
                            f"for the {config.preset!r} model")
    model = VelocityUNet(model_config).to(device)
    ema = make_ema(model, config.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, config.steps, config.warmup_steps))
    coupling_kwargs = {"sigma": config.bridge_sigma} if config.coupling == "schrodinger-bridge" else {}
    coupling = make_coupling(config.coupling, **coupling_kwargs)

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "training_state.safetensors"
    step, best = 0, float("inf")
    if config.resume:
        meta, tensors = read_training_state(state_path)
        saved = {k: v for k, v in meta["config"].items() if k not in ("resume", "steps", "num_workers", "device", "log_every", "checkpoint_every", "best_validation_loss")}
        now = {k: v for k, v in asdict(config).items() if k in saved}
        if saved != now:
            changed = sorted(k for k in saved if saved[k] != now.get(k))
            raise MedShiftError(f"--resume: {state_path} was made with other options ({', '.join(changed)}); "
                                "use the original options or a new --out")
        step = restore_training_state(meta, tensors, model=model, ema=ema, optimizer=optimizer, scheduler=scheduler)
        best = float(meta["config"].get("best_validation_loss", float("inf")))
    elif state_path.exists():
        raise MedShiftError(f"{out} already holds a training run; pass --resume to continue it or choose a new --out")

    val_loader = DataLoader(val_set, batch_size=config.batch_size, shuffle=False, num_workers=0)
    batches_per_epoch = len(train_set) // config.batch_size
    log_path = out / "log.jsonl"

    def info_for(step_now: int, metrics: dict) -> CheckpointInfo:
        provenance = {"data_dir": str(Path(config.data_dir).resolve()), "train_images": len(train_set),
                      "validation_images": len(val_set), "steps": step_now, "medshift": __version__,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": asdict(config), "metrics": metrics}
        return CheckpointInfo(config=model_config, domains=tuple(domains), resolution=config.resolution,
                              pixel_spacing_mm=working_pixel_spacing(folder.records, config.resolution),
                              provenance=provenance)

    def save(step_now: int, metrics: dict) -> None:
        nonlocal best
        ema_state = ema.module.state_dict()
        save_checkpoint(out / "latest.safetensors", ema_state, info_for(step_now, metrics))
        val = metrics.get("validation_loss")
        if val is not None and val < best:
            best = val
            save_checkpoint(out / "best.safetensors", ema_state, info_for(step_now, metrics))
        cfg = asdict(config) | {"best_validation_loss": best}
        save_training_state(state_path, step=step_now, model=model, ema=ema, optimizer=optimizer,
                            scheduler=scheduler, config=cfg)

    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="training", unit="step")
    last_time, last_step, steps_this_call = time.perf_counter(), step, 0
    while step < config.steps and (stop_after is None or steps_this_call < stop_after):
        epoch, start = divmod(step, batches_per_epoch)
        sampler = EpochPermutationSampler(len(train_set), config.seed, epoch, start * config.batch_size)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                            num_workers=config.num_workers, persistent_workers=False)
        for x1, labels in loader:
            result = train_step(model, optimizer, coupling, x1.to(device), labels.to(device),
                                model_config.null_label, config.label_dropout, _step_generator(config.seed, step),
                                ema=ema, scheduler=scheduler)
            step += 1
            steps_this_call += 1
            bar.update(1)
            bar.set_postfix(loss=f"{result.loss:.4f}")
            done = step >= config.steps or (stop_after is not None and steps_this_call >= stop_after)
            if step % config.log_every == 0 or step % config.checkpoint_every == 0 or done:
                now = time.perf_counter()
                record = {"step": step, "loss": result.loss, "grad_norm": result.grad_norm,
                          "lr": optimizer.param_groups[0]["lr"],
                          "images_per_s": (step - last_step) * config.batch_size / max(now - last_time, 1e-9)}
                last_time, last_step = now, step
                if step % config.checkpoint_every == 0 or done:
                    if len(val_set):
                        record["validation_loss"] = validation_loss(ema.module, coupling, val_loader, device,
                                                                    config.seed)
                    save(step, {k: v for k, v in record.items() if k != "lr"})
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if done:
                break
    bar.close()
    best_path = out / "best.safetensors"
    return best_path if best_path.exists() else out / "latest.safetensors"


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `medshift train` (and the MedShiftTraining module)."""
    d = TrainingConfig(data_dir="", out_dir="")
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder of images per domain")
    p.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    p.add_argument("--resolution", type=int, default=d.resolution, help="working resolution in pixels")
    p.add_argument("--preset", choices=tuple(MODEL_PRESETS), default=d.preset, help="model size")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps in all")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="peak learning rate (AdamW)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up, then cosine decay")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--coupling", choices=COUPLINGS, default=d.coupling)
    p.add_argument("--bridge-sigma", type=float, default=d.bridge_sigma, help="noise of the Schrodinger bridge")
    p.add_argument("--label-dropout", type=float, default=d.label_dropout)
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction, help="of subjects")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--workers", type=int, default=min(d.num_workers, os.cpu_count() or 1), help="loader processes")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--domains", nargs="+", help="domain sub-folders to use, in label order (default: all, sorted)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last save")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_arguments(args: argparse.Namespace) -> TrainingConfig:
    """TrainingConfig from parsed `medshift train` options."""
    return TrainingConfig(
        data_dir=args.data_dir, out_dir=args.out, resolution=args.resolution, preset=args.preset,
        batch_size=args.batch_size, steps=args.steps, learning_rate=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, coupling=args.coupling, bridge_sigma=args.bridge_sigma,
        label_dropout=args.label_dropout, validation_fraction=args.validation_fraction,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, num_workers=args.workers,
        device=args.device, seed=args.seed, resume=args.resume, domains=args.domains or [])


def train_from_arguments(args: argparse.Namespace) -> Path:
    """Entry point of `medshift train`."""
    return train(config_from_arguments(args), progress=not args.quiet)
