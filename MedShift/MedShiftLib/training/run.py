"""Training a MedShift checkpoint from a data folder (one sub-folder per domain).

Shared by `medshift train` and the MedShiftTraining Slicer module. Each run folder gets:
    latest.safetensors       EMA weights + metadata, rewritten every `checkpoint_every` steps
    best.safetensors         the EMA weights with the lowest validation flow-matching loss so far
    *.stats.json             each checkpoint's domain statistics (engine/domain_statistics.py)
    training_state.safetensors  raw weights, EMA, optimizer and scheduler, for --resume
    log.jsonl                one JSON line per logged step (loss, lr, images/s, validation loss)
    loss_curve.png           training and validation loss against the step, redrawn at every checkpoint
    samples_step{N}.png      validation images translated into every domain, every `sample_every` steps
Data order, crops and noise derive from (seed, step) (sampling.py), so a resumed run continues as the
original would.

A `TrainingRun` is set up (data, network, EMA, optimiser, loss), resumed or started, then stepped; at
every checkpoint interval it logs, validates and saves. Started by torchrun (`torchrun --nproc_per_node N
-m MedShiftLib.cli train ...`), every process trains a DistributedDataParallel replica on its share of
each global batch (`batch_size` stays the global batch); only rank 0 writes files (distributed.py,
docs/training.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .. import __version__
from ..atomic_files import check_writable_folder
from ..engine.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from ..engine.couplings import make_coupling
from ..engine.devices import network_memory_format, resolve_device
from ..engine.domain_statistics import DomainStatistics
from ..engine.loss import FlowMatchingLoss
from ..engine.network import VelocityUNet, config_from_preset
from ..errors import MedShiftError
from ..optional_packages import progress_bar
from ..postprocess.contrast_transfer import measure_domain_statistics
from .config import RESUMABLE_CHANGES, TrainingConfig, config_from_arguments
from .distributed import (
    ProcessPlace,
    barrier,
    data_parallel,
    mark_setup_finished,
    mean_across_processes,
    process_device,
    process_group,
    write_replica_digest,
)
from .domain_statistics import statistics_for_run
from .optimisation import StepResult, check_finite_loss, make_ema, train_step, warmup_cosine
from .report import save_loss_curve, save_sample_grid, translate_to_every_domain, truncate_training_log
from .sampling import step_generator
from .state import read_training_state, restore_training_state, save_training_state
from .termination import StopTraining, TerminationGuard, stop_on_terminate


@torch.no_grad()
def validation_loss(model: torch.nn.Module, loss_fn: FlowMatchingLoss, loader: Iterable, device: torch.device,
                    seed: int) -> float:
    """Mean flow-matching loss on the validation images with fixed noise and times, labels kept."""
    model.eval()
    total, count = 0.0, 0
    for i, (x1, labels) in enumerate(loader):
        x1 = x1.to(device)
        total += float(loss_fn(model, x1, labels.to(device), step_generator(seed, -1 - i), drop=False)) * len(x1)
        count += len(x1)
    return total / max(count, 1)


def training_device(config: TrainingConfig, place: ProcessPlace) -> torch.device:
    """The device this process trains on; MedShiftError for a device or precision that cannot work."""
    device = process_device(resolve_device(config.device), place)
    if config.precision == "bf16" and device.type != "cuda":
        raise MedShiftError("--precision bf16 needs a CUDA GPU (bfloat16 autocast on the CPU is slower than fp32 "
                            "on most processors); use --precision fp32 or --device cuda")
    return device


DataFactory = Callable[[TrainingConfig, ProcessPlace, torch.device], object]
"""Builds a run's training data (folder_data.py describes what it provides) for one process."""


def folder_data(config: TrainingConfig, place: ProcessPlace, device: torch.device):
    """The run's data folder, split by subject (folder_data.FolderData; imported here: reading image files
    needs packages that training on the fly does not)."""
    from .folder_data import FolderData

    return FolderData(config.data_dir, config.domains, config.resolution, config.batch_size,
                      config.validation_fraction, config.seed, config.num_workers, place.rank, place.world_size)


