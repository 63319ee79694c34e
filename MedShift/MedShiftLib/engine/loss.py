"""The conditional flow-matching loss, the one objective of training and validation.

    x0 ~ N(0, I) paired with the data batch x1 by the coupling (couplings.py), t ~ U[0, 1),
    labels dropped to the null label with probability p (classifier-free guidance; 0 in validation),
    loss = mean || v(x_t, t, label) - u_t ||^2

Every draw (noise, times, partners, dropped labels) comes from the CPU generator passed in, in that
order, so a given generator gives the same loss on any device.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .couplings import IndependentCoupling, SchrodingerBridgeCoupling, drop_labels


class FlowMatchingLoss:
    """Mean squared error between the network's velocity and the coupling's target velocity u_t."""

    def __init__(self, coupling: IndependentCoupling | SchrodingerBridgeCoupling, null_label: int,
                 label_dropout: float = 0.2) -> None:
        if not 0.0 <= label_dropout <= 1.0:
            raise ValueError(f"the label dropout must be a probability in [0, 1], got {label_dropout}")
        self.coupling, self.null_label, self.label_dropout = coupling, null_label, label_dropout

    def __call__(self, model: nn.Module, x1: Tensor, labels: Tensor, generator: torch.Generator | None = None,
                 *, drop: bool = True, autocast_dtype: torch.dtype | None = None) -> Tensor:
        """The loss of `model` on the data batch x1 (B, 1, H, W) with domain labels (B,), as a scalar tensor.

        `drop=False` keeps every label (validation); `autocast_dtype` runs the network under autocast.
        """
        sample = self.coupling.sample(x1, generator=generator)
        if drop:
            labels = drop_labels(labels, self.null_label, self.label_dropout, generator=generator)
        with torch.autocast(x1.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            prediction = model(sample.x_t, sample.t, labels.to(x1.device))
        return torch.mean((prediction.float() - sample.u_t) ** 2)
