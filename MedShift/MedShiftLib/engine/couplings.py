"""Couplings for conditional flow matching: where to evaluate the velocity network and what it must predict.

Time runs from noise to data: x0 ~ N(0, I) at t = 0, the data batch x1 at t = 1. A coupling takes a data
batch x1 (B, C, H, W), draws the noise, pairs noise with data and returns a `FlowSample` with the times t,
the paired noise x0, the point on the conditional path x_t and the regression target u_t. The data order
is never changed (labels stay with x1); any re-pairing reorders the noise.

    independent          x0 drawn independently of x1 (Lipman et al. 2023), straight path
                         x_t = (1 - (1 - sigma_min) t) x0 + t x1,  u_t = x1 - (1 - sigma_min) x0
    ot                   exact minibatch optimal-transport pairing (Tong et al. 2024, Pooladian et al.
                         2023), same straight path
    schrodinger-bridge   pairs drawn from the entropic OT plan with reg = 2 sigma^2, Brownian-bridge path
                         x_t = t x1 + (1 - t) x0 + sigma sqrt(t (1 - t)) eps (Tong et al. 2024, SB-CFM)

Organised like torchcfm (one small class per matcher); plans come from POT on the CPU in float64 with the
squared Euclidean cost between flattened samples. Randomness: every draw (noise, times, bridge noise,
partners) comes from the `torch.Generator` passed in, which must be a CPU generator; draws are made on the
CPU and moved to x1's device, so a given generator state gives the same sample on any device.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..optional_packages import import_optional

COUPLINGS = ("independent", "ot", "schrodinger-bridge")

MARGINAL_TOLERANCE = 1e-2
"""Largest relative error of the entropic plan's marginals accepted without a warning."""


@dataclass
class FlowSample:
    """One training sample of flow matching: evaluate the network at (x_t, t) and regress on u_t."""

    t: Tensor
    x0: Tensor
    x_t: Tensor
    u_t: Tensor