def train(config: TrainingConfig, progress: bool = True, stop_after: int | None = None,
          data: DataFactory = folder_data) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun, every process calls this; the process group is opened here and always closed again.
    `stop_after` ends the run after that many steps in this call (to test resuming); `data` builds the
    training data (default: config.data_dir; `medshift train --simulate` passes the simulator's)."""
    config.check()
    if config.data_dir:
        config = replace(config, data_dir=os.path.realpath(config.data_dir))  # recorded resolved: --resume compares it
    place = ProcessPlace.from_environment()
    if config.batch_size % place.world_size:
        raise MedShiftError(f"--batch-size {config.batch_size} is the global batch and must be a multiple of the "
                            f"{place.world_size} training processes; use e.g. "
                            f"{max(1, config.batch_size // place.world_size) * place.world_size}")
    device = training_device(config, place)
    with process_group(place, device):
        source = data(config, place, device)
        try:
            run = TrainingRun(config, place, device, source)
            run.resume_or_start()
            return run.run(progress, stop_after)
        finally:
            if hasattr(source, "close"):
                source.close()


def train_from_arguments(args: argparse.Namespace, data: DataFactory = folder_data) -> Path:
    """Entry point of `medshift train`."""
    return train(config_from_arguments(args), progress=not args.quiet, data=data)


class TrainingRun:
    """One run: its data, network, EMA, optimiser and loss, its step counter and its run folder."""

    def __init__(self, config: TrainingConfig, place: ProcessPlace, device: torch.device, data) -> None:
        """Set up with `data` (folder_data.py): build the network, EMA, optimiser, scheduler and loss."""
        self.config, self.place, self.device, self.data = config, place, device, data
        self.domains = list(data.domains)
        torch.manual_seed(config.seed)
        self.model_config = config_from_preset(config.preset, len(self.domains))
        if config.resolution % self.model_config.downsampling_factor:
            raise MedShiftError(f"resolution {config.resolution} must be a multiple of "
                                f"{self.model_config.downsampling_factor} for the {config.preset!r} model")
        self.model = VelocityUNet(self.model_config).to(device, memory_format=network_memory_format(device))
        self.ema = make_ema(self.model, config.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.peak_learning_rate,
                                           weight_decay=config.weight_decay, betas=(0.9, 0.99))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, config.steps, config.warmup_steps))
        coupling_kwargs = {"sigma": config.bridge_sigma} if config.coupling == "schrodinger-bridge" else {}
        self.loss_fn = FlowMatchingLoss(make_coupling(config.coupling, **coupling_kwargs),
                                        self.model_config.null_label, config.label_dropout)
        self.out = Path(config.out_dir)
        self.state_path = self.out / "training_state.safetensors"
        self.log_path = self.out / "log.jsonl"
        self.step, self.best = 0, float("inf")
        self.log_records: list[dict] = []
        self.guard, self.saved_step, self.last_loss = TerminationGuard(), 0, None

    def resume_or_start(self) -> None:
        """With --resume, restore the saved state (same options required); otherwise refuse an existing run.

        Then the run folder is made and the log cut back to the restored step; the network is wrapped for
        torchrun and the remaining pieces (loaders, sample images, domain statistics) are prepared.
        """
        config = self.config
        if config.resume:
            meta, tensors = read_training_state(self.state_path)
            saved = {k: v for k, v in meta["config"].items() if k not in RESUMABLE_CHANGES}
            now = {k: v for k, v in asdict(config).items() if k in saved}
            for options in (saved, now):  # the same folder however it is spelled (./D, D/, /abs/D, a link)
                if isinstance(options.get("data_dir"), str):
                    options["data_dir"] = os.path.realpath(options["data_dir"])
            if saved != now:
                changed = "; ".join(f"{k}: {saved[k]!r} then, {now.get(k)!r} now" for k in sorted(saved)
                                    if saved[k] != now.get(k))
                raise MedShiftError(f"--resume: {self.state_path} was made with other options ({changed}); "
                                    "use the original options or a new --out")
            self.step = restore_training_state(meta, tensors, model=self.model, ema=self.ema,
                                               optimizer=self.optimizer, scheduler=self.scheduler)
            self.best = float(meta["config"].get("best_validation_loss", float("inf")))
        elif self.state_path.exists():
            raise MedShiftError(f"{self.out} already holds a training run; pass --resume to continue it or choose "
                                "a new --out")
        elif config.init_from:
            self._start_from_weights(config.init_from)
        barrier(self.place, self.device)  # every process has passed its checks before rank 0 writes anything
        mark_setup_finished()
        if self.place.is_main:
            check_writable_folder(self.out)  # an OSError now, not at the first checkpoint; sweeps stale temporaries
            # steps logged after the last save (by a killed run) are trained again: drop their old lines
            self.log_records = truncate_training_log(self.log_path, self.step)
        self.saved_step = self.step
        self.net = data_parallel(self.model, self.place, self.device)
        if config.compile:
            self.net = torch.compile(self.net)
        self.autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None
        self.val_loader = self.data.validation_batches()
        self.sample_images = (self.data.sample_batch() if self.place.is_main and config.sample_interval else None)
        self.statistics = (statistics_for_run(self.out / "latest.safetensors", config.resume, self._measure_statistics)
                           if self.place.is_main else None)

    def _measure_statistics(self) -> DomainStatistics:
        return measure_domain_statistics(self.data.statistics_images())

    def _start_from_weights(self, path: str) -> None:
        """Fine-tuning: the network and its EMA start from checkpoint `path` (same preset and domains)."""
        model, info = load_checkpoint(path)
        if list(info.domains) != self.domains:
            raise MedShiftError(f"--init-from {path}: its domains ({', '.join(info.domains)}) differ from the data's "
                                f"({', '.join(self.domains)}); name them in that order with --domains")
        if info.config != self.model_config:
            raise MedShiftError(f"--init-from {path}: its model differs from the {self.config.preset!r} preset; "
                                "train with the preset it was made with")
        self.model.load_state_dict(model.state_dict())
        self.ema.module.load_state_dict(model.state_dict())

    def optimisation_step(self, x1: torch.Tensor, labels: torch.Tensor) -> StepResult:
        """One optimisation step on this process's share of a batch, then the EMA update."""
        on_gpu = self.device.type == "cuda"
        x1 = x1.to(self.device, non_blocking=True).contiguous(memory_format=network_memory_format(self.device))
        held = []  # SIGTERM waits from the weights' update to the step count's (training/termination.py)
        try:
            result = train_step(self.net, self.optimizer, self.loss_fn, x1, labels.to(self.device, non_blocking=True),
                                step_generator(self.config.seed, self.step, self.place.rank,
                                               self.device if on_gpu else "cpu"),
                                scheduler=self.scheduler, autocast_dtype=self.autocast_dtype,
                                check_finite=not on_gpu, before_update=lambda: held.append(self.guard.hold()))
            self.ema.update_parameters(self.model)  # the same update on every process: the replicas hold equal weights
            self.step += 1
            self.last_loss = result.loss_tensor
        except BaseException:
            if held:
                self.guard.release(stop_now=False)
            raise
        if held:
            self.guard.release()
        return result

    def checkpoint_info(self, metrics: dict) -> CheckpointInfo:
        """The metadata of a checkpoint at the current step with `metrics`."""
        config = self.config
        provenance = self.data.provenance() | {
                      "steps": self.step, "images_seen": self.step * config.batch_size, "medshift": __version__,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "processes": self.place.world_size,
                      "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": asdict(config), "metrics": metrics}
        return CheckpointInfo(config=self.model_config, domains=tuple(self.domains), resolution=config.resolution,
                              pixel_spacing_mm=self.data.working_pixel_spacing(),
                              provenance=provenance, statistics=self.statistics,
                              statistics_provenance=self.data.statistics_provenance())

    def save_checkpoint(self, metrics: dict) -> None:
        """Write latest (and best, when the validation loss improved) and the state --resume needs."""
        ema_state = self.ema.module.state_dict()
        save_checkpoint(self.out / "latest.safetensors", ema_state, self.checkpoint_info(metrics))
        val = metrics.get("validation_loss")
        if val is not None and val < self.best:
            self.best = val
            save_checkpoint(self.out / "best.safetensors", ema_state, self.checkpoint_info(metrics))
        cfg = asdict(self.config) | {"best_validation_loss": self.best}
        save_training_state(self.state_path, step=self.step, model=self.model, ema=self.ema,
                            optimizer=self.optimizer, scheduler=self.scheduler, config=cfg)
        self.saved_step = self.step

    def save_stopped(self) -> None:
        """SIGTERM: log and save the last finished step unless it is saved (a second SIGTERM waits for that)."""
        self.guard.hold()
        if self.step == self.saved_step:
            return
        record = {"step": self.step, "stopped": "SIGTERM"}
        if self.last_loss is not None:
            record["loss"] = float(self.last_loss)
        if not self.log_records or self.log_records[-1]["step"] != self.step:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.log_records.append(record)
        self.save_checkpoint({k: v for k, v in record.items() if k == "loss"})
        save_loss_curve(self.log_records, self.out / "loss_curve.png")

    def log(self, record: dict, checkpoint_now: bool) -> None:
        """Rank 0: validate at checkpoints, append the log line, save, redraw the loss curve."""
        if checkpoint_now and self.data.validation_size:
            record["validation_loss"] = validation_loss(self.ema.module, self.loss_fn, self.val_loader, self.device,
                                                        self.config.seed)
        # the log line goes first: a run killed before the save below redoes (and relogs) the step
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log_records.append(record)
        if checkpoint_now:
            self.save_checkpoint({k: v for k, v in record.items() if k != "lr"})
            save_loss_curve(self.log_records, self.out / "loss_curve.png")

    def write_samples(self) -> None:
        """samples_step{N}.png: the fixed sample images translated by the EMA network into every domain."""
        images, labels = self.sample_images
        translations = translate_to_every_domain(self.ema.module, images, torch.tensor(labels))
        save_sample_grid(images, [self.domains[i] for i in labels], translations, self.domains,
                         self.out / f"samples_step{self.step}.png")

    def run(self, progress: bool = True, stop_after: int | None = None) -> Path:
        """Train up to config.steps (or `stop_after` steps in this call); returns the best checkpoint's path."""
        config, place = self.config, self.place
        bar = progress_bar(progress and place.is_main, total=config.steps, initial=self.step, desc="training",
                           unit="step")
        batches = self.data.batches(self.step)
        with stop_on_terminate(place.world_size == 1) as self.guard:
            try:
                self._train_loop(bar, batches, stop_after)
            except StopTraining:
                self.save_stopped()
                self.guard.resend()  # medshift train: Terminated, exit status 143
        bar.close()
        write_replica_digest(place, self.step, self.model, self.ema.module)
        barrier(place, self.device)
        best_path = self.out / "best.safetensors"
        return best_path if best_path.exists() else self.out / "latest.safetensors"

    def _train_loop(self, bar, batches, stop_after: int | None) -> None:
        """Steps with their logs, checkpoints and samples until the run or this call is done."""
        config, place = self.config, self.place
        last_time, last_step, steps_this_call = time.perf_counter(), self.step, 0
        while self.step < config.steps and (stop_after is None or steps_this_call < stop_after):
            x1, labels = next(batches)
            result = self.optimisation_step(x1, labels)
            steps_this_call += 1
            bar.update(1)
            step_finished = time.perf_counter()
            done = self.step >= config.steps or (stop_after is not None and steps_this_call >= stop_after)
            checkpoint_now = self.step % config.checkpoint_every == 0 or done
            if self.step % config.log_every == 0 or checkpoint_now:
                check_finite_loss(result.loss_tensor)  # read back only here: the device is not waited for per step
                bar.set_postfix(loss=f"{result.loss:.4f}")
                loss = mean_across_processes(result.loss, place, self.device)
                step_finished = time.perf_counter()
                seconds = max(step_finished - last_time, 1e-9)
                record = {"step": self.step, "loss": loss, "grad_norm": result.grad_norm,
                          "lr": self.optimizer.param_groups[0]["lr"],
                          "images_per_s": (self.step - last_step) * config.batch_size / seconds}
                last_time, last_step = step_finished, self.step
                if place.is_main:
                    self.log(record, checkpoint_now)
            sample_now = bool(config.sample_interval) and (self.step % config.sample_interval == 0
                                                           or self.step == config.steps)
            if checkpoint_now or sample_now:
                if place.is_main and sample_now:
                    self.write_samples()
                barrier(place, self.device)
                last_time += time.perf_counter() - step_finished  # images/s counts training time only
