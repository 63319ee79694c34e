"""The options of a training run: `TrainingConfig`, and the `medshift train` options that fill it."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields

from ..engine.couplings import COUPLINGS
from ..engine.network import MODEL_PRESETS
from ..errors import MedShiftError
from ..io.data_folder import check_outside_data_folder
from ..option_bounds import MAX_SEED, Bounds, check_fields
from .optimisation import scaled_learning_rate

PRECISIONS = ("fp32", "bf16")
LR_SCALINGS = ("none", "sqrt", "linear")
RESUMABLE_CHANGES = ("resume", "steps", "num_workers", "device", "log_every", "checkpoint_every",
                     "best_validation_loss", "precision", "compile", "sample_every", "out_dir")
"""Options that may differ between a run and its --resume (the others must match; data_dir compared resolved).
The run folder's own place (out_dir) is not one of them, so a moved or differently spelled run folder resumes."""


MAX_STEPS = 10_000_000
"""The most optimisation steps (and the longest interval) a run may name: weeks of GPU time at the default batch."""
MAX_WORKERS = 64


def _bounded(default, flag: str, low: float, high: float, **ends: bool):
    """A field whose value must lie in low..high (see option_bounds.Bounds), refused as `flag VALUE: ...`."""
    return field(default=default, metadata={"flag": flag, "bounds": Bounds(low, high, **ends)})


