"""Training a MedShift checkpoint from a data folder (one sub-folder per domain).

Shared by `medshift train` and the MedShiftTraining Slicer module. Each run folder gets:
    latest.safetensors       EMA weights + metadata, rewritten every `checkpoint_every` steps
    best.safetensors         the EMA weights with the lowest validation flow-matching loss so far
    training_state.safetensors  raw weights, EMA, optimizer and scheduler, for --resume
    log.jsonl                one JSON line per logged step (loss, lr, images/s, validation loss)
    loss_curve.png           training and validation loss against the step, redrawn at every checkpoint
    samples_step{N}.png      validation images translated into every domain, every `sample_every` steps
Data order, crops and noise derive from (seed, step), so a resumed run continues as the original would.

Started by torchrun (`torchrun --nproc_per_node N -m MedShiftLib.cli train ...`), every process trains a
DistributedDataParallel replica on its share of each global batch (`batch_size` stays the global batch);
only rank 0 writes files. See distributed.py and docs/training.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from . import __version__
from .checkpoint import CheckpointInfo, save_checkpoint
from .couplings import COUPLINGS, make_coupling
from .datasets import RadiographDomainDataset, scan_data_folder, split_by_subject
from .devices import resolve_device
from .domain_contrast import contrast_for_run
from .distributed import (ProcessPlace, barrier, data_parallel, mean_across_processes, process_device,
                          process_group, write_replica_digest)
from .errors import DataFolderError, MedShiftError
from .training import make_ema, train_step, warmup_cosine
from .training_report import (SAMPLE_IMAGES, save_loss_curve, save_sample_grid,
                              translate_to_every_domain, truncate_training_log)
from .training_state import read_training_state, restore_training_state, save_training_state
from .velocity_unet import MODEL_PRESETS, VelocityUNet, config_from_preset


PRECISIONS = ("fp32", "bf16")
RESUMABLE_CHANGES = ("resume", "steps", "num_workers", "device", "log_every", "checkpoint_every",
                     "best_validation_loss", "precision", "compile", "sample_every")
"""Options that may differ between a run and its --resume (the others must match)."""


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
    precision: str = "fp32"
    compile: bool = False
    sample_every: int | None = None

    @property
    def sample_interval(self) -> int:
        """Steps between sample grids: `sample_every`, or the checkpoint interval when unset; 0 = never."""
        return self.checkpoint_every if self.sample_every is None else self.sample_every

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
        if self.precision not in PRECISIONS:
            raise MedShiftError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.sample_every is not None and self.sample_every < 0:
            raise MedShiftError("sample-every must be 0 (no samples) or more")


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch), able to start part-way through an epoch.

    With several processes, each global batch (`batch_size` consecutive entries of the permutation) is cut
    into `world_size` equal shares and process `rank` takes its share, so together the processes see
    exactly the images, batch by batch, that one process would. `start` counts global positions."""

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0, rank: int = 0, world_size: int = 1,
                 batch_size: int | None = None) -> None:
        if world_size > 1 and (batch_size is None or batch_size % world_size):
            raise ValueError(f"the global batch size {batch_size} must be a multiple of the {world_size} processes")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)[self.start:]
        if self.world_size > 1:
            share = self.batch_size // self.world_size
            whole = len(order) // self.batch_size * self.batch_size
            order = order[:whole].reshape(-1, self.world_size, share)[:, self.rank].reshape(-1)
        return iter(order.tolist())

    def __len__(self) -> int:
        remaining = max(self.size - self.start, 0)
        if self.world_size > 1:
            return remaining // self.batch_size * (self.batch_size // self.world_size)
        return remaining


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


def _step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """Noise, times and label dropout of one step on one process, from (seed, step, rank).

    Rank 0 keeps the single-process seeds; other ranks hash (seed, step, rank) with numpy's SeedSequence
    (torch's CPU generator keeps only 32 bits of a seed, so adding a large rank offset would be lost)."""
    if rank == 0:
        return torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1)
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed % 2**32, step, rank]).generate_state(1)[0]))


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


