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

Organised like torchcfm (one small class per matcher); plans are solved in torch on the batch's device in
float64 (log-domain Sinkhorn with epsilon scaling) with the squared Euclidean cost between flattened
samples: no POT, no copy to the host. Randomness: every draw (noise, times, bridge noise, partners) comes
from the `torch.Generator` passed in and is made on its device, then moved to x1's: a CPU generator gives
the same sample on any device, a generator on the training device never waits for the host.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

COUPLINGS = ("independent", "ot", "schrodinger-bridge")

SINKHORN_ITERATIONS = 10
"""Sinkhorn updates per epsilon-scaling stage (and after the last)."""
FINAL_ITERATIONS_FACTOR = 4
"""Updates at the final regularisation, in stages' worth (the marginals settle there)."""
SCALING_STAGES = 24
"""Stages of epsilon scaling of the entropic plan: from the cost's spread down to 2^-24 of it (image costs
spread over ~1e5, the bridge's reg is 0.02)."""
EXACT_REG = 1e-4
"""Regularisation of the exact plan, relative to the cost's spread."""
ROUNDING_ROUNDS = 8
"""Rounds that settle rows claimed twice when the exact plan is rounded to a permutation."""


@dataclass
class FlowSample:
    """One training sample of flow matching: evaluate the network at (x_t, t) and regress on u_t."""

    t: Tensor
    x0: Tensor
    x_t: Tensor
    u_t: Tensor


def draw_device(generator: torch.Generator | None) -> torch.device:
    """Where draws from `generator` are made: its own device (the CPU without one)."""
    return generator.device if generator is not None else torch.device("cpu")


