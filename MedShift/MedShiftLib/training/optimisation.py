"""One optimisation step of the velocity network, its exponential moving average, and the learning rate.

`train_step` evaluates the flow-matching loss (engine/loss.py), clips the gradient and steps AdamW and
the scheduler; the trainer then updates the EMA (`make_ema`) once per step with the raw model's weights,
so every torchrun process keeps the same average.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ..engine.loss import FlowMatchingLoss


def ema_decay_at(num_averaged: int | Tensor, decay: float) -> float | Tensor:
    """The EMA decay after `num_averaged` updates: min(decay, (1 + n) / (10 + n)).

    The warm-up keeps early weights (the zero-initialised head, an untrained patch skip) from
    lingering in the average: with a fixed 0.999, 0.999^1500 = 22 % of the step-0 weights are still
    there after 1,500 steps (docs/training.md).
    """
    ratio = (1.0 + num_averaged) / (10.0 + num_averaged)
    return torch.clamp(ratio, max=decay) if torch.is_tensor(ratio) else min(decay, ratio)


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """Exponential moving average of `model`'s weights (torch.optim.swa_utils), with decay warm-up."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor | int) -> None:
        # the weight 1 - ema_decay_at(n, decay) as a tensor where n lives (the weights' device): no read-back
        weight = 1.0 - ema_decay_at(torch.as_tensor(num_averaged, dtype=torch.float64), decay)
        if torch.is_floating_point(averaged[0]):
            change = torch._foreach_sub(current, averaged)
            torch._foreach_mul_(change, weight.to(averaged[0].dtype))
            torch._foreach_add_(averaged, change)
        else:  # integer buffers: copy
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_factor: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to `min_factor`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class StepResult:
    """What one optimisation step reports, as tensors on the training device (read back only when logged)."""

    loss_tensor: Tensor
    grad_norm_tensor: Tensor

    @property
    def loss(self) -> float:
        """The loss as a number (waits for the device)."""
        return float(self.loss_tensor)

    @property
    def grad_norm(self) -> float:
        """The gradient norm before clipping as a number (waits for the device)."""
        return float(self.grad_norm_tensor)


def check_finite_loss(loss: float | Tensor) -> None:
    """FloatingPointError for a NaN or infinite training loss, with what to do."""
    if not torch.isfinite(torch.as_tensor(loss)):
        raise FloatingPointError("training loss is NaN or infinite; lower the learning rate or check the data")


def scaled_learning_rate(learning_rate: float, batch_size: int, rule: str, reference_batch: int = 16) -> float:
    """The peak learning rate for `batch_size` when `learning_rate` is the one for `reference_batch` images.

    "sqrt": learning_rate * sqrt(batch / reference) (the square-root rule for Adam-type optimisers, Malladi
    et al. 2022, "On the SDEs and scaling rules for adaptive gradient algorithms"); "linear": proportional
    (Goyal et al. 2017, for SGD); "none": unchanged."""
    factors = {"none": 1.0, "sqrt": math.sqrt(batch_size / reference_batch), "linear": batch_size / reference_batch}
    if rule not in factors:
        raise ValueError(f"unknown learning-rate scaling {rule!r}; choose one of: {', '.join(factors)}")
    return learning_rate * factors[rule]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: FlowMatchingLoss,
    x1: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = 1.0,
    autocast_dtype: torch.dtype | None = None,
    check_finite: bool = True,
    before_update: Callable[[], None] | None = None,
) -> StepResult:
    """One flow-matching step on a batch x1 (B, 1, H, W) with domain labels (B,).

    `check_finite=False` leaves the NaN check to the caller (at its log steps): checking every step makes the
    host wait for the device. `before_update` is called just before the weights change (training/termination.py)."""
    model.train()
    loss = loss_fn(model, x1, labels, generator, autocast_dtype=autocast_dtype)
    if check_finite:
        check_finite_loss(loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip else float("inf"))
    if before_update is not None:
        before_update()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return StepResult(loss_tensor=loss.detach(), grad_norm_tensor=grad_norm.detach())