def standard_normal_like(x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Noise x0 ~ N(0, I) shaped like x1, drawn on the CPU from `generator` and moved to x1's device."""
    noise = torch.randn(x1.shape, generator=generator, dtype=torch.float32)
    return noise.to(device=x1.device, dtype=x1.dtype)


def uniform_times(batch_size: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Times t ~ U[0, 1) (batch_size,), drawn on the CPU from `generator`, on `like`'s device and dtype."""
    t = torch.rand(batch_size, generator=generator, dtype=torch.float32)
    return t.to(device=like.device, dtype=like.dtype)


def _checked_times(t: Tensor | None, x1: Tensor, generator: torch.Generator | None) -> Tensor:
    if t is None:
        return uniform_times(x1.shape[0], x1, generator)
    if t.shape != (x1.shape[0],):
        raise ValueError(f"t must have shape ({x1.shape[0]},) to match the batch, got {tuple(t.shape)}")
    return t.to(device=x1.device, dtype=x1.dtype)


def _check_batch(x1: Tensor) -> None:
    if x1.dim() < 2 or x1.shape[0] == 0:
        raise ValueError(f"x1 must be a non-empty batch (B, ...), got shape {tuple(x1.shape)}")
    if not x1.is_floating_point():
        raise ValueError(f"x1 must be a floating-point tensor, got {x1.dtype}")


def _per_sample(t: Tensor, x: Tensor) -> Tensor:
    """t (B,) viewed as (B, 1, ..., 1) so it broadcasts over one sample of x."""
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def _pot():
    """POT (imported when an OT coupling is first used, so the independent coupling and translation need none)."""
    return import_optional("ot", "the ot and schrodinger-bridge couplings (--coupling independent needs none)", "POT")


def squared_distances(x0: Tensor, x1: Tensor) -> np.ndarray:
    """Cost matrix (B0, B1): squared Euclidean distances between flattened samples, float64 on the CPU."""
    a = x0.detach().reshape(x0.shape[0], -1).to(device="cpu", dtype=torch.float64).numpy()
    b = x1.detach().reshape(x1.shape[0], -1).to(device="cpu", dtype=torch.float64).numpy()
    return _pot().dist(a, b, metric="sqeuclidean")


def ot_plan(x0: Tensor, x1: Tensor) -> np.ndarray:
    """Exact optimal-transport plan (B0, B1) between two batches with uniform weights (POT `ot.emd`)."""
    cost, ot = squared_distances(x0, x1), _pot()
    return ot.emd(ot.unif(cost.shape[0]), ot.unif(cost.shape[1]), cost, numItermax=10_000_000)


def entropic_ot_plan(x0: Tensor, x1: Tensor, reg: float) -> np.ndarray:
    """Entropic optimal-transport plan (B0, B1) with regularisation `reg` and uniform weights (POT Sinkhorn).

    The cost is the raw squared Euclidean distance (not normalised, as torchcfm's default), so that with
    reg = 2 sigma^2 the plan is the static Schrodinger-bridge coupling exp(-|x0 - x1|^2 / (2 sigma^2)) of a
    Brownian bridge with noise sigma. For images the costs are in the thousands and the spread between
    pairs is far larger than reg, where plain and log-domain Sinkhorn need tens of thousands of iterations;
    POT's epsilon-scaling variant of the stabilised log-domain Sinkhorn converges in milliseconds.
    Warns if the marginals are off by more than `MARGINAL_TOLERANCE` (relative).
    """
    if not reg > 0:
        raise ValueError(f"the entropic regularisation must be positive, got {reg}")
    cost, ot = squared_distances(x0, x1), _pot()
    a, b = ot.unif(cost.shape[0]), ot.unif(cost.shape[1])
    with warnings.catch_warnings():
        # the inner solves of each annealing stage stop early by design; the result is checked below
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        plan = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_epsilon_scaling", numItermax=200)
    error = max(np.abs(plan.sum(axis=1) / a - 1).max(), np.abs(plan.sum(axis=0) / b - 1).max())
    if not np.all(np.isfinite(plan)) or error > MARGINAL_TOLERANCE:
        warnings.warn(f"entropic OT plan did not converge (marginal error {error:.3g}); increase reg",
                      RuntimeWarning, stacklevel=2)
    return plan


def draw_partners(plan: np.ndarray, generator: torch.Generator | None = None) -> Tensor:
    """For each column j of a plan (B0, B1), a row index drawn from plan[:, j] / plan[:, j].sum() (CPU)."""
    conditional = torch.from_numpy(plan / plan.sum(axis=0, keepdims=True)).T  # row j: j's partner law
    return torch.multinomial(conditional, 1, generator=generator).squeeze(1)


class IndependentCoupling:
    """Noise drawn independently of the data; straight path of Lipman et al. with a sigma_min-wide end."""

    def __init__(self, sigma_min: float = 1e-4):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = sigma_min

    def pair_noise(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The noise reordered to pair with x1 row by row; here: unchanged."""
        return x0

    def sample(self, x1: Tensor, generator: torch.Generator | None = None, t: Tensor | None = None) -> FlowSample:
        """Draw noise and times for the data batch x1 and return (t, x0, x_t, u_t) on x1's device."""
        _check_batch(x1)
        x0 = self.pair_noise(standard_normal_like(x1, generator), x1, generator)
        t = _checked_times(t, x1, generator)
        tb = _per_sample(t, x1)
        x_t = (1 - (1 - self.sigma_min) * tb) * x0 + tb * x1
        u_t = x1 - (1 - self.sigma_min) * x0
        return FlowSample(t=t, x0=x0, x_t=x_t, u_t=u_t)


class MinibatchOTCoupling(IndependentCoupling):
    """Noise re-paired with the data by the exact minibatch OT plan; same straight path."""

    def pair_noise(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The noise reordered so that row j is x1[j]'s OT partner (the plan is a permutation)."""
        plan = ot_plan(x0, x1)
        partner = torch.from_numpy(plan.argmax(axis=0)).to(x0.device)
        return x0[partner]


class SchrodingerBridgeCoupling:
    """Noise paired with the data by the entropic OT plan (reg = 2 sigma^2); Brownian-bridge path.

    sigma is the bridge noise per pixel for images in [-1, 1]. Default 0.1: the bridge adds at most
    sigma / 2 = 0.05 (2.5 % of the range) at t = 1/2, and the extra target variance, about 3.6 sigma^2 per
    pixel averaged over t (with time_epsilon = 1e-3), stays a few percent of the straight path's ~1.3;
    sigma = 0.5 would add ~0.9. Times are kept in [time_epsilon, 1 - time_epsilon], where the drift
    term (1 - 2t) / (2 t (1 - t)) is finite.
    """

    def __init__(self, sigma: float = 0.1, time_epsilon: float = 1e-3):
        if not sigma > 0:
            raise ValueError(f"the bridge noise sigma must be positive, got {sigma}")
        if not 0.0 < time_epsilon < 0.5:
            raise ValueError(f"time_epsilon must be in (0, 0.5), got {time_epsilon}")
        self.sigma = sigma
        self.time_epsilon = time_epsilon

    @property
    def reg(self) -> float:
        """Entropic regularisation of the plan, 2 sigma^2, matching the bridge noise."""
        return 2.0 * self.sigma**2

    def pair_noise(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """For each data point j, a noise partner drawn from plan[:, j] / plan[:, j].sum() (data order kept)."""
        partner = draw_partners(entropic_ot_plan(x0, x1, self.reg), generator)
        return x0[partner.to(x0.device)]

    def sample(self, x1: Tensor, generator: torch.Generator | None = None, t: Tensor | None = None) -> FlowSample:
        """Draw paired noise, times and bridge noise for x1 and return (t, x0, x_t, u_t) on x1's device."""
        _check_batch(x1)
        x0 = self.pair_noise(standard_normal_like(x1, generator), x1, generator)
        t = _checked_times(t, x1, generator).clamp(self.time_epsilon, 1 - self.time_epsilon)
        eps = standard_normal_like(x1, generator)
        tb = _per_sample(t, x1)
        mu_t = tb * x1 + (1 - tb) * x0
        x_t = mu_t + self.sigma * torch.sqrt(tb * (1 - tb)) * eps
        u_t = x1 - x0 + (1 - 2 * tb) / (2 * tb * (1 - tb)) * (x_t - mu_t)
        return FlowSample(t=t, x0=x0, x_t=x_t, u_t=u_t)


def make_coupling(name: str, **kwargs) -> IndependentCoupling | SchrodingerBridgeCoupling:
    """The coupling called `name` (one of COUPLINGS), built with `kwargs`."""
    classes = {"independent": IndependentCoupling, "ot": MinibatchOTCoupling,
               "schrodinger-bridge": SchrodingerBridgeCoupling}
    if name not in classes:
        raise ValueError(f"unknown coupling {name!r}; choose one of: {', '.join(COUPLINGS)}")
    return classes[name](**kwargs)


def drop_labels(labels: Tensor, null_label: int, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Labels with each one replaced by `null_label` with probability p (classifier-free guidance dropout)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the label dropout must be a probability in [0, 1], got {p}")
    dropped = torch.rand(labels.shape, generator=generator) < p
    return torch.where(dropped.to(labels.device), torch.full_like(labels, null_label), labels)