def standard_normal_like(x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Noise x0 ~ N(0, I) shaped like x1, drawn on `generator`'s device and moved to x1's device."""
    noise = torch.randn(x1.shape, generator=generator, dtype=torch.float32, device=draw_device(generator))
    return noise.to(device=x1.device, dtype=x1.dtype)


def uniform_times(batch_size: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Times t ~ U[0, 1) (batch_size,), drawn on `generator`'s device, on `like`'s device and dtype."""
    t = torch.rand(batch_size, generator=generator, dtype=torch.float32, device=draw_device(generator))
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


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """Cost matrix (B0, B1): squared Euclidean distances between flattened samples, float64 on x0's device."""
    a = x0.detach().reshape(x0.shape[0], -1).to(torch.float64)
    b = x1.detach().reshape(x1.shape[0], -1).to(device=a.device, dtype=torch.float64)
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def log_sinkhorn(cost: Tensor, reg: float, stages: int = SCALING_STAGES,
                 iterations: int = SINKHORN_ITERATIONS) -> Tensor:
    """Log of the entropic OT plan (B0, B1) between uniform marginals for `cost`, regularisation `reg`.

    Log-domain Sinkhorn with epsilon scaling (Schmitzer 2019): the regularisation starts at the cost's
    spread (max - min) and halves every `iterations` updates, never below `reg`, for `stages` stages,
    each warm-started from the last, then `FINAL_ITERATIONS_FACTOR` x `iterations` more at `reg`. Runs
    in the cost's dtype on its device with a fixed number of updates and the regularisation as a tensor,
    so it never waits for the host."""
    if not reg > 0:
        raise ValueError(f"the entropic regularisation must be positive, got {reg}")
    n0, n1 = cost.shape
    log_a = torch.full((n0,), -math.log(n0), dtype=cost.dtype, device=cost.device)
    log_b = torch.full((n1,), -math.log(n1), dtype=cost.dtype, device=cost.device)
    f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
    spread = cost.max() - cost.min()
    for stage in range(stages + 1):
        eps = (spread / 2.0**stage).clamp_min(reg) if stage < stages else torch.as_tensor(reg, dtype=cost.dtype)
        for _ in range(iterations if stage < stages else FINAL_ITERATIONS_FACTOR * iterations):
            f = eps * (log_a - torch.logsumexp((g[None, :] - cost) / eps, dim=1))
            g = eps * (log_b - torch.logsumexp((f[:, None] - cost) / eps, dim=0))
    return (f[:, None] + g[None, :] - cost) / reg


_GRAPHS: dict[tuple, tuple] = {}


def device_log_sinkhorn(cost: Tensor, reg: float, stages: int = SCALING_STAGES) -> Tensor:
    """log_sinkhorn, on CUDA replayed from a captured CUDA graph (one launch instead of thousands).

    The solve has a fixed shape and number of updates, so it is captured once per (shape, dtype, device,
    reg, stages) and replayed every step; the eager loop is launch-bound on a GPU (about ten kernels per
    update, a few hundred updates). Elsewhere, or where capturing fails, the eager loop runs."""
    if cost.device.type != "cuda":
        return log_sinkhorn(cost, reg, stages)
    key = (tuple(cost.shape), cost.dtype, cost.device, reg, stages)
    if key not in _GRAPHS:
        try:
            static_cost = cost.clone()
            side = torch.cuda.Stream(cost.device)
            side.wait_stream(torch.cuda.current_stream(cost.device))
            with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs asks
                log_sinkhorn(static_cost, reg, stages)
            torch.cuda.current_stream(cost.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_plan = log_sinkhorn(static_cost, reg, stages)
            _GRAPHS[key] = (graph, static_cost, static_plan)
        except RuntimeError as exc:  # pragma: no cover - depends on the GPU and driver
            warnings.warn(f"OT plan: CUDA graph capture failed ({exc}); solving eagerly", RuntimeWarning,
                          stacklevel=2)
            _GRAPHS[key] = None
    if _GRAPHS[key] is None:
        return log_sinkhorn(cost, reg, stages)
    graph, static_cost, static_plan = _GRAPHS[key]
    static_cost.copy_(cost)
    graph.replay()
    return static_plan.clone()


def round_to_permutation(log_plan: Tensor, rounds: int = ROUNDING_ROUNDS) -> Tensor:
    """For each column j of a square plan, a row: its largest entry, rows claimed twice settled in `rounds` rounds.

    Each round, a row claimed by several columns stays with the one whose entry is largest; the others move
    to their largest entry among the rows no column holds yet. A fixed number of tensor operations (no host
    read-back); at a small regularisation the argmax is almost always a permutation already."""
    columns = torch.arange(log_plan.shape[1], device=log_plan.device)
    partner = log_plan.argmax(dim=0)
    for _ in range(rounds):
        score = log_plan[partner, columns]
        best = torch.full((log_plan.shape[0],), -math.inf, dtype=score.dtype, device=score.device)
        best = best.scatter_reduce(0, partner, score, reduce="amax")
        winner = torch.full_like(partner, log_plan.shape[1])
        winner = winner.scatter_reduce(0, partner, torch.where(score == best[partner], columns, winner[partner]),
                                       reduce="amin")
        keeps = winner[partner] == columns
        held = torch.zeros(log_plan.shape[0], dtype=torch.int64, device=log_plan.device)
        held = held.scatter_add(0, partner, keeps.long()) > 0  # (no boolean indexing: that waits for the device)
        moved = log_plan.masked_fill(held[:, None], -math.inf).argmax(dim=0)
        partner = torch.where(keeps, partner, moved)
    return partner


def ot_partners(x0: Tensor, x1: Tensor) -> Tensor:
    """For each x1[j], the row of x0 the exact minibatch OT plan pairs it with (a permutation, on x0's device).

    The exact plan of two equal batches is a permutation; it is found as the limit of the entropic plan at a
    regularisation of `EXACT_REG` times the cost's spread (log_sinkhorn), rounded to a permutation
    (round_to_permutation). Testing/test_couplings.py checks the pairing against POT's exact solver (ot.emd)."""
    cost = squared_distances(x0, x1)
    spread = (cost.max() - cost.min()).clamp_min(1e-12)
    return round_to_permutation(device_log_sinkhorn(cost / spread, EXACT_REG,
                                                    stages=math.ceil(math.log2(1.0 / EXACT_REG))))


def ot_plan(x0: Tensor, x1: Tensor) -> Tensor:
    """Minibatch optimal-transport plan (B0, B1), uniform weights, float64 on x0's device: ot_partners as a plan."""
    columns = torch.arange(x1.shape[0], device=x0.device)
    plan = torch.zeros(x0.shape[0], x1.shape[0], dtype=torch.float64, device=x0.device)
    plan[ot_partners(x0, x1), columns] = 1.0 / x1.shape[0]
    return plan


def entropic_ot_plan(x0: Tensor, x1: Tensor, reg: float) -> Tensor:
    """Entropic optimal-transport plan (B0, B1) with regularisation `reg` and uniform weights (log_sinkhorn).

    The cost is the raw squared Euclidean distance (not normalised, as torchcfm's default), so that with
    reg = 2 sigma^2 the plan is the static Schrodinger-bridge coupling exp(-|x0 - x1|^2 / (2 sigma^2)) of a
    Brownian bridge with noise sigma. For images the costs are in the thousands and the spread between
    pairs is far larger than reg, where plain Sinkhorn needs tens of thousands of iterations; epsilon
    scaling in the log domain converges in a few hundred updates."""
    return device_log_sinkhorn(squared_distances(x0, x1), reg).exp()


def draw_partners(plan: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each column j of a plan (B0, B1), a row index drawn from plan[:, j] / plan[:, j].sum().

    Drawn on the generator's device (the plan's without one) and returned on the plan's device."""
    conditional = (plan / plan.sum(dim=0, keepdim=True)).T  # row j: j's partner law
    device = generator.device if generator is not None else plan.device
    return torch.multinomial(conditional.to(device), 1, generator=generator).squeeze(1).to(plan.device)


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
        return x0[ot_partners(x0, x1)]


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
        return x0[draw_partners(entropic_ot_plan(x0, x1, self.reg), generator)]

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
    dropped = torch.rand(labels.shape, generator=generator, device=draw_device(generator)) < p
    return torch.where(dropped.to(labels.device), torch.full_like(labels, null_label), labels)