def training_device(config: TrainingConfig, place: ProcessPlace) -> torch.device:
    """The device this process trains on; MedShiftError for a device or precision that cannot work."""
    device = process_device(resolve_device(config.device), place)
    if config.precision == "bf16" and device.type != "cuda":
        raise MedShiftError("--precision bf16 needs a CUDA GPU (bfloat16 autocast on the CPU is slower than fp32 "
                            "on most processors); use --precision fp32 or --device cuda")
    return device


def train(config: TrainingConfig, progress: bool = True, stop_after: int | None = None) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun, every process calls this; the process group is opened here and always closed again.
    `stop_after` ends the run after that many steps in this call (to test resuming)."""
    config.check()
    place = ProcessPlace.from_environment()
    if config.batch_size % place.world_size:
        raise MedShiftError(f"--batch-size {config.batch_size} is the global batch and must be a multiple of the "
                            f"{place.world_size} training processes; use e.g. "
                            f"{max(1, config.batch_size // place.world_size) * place.world_size}")
    device = training_device(config, place)
    with process_group(place, device):
        return _train(config, place, device, progress, stop_after)


def _sample_batch(val_set: RadiographDomainDataset,
                  train_set: RadiographDomainDataset) -> tuple[torch.Tensor, list[int]]:
    """Up to SAMPLE_IMAGES fixed images for the sample grids, spread over the domains (validation if any)."""
    dataset = val_set if len(val_set) else RadiographDomainDataset(train_set.records, train_set.domains,
                                                                   train_set.resolution, train=False)
    by_domain: dict[int, list[int]] = {}
    for index in range(len(dataset)):
        by_domain.setdefault(dataset.label(index), []).append(index)
    chosen: list[int] = []
    while len(chosen) < min(SAMPLE_IMAGES, len(dataset)):
        for indices in by_domain.values():
            taken = [i for i in indices if i not in chosen]
            if taken and len(chosen) < SAMPLE_IMAGES:
                chosen.append(taken[0])
    items = [dataset[i] for i in chosen]
    return torch.stack([x for x, _ in items]), [label for _, label in items]


def _train(config: TrainingConfig, place: ProcessPlace, device: torch.device, progress: bool,
           stop_after: int | None) -> Path:
    from tqdm import tqdm

    # Naming exactly one domain asks for a single-domain model (one half of a DDIB pair, ddib.py).
    folder = scan_data_folder(config.data_dir, domains=config.domains or None,
                              min_domains=1 if len(config.domains) == 1 else 2)
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
    state_path = out / "training_state.safetensors"
    log_path = out / "log.jsonl"
    step, best = 0, float("inf")
    if config.resume:
        meta, tensors = read_training_state(state_path)
        saved = {k: v for k, v in meta["config"].items() if k not in RESUMABLE_CHANGES}
        now = {k: v for k, v in asdict(config).items() if k in saved}
        if saved != now:
            changed = sorted(k for k in saved if saved[k] != now.get(k))
            raise MedShiftError(f"--resume: {state_path} was made with other options ({', '.join(changed)}); "
                                "use the original options or a new --out")
        step = restore_training_state(meta, tensors, model=model, ema=ema, optimizer=optimizer, scheduler=scheduler)
        best = float(meta["config"].get("best_validation_loss", float("inf")))
    elif state_path.exists():
        raise MedShiftError(f"{out} already holds a training run; pass --resume to continue it or choose a new --out")
    barrier(place, device)  # every process has passed its checks before rank 0 writes anything
    log_records: list[dict] = []
    if place.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # steps logged after the last save (by a killed run) are trained again: drop their old lines
        log_records = truncate_training_log(log_path, step)
    net = data_parallel(model, place, device)
    if config.compile:
        net = torch.compile(net)
    autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None

    val_loader = DataLoader(val_set, batch_size=config.batch_size, shuffle=False, num_workers=0)
    batches_per_epoch = len(train_set) // config.batch_size
    local_batch = config.batch_size // place.world_size
    sample_images = _sample_batch(val_set, train_set) if place.is_main and config.sample_interval else None
    contrast = (contrast_for_run(out / "latest.safetensors", config.resume, folder.records, domains, config.resolution,
                                 seed=config.seed) if place.is_main else None)

    def info_for(step_now: int, metrics: dict) -> CheckpointInfo:
        provenance = {"data_dir": str(Path(config.data_dir).resolve()), "train_images": len(train_set),
                      "validation_images": len(val_set), "steps": step_now, "medshift": __version__,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "processes": place.world_size,
                      "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": asdict(config), "metrics": metrics}
        return CheckpointInfo(config=model_config, domains=tuple(domains), resolution=config.resolution,
                              pixel_spacing_mm=working_pixel_spacing(folder.records, config.resolution),
                              provenance=provenance, contrast=contrast)

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

    def write_samples(step_now: int) -> None:
        images, labels = sample_images
        translations = translate_to_every_domain(ema.module, images, torch.tensor(labels))
        save_sample_grid(images, [domains[i] for i in labels], translations, domains,
                         out / f"samples_step{step_now}.png")

    bar = tqdm(total=config.steps, initial=step, disable=not (progress and place.is_main), desc="training",
               unit="step")
    last_time, last_step, steps_this_call = time.perf_counter(), step, 0
    while step < config.steps and (stop_after is None or steps_this_call < stop_after):
        epoch, start = divmod(step, batches_per_epoch)
        sampler = EpochPermutationSampler(len(train_set), config.seed, epoch, start * config.batch_size,
                                          rank=place.rank, world_size=place.world_size,
                                          batch_size=config.batch_size)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, drop_last=True,
                            num_workers=config.num_workers, persistent_workers=False)
        for x1, labels in loader:
            result = train_step(net, optimizer, coupling, x1.to(device), labels.to(device),
                                model_config.null_label, config.label_dropout,
                                _step_generator(config.seed, step, place.rank), scheduler=scheduler,
                                autocast_dtype=autocast_dtype)
            ema.update_parameters(model)  # the same update on every process: the replicas hold equal weights
            step += 1
            steps_this_call += 1
            bar.update(1)
            bar.set_postfix(loss=f"{result.loss:.4f}")
            step_finished = time.perf_counter()
            done = step >= config.steps or (stop_after is not None and steps_this_call >= stop_after)
            checkpoint_now = step % config.checkpoint_every == 0 or done
            if step % config.log_every == 0 or checkpoint_now:
                loss = mean_across_processes(result.loss, place, device)
                seconds = max(step_finished - last_time, 1e-9)
                record = {"step": step, "loss": loss, "grad_norm": result.grad_norm,
                          "lr": optimizer.param_groups[0]["lr"],
                          "images_per_s": (step - last_step) * config.batch_size / seconds}
                last_time, last_step = step_finished, step
                if place.is_main:
                    if checkpoint_now and len(val_set):
                        record["validation_loss"] = validation_loss(ema.module, coupling, val_loader, device,
                                                                    config.seed)
                    # the log line goes first: a run killed before the save below redoes (and relogs) the step
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    log_records.append(record)
                    if checkpoint_now:
                        save(step, {k: v for k, v in record.items() if k != "lr"})
                        save_loss_curve(log_records, out / "loss_curve.png")
            sample_now = bool(config.sample_interval) and (step % config.sample_interval == 0 or step == config.steps)
            if checkpoint_now or sample_now:
                if place.is_main and sample_now:
                    write_samples(step)
                barrier(place, device)
                last_time += time.perf_counter() - step_finished  # images/s counts training time only
            if done:
                break
    bar.close()
    write_replica_digest(place, step, model, ema.module)
    barrier(place, device)
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
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="fp32, or bf16 autocast (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps)")
    p.add_argument("--sample-every", type=int, default=None,
                   help="steps between samples_step{N}.png grids (default: --checkpoint-every; 0: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_arguments(args: argparse.Namespace) -> TrainingConfig:
    """TrainingConfig from parsed `medshift train` options."""
    return TrainingConfig(
        data_dir=args.data_dir, out_dir=args.out, resolution=args.resolution, preset=args.preset,
        batch_size=args.batch_size, steps=args.steps, learning_rate=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, coupling=args.coupling, bridge_sigma=args.bridge_sigma,
        label_dropout=args.label_dropout, validation_fraction=args.validation_fraction,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, num_workers=args.workers,
        device=args.device, seed=args.seed, resume=args.resume, domains=args.domains or [],
        precision=args.precision, compile=args.compile, sample_every=args.sample_every)


def train_from_arguments(args: argparse.Namespace) -> Path:
    """Entry point of `medshift train`."""
    return train(config_from_arguments(args), progress=not args.quiet)
