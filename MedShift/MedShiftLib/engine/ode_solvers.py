"""Integrating a velocity field dx/dt = v(x, t) from t_start to t_end, in either direction.

Translation inverts an image from t=1 back to t=tau and regenerates it from tau to 1; both legs call
`integrate`. The fixed-step solvers split the interval into `steps` equal steps (dt = (t_end -
t_start) / steps, negative when integrating backwards) and take, per step:

    euler:  x += dt * v(x, t)
    heun:   k1 = v(x, t);  k2 = v(x + dt k1, t + dt);  x += dt (k1 + k2) / 2
    rk4:    k1 = v(x, t);  k2 = v(x + dt/2 k1, t + dt/2);  k3 = v(x + dt/2 k2, t + dt/2)
            k4 = v(x + dt k3, t + dt);  x += dt (k1 + 2 k2 + 2 k3 + k4) / 6

The fixed-step grid is `uniform` (the default) or `quadratic`: steps shrink towards the data end,
t_k = hi - (hi - lo) (1 - k/N)^2 with lo, hi = min and max of (t_start, t_end), visited in reverse when
integrating backwards. Fine texture such as quantum noise forms only in the last few
per cent of time, where uniform steps are too coarse to make it (docs/evaluation.md).

`dopri5` is torchdiffeq's adaptive Dormand-Prince 5(4) with the given rtol/atol; it chooses its own
steps, so `steps` only sets the units its progress is reported in (never a limit on its work).

Nothing here is random, and nothing turns gradients on or off: wrap the call in `torch.inference_mode()`
when no gradients are needed. The state keeps the dtype and device of `x`; the velocity receives the
time as a Python float. A `CancelToken` is checked before every velocity evaluation, so cancelling
stops the work within one evaluation with `TranslationCancelled`.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import TranslationCancelled
from ..settings import SCHEDULES, SOLVERS

FIXED_STEP_STAGES = {"euler": 1, "heun": 2, "rk4": 4}

Velocity = Callable[[Tensor, float], Tensor]
ProgressCallback = Callable[[int, int], None]


class CancelToken:
    """A flag that stops a running integration: set by another thread (a Cancel button), or by another
    process creating `cancel_file` (the Slicer panel asking its background worker to stop)."""

    def __init__(self, cancel_file: str | Path | None = None) -> None:
        self._event = threading.Event()
        self.cancel_file = Path(cancel_file) if cancel_file is not None else None

    def cancel(self) -> None:
        """Ask the running integration to stop before its next velocity evaluation."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` has been called or the cancel file exists."""
        if not self._event.is_set() and self.cancel_file is not None and self.cancel_file.exists():
            self._event.set()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise TranslationCancelled when cancellation was asked for."""
        if self.cancelled:
            raise TranslationCancelled("translation cancelled by the user")


@dataclass
class IntegrationStats:
    """Work done by `integrate`; added to on every call, so one instance can span several legs."""

    nfe: int = 0
    steps: int = 0
    accepted: int = 0
    rejected: int = 0


def fixed_step_nfe(solver: str, steps: int) -> int:
    """Velocity evaluations one `integrate` call makes with a fixed-step solver."""
    _check_solver(solver)
    if solver not in FIXED_STEP_STAGES:
        raise ValueError(f"solver {solver!r} is adaptive; its number of evaluations is not known in advance")
    return FIXED_STEP_STAGES[solver] * steps


def time_grid(t_start: float, t_end: float, steps: int, schedule: str = "uniform") -> list[float]:
    """The steps + 1 times a fixed-step solver visits from t_start to t_end (both included)."""
    _check_schedule(schedule)
    fractions = [k / steps for k in range(steps + 1)]
    if schedule == "uniform":
        return [t_start + (t_end - t_start) * f for f in fractions]
    low, high = min(t_start, t_end), max(t_start, t_end)
    upward = [high - (high - low) * (1.0 - f) ** 2 for f in fractions]
    return upward if t_end >= t_start else upward[::-1]


def integrate(
    velocity: Velocity,
    x: Tensor,
    t_start: float,
    t_end: float,
    *,
    solver: str = "euler",
    steps: int = 8,
    schedule: str = "uniform",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats: IntegrationStats | None = None,
) -> Tensor:
    """Integrate dx/dt = velocity(x, t) from t_start to t_end and return x(t_end)."""
    _check_solver(solver)
    _check_schedule(schedule)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    steps = int(steps)
    t_start, t_end = float(t_start), float(t_end)
    stats = stats if stats is not None else IntegrationStats()
    if t_start == t_end:
        if progress is not None:
            progress(steps, steps)
        return x

    def guarded(state: Tensor, t: float) -> Tensor:
        if cancel is not None:
            cancel.raise_if_cancelled()
        stats.nfe += 1
        return velocity(state, t).to(state.dtype)

    if solver == "dopri5":
        if schedule != "uniform":
            raise ValueError("dopri5 chooses its own steps; a time schedule applies to euler, heun and rk4 only")
        return _integrate_dopri5(guarded, x, t_start, t_end, steps, rtol, atol, progress, stats)
    step = {"euler": _euler_step, "heun": _heun_step, "rk4": _rk4_step}[solver]
    times = time_grid(t_start, t_end, steps, schedule)
    for k, (t0, t1) in enumerate(zip(times[:-1], times[1:])):
        x = step(guarded, x, t0, t1 - t0)
        stats.steps += 1
        if progress is not None:
            progress(k + 1, steps)
    return x


def _check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of: {', '.join(SOLVERS)}")


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown time schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _euler_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    return x + dt * v(x, t)


def _heun_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    k1 = v(x, t)
    k2 = v(x + dt * k1, t + dt)
    return x + (dt / 2) * (k1 + k2)


def _rk4_step(v: Velocity, x: Tensor, t: float, dt: float) -> Tensor:
    k1 = v(x, t)
    k2 = v(x + (dt / 2) * k1, t + dt / 2)
    k3 = v(x + (dt / 2) * k2, t + dt / 2)
    k4 = v(x + dt * k3, t + dt)
    return x + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


class _Dopri5Field:
    """The velocity in torchdiffeq's func(t, y) form, counting accepted steps and reporting progress."""

    def __init__(self, velocity: Velocity, t_start: float, t_end: float, steps: int,
                 progress: ProgressCallback | None, stats: IntegrationStats) -> None:
        self.velocity, self.t_start, self.span = velocity, t_start, abs(t_end - t_start)
        self.steps, self.progress, self.stats = steps, progress, stats
        self.reported = 0

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        return self.velocity(y, float(t))

    def callback_accept_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        # torchdiffeq gives t0 in the caller's time and dt > 0 in its own (possibly reversed) time.
        self.stats.steps += 1
        self.stats.accepted += 1
        covered = (abs(float(t0) - self.t_start) + abs(float(dt))) / self.span
        self.report(min(self.steps, math.floor(covered * self.steps + 1e-9)))

    def callback_reject_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self.stats.rejected += 1

    def report(self, done: int) -> None:
        if self.progress is not None and done > self.reported:
            self.reported = done
            self.progress(done, self.steps)


def _integrate_dopri5(velocity: Velocity, x: Tensor, t_start: float, t_end: float, steps: int, rtol: float,
                      atol: float, progress: ProgressCallback | None, stats: IntegrationStats) -> Tensor:
    from torchdiffeq import odeint  # only the adaptive solver needs it

    field = _Dopri5Field(velocity, t_start, t_end, steps, progress, stats)
    time_dtype = torch.float32 if x.device.type == "mps" else torch.float64
    times = torch.tensor([t_start, t_end], dtype=time_dtype, device=x.device)
    x = odeint(field, x, times, rtol=rtol, atol=atol, method="dopri5")[-1]
    field.report(steps)
    return x