@dataclass
class TrainingConfig:
    """Every option of a training run (stored in the checkpoint's provenance)."""

    data_dir: str
    out_dir: str
    resolution: int = _bounded(256, "--resolution", 8, 4096)
    preset: str = "default"
    batch_size: int = _bounded(16, "--batch-size", 1, 4096)
    steps: int = _bounded(2000, "--steps", 1, MAX_STEPS)
    learning_rate: float = _bounded(1e-3, "--lr", 0.0, 1.0, low_open=True)
    warmup_steps: int = _bounded(100, "--warmup-steps", 0, MAX_STEPS)
    weight_decay: float = _bounded(0.0, "weight decay", 0.0, 1.0)
    ema_decay: float = _bounded(0.999, "--ema-decay", 0.0, 1.0, high_open=True)
    coupling: str = "ot"
    bridge_sigma: float = _bounded(0.1, "--bridge-sigma", 0.0, 10.0, low_open=True)
    label_dropout: float = _bounded(0.2, "--label-dropout", 0.0, 1.0, high_open=True)
    validation_fraction: float = _bounded(0.1, "--validation-fraction", 0.0, 1.0, high_open=True)
    checkpoint_every: int = _bounded(250, "--checkpoint-every", 1, MAX_STEPS)
    log_every: int = _bounded(25, "--log-every", 1, MAX_STEPS)
    num_workers: int = _bounded(2, "--workers", 0, MAX_WORKERS)
    device: str = "auto"
    seed: int = _bounded(0, "--seed", 0, MAX_SEED)
    resume: bool = False
    domains: list[str] = field(default_factory=list)
    precision: str = "fp32"
    compile: bool = False
    sample_every: int | None = _bounded(None, "--sample-every", 0, MAX_STEPS)
    init_from: str | None = None
    lr_scaling: str = "none"
    simulate: dict | None = None  # `--simulate`: the simulator's options (simulator/training_views.py), no data_dir

    @property
    def peak_learning_rate(self) -> float:
        """`learning_rate` scaled to the batch size by `lr_scaling` (it is the rate for 16 images then)."""
        return scaled_learning_rate(self.learning_rate, self.batch_size, self.lr_scaling)

    @property
    def sample_interval(self) -> int:
        """Steps between sample grids: `sample_every`, or the checkpoint interval when unset; 0 = never."""
        return self.checkpoint_every if self.sample_every is None else self.sample_every

    def check(self) -> None:
        """Raise MedShiftError for options that cannot work, before any work is done."""
        if bool(self.data_dir) == bool(self.simulate):
            raise MedShiftError("give a data folder or --simulate (images rendered while training), not both"
                                if self.data_dir else "give a data folder to train on, or --simulate")
        if self.lr_scaling not in LR_SCALINGS:
            raise MedShiftError(f"unknown --lr-scaling {self.lr_scaling!r}; choose one of: {', '.join(LR_SCALINGS)}")
        if self.preset not in MODEL_PRESETS:
            raise MedShiftError(f"unknown model preset {self.preset!r}; choose one of: {', '.join(MODEL_PRESETS)}")
        if self.coupling not in COUPLINGS:
            raise MedShiftError(f"unknown coupling {self.coupling!r}; choose one of: {', '.join(COUPLINGS)}")
        check_fields(self)
        if self.precision not in PRECISIONS:
            raise MedShiftError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise MedShiftError(f"--out {self.out_dir} is a file, not a folder; give a folder for the run")
        if self.data_dir:
            check_outside_data_folder(self.out_dir, self.data_dir)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `medshift train` (and the MedShiftTraining module)."""
    d = TrainingConfig(data_dir="", out_dir="")
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="?", default="",
                   help="folder with one sub-folder of images per domain (or --simulate)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    p.add_argument("--resolution", type=int, default=d.resolution, help="working resolution in pixels")
    p.add_argument("--preset", choices=tuple(MODEL_PRESETS), default=d.preset, help="model size")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step (over all processes)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps in all")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="peak learning rate (AdamW); with --lr-scaling "
                   "the rate for a batch of 16")
    p.add_argument("--lr-scaling", choices=LR_SCALINGS, default=d.lr_scaling, help="scale --lr to the batch size: "
                   "sqrt (x sqrt(batch/16), the rule for Adam-type optimisers), linear (x batch/16) or none")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up, then cosine decay")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="decay of the weights' moving average, "
                   "which is what checkpoints hold")
    p.add_argument("--coupling", choices=COUPLINGS, default=d.coupling, help="pairing of noise and images: "
                   "independent, minibatch optimal transport, or Schrodinger bridge (entropic OT)")
    p.add_argument("--bridge-sigma", type=float, default=d.bridge_sigma, help="noise of the Schrodinger bridge")
    p.add_argument("--label-dropout", type=float, default=d.label_dropout, help="share of steps' labels replaced "
                   "by the null label (what classifier-free guidance needs)")
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction, help="of subjects")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between saves "
                   "(what --resume continues from)")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps between log lines")
    p.add_argument("--workers", type=int, default=min(d.num_workers, os.cpu_count() or 1), help="loader processes")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the weights, the split and the sampling")
    p.add_argument("--domains", nargs="+", help="domain sub-folders to use, in label order (default: all, sorted)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last save")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="fp32, or bf16 autocast (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps)")
    p.add_argument("--sample-every", type=int, default=None,
                   help="steps between samples_step{N}.png grids (default: --checkpoint-every; 0: none)")
    p.add_argument("--init-from", metavar="CKPT", help="start from this checkpoint's weights (fine-tuning, e.g. the "
                   "bundled model): same model preset and the same domains in the same order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    bounds = {f.metadata["flag"]: f.metadata["bounds"] for f in fields(TrainingConfig) if "bounds" in f.metadata}
    for action in p._actions:  # each bounded option's help ends with its allowed range
        for flag in set(action.option_strings) & set(bounds):
            action.help = f"{action.help} ({bounds[flag].describe()})"


def config_from_arguments(args: argparse.Namespace) -> TrainingConfig:
    """TrainingConfig from parsed `medshift train` options."""
    return TrainingConfig(
        data_dir=args.data_dir, out_dir=args.out, resolution=args.resolution, preset=args.preset,
        batch_size=args.batch_size, steps=args.steps, learning_rate=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, coupling=args.coupling, bridge_sigma=args.bridge_sigma,
        label_dropout=args.label_dropout, validation_fraction=args.validation_fraction,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, num_workers=args.workers,
        device=args.device, seed=args.seed, resume=args.resume, domains=args.domains or [],
        precision=args.precision, compile=args.compile, sample_every=args.sample_every,
        init_from=getattr(args, "init_from", None), lr_scaling=getattr(args, "lr_scaling", "none"),
        simulate=getattr(args, "simulate_options", None))
