"""One method's scores on one domain pair, and the average rank over pairs and metrics (as the paper ranks)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RANKED_METRICS = {"ssim_clean": True, "psnr_clean": True, "classifier_accuracy": True, "kid": False,
                  "coverage": True, "nps_error": False}  # metric -> higher is better


@dataclass
class MethodResult:
    """One method/setting on one domain pair: mean metrics and its output for the first view (model range)."""

    method: str
    family: str
    source: str
    target: str
    tau: float | None
    guidance: float | None
    metrics: dict[str, float]
    example: np.ndarray


def average_ranks(results: Sequence[MethodResult]) -> dict[str, float]:
    """Average rank of each ranked method over every pair and ranked metric (1 = best; ties share ranks)."""
    from scipy.stats import rankdata

    ranked = [r for r in results if r.family != "oracle"]
    methods = sorted({r.method for r in ranked})
    totals = {m: [] for m in methods}
    for pair in sorted({(r.source, r.target) for r in ranked}):
        rows = {r.method: r for r in ranked if (r.source, r.target) == pair}
        names = [m for m in methods if m in rows]
        for metric, higher_is_better in RANKED_METRICS.items():
            values = np.array([rows[m].metrics[metric] for m in names])
            ranks = rankdata(-values if higher_is_better else values, method="average")
            for m, rank in zip(names, ranks):
                totals[m].append(float(rank))
    return {m: float(np.mean(v)) for m, v in totals.items()}
