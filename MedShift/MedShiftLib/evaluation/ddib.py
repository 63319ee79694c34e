"""DDIB baseline: translation through a shared latent with one separate model per domain.

Dual Diffusion Implicit Bridges (Su et al., ICLR 2023) invert the source image with a model trained on
the source domain alone and regenerate it with a model trained on the target domain alone:

    x(tau) = x(1) - integral_tau^1 v_S(x, t) dt        y = x(tau) + integral_tau^1 v_R(x, t) dt

DDIB proper has tau = 0 (the shared state is pure noise). At MedShift's own tau the same pair of
models shows what one shared, class-conditional model adds over separate ones. A single-domain model
comes from `medshift train DATA --domains D` with exactly one domain named; it is used without guidance.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ..engine.checkpoint import CheckpointInfo, load_checkpoint
from ..engine.network import VelocityUNet
from ..engine.ode_solvers import IntegrationStats
from ..engine.translation import invert_and_regenerate
from ..errors import MedShiftError
from ..settings import TranslationSettings


@dataclass(frozen=True)
class SingleDomainModel:
    """A single-domain model: its network, metadata and file."""

    model: VelocityUNet
    info: CheckpointInfo
    path: Path


def parse_ddib_models(items: Sequence[str]) -> dict[str, Path]:
    """{domain: checkpoint} from command-line items 'DOMAIN=CKPT'; MedShiftError for a malformed or repeated item."""
    paths: dict[str, Path] = {}
    for item in items:
        domain, sep, path = item.partition("=")
        if not sep or not domain or not path:
            raise MedShiftError(f"DDIB model {item!r}: write it as DOMAIN=CHECKPOINT, "
                                "e.g. sim-low=runs/sim-low/best.safetensors")
        if domain in paths:
            raise MedShiftError(f"DDIB model for {domain!r} given twice")
        paths[domain] = Path(path)
    return paths


def load_ddib_models(paths: Mapping[str, str | Path], domains: Sequence[str], resolution: int,
                     device: str | torch.device = "cpu") -> dict[str, SingleDomainModel]:
    """Load one single-domain model per domain; MedShiftError unless each covers exactly its domain at `resolution`."""
    unknown = sorted(set(paths) - set(domains))
    if unknown:
        raise MedShiftError(f"DDIB model(s) for unknown domain(s) {', '.join(unknown)}; the evaluated model knows: "
                            f"{', '.join(domains)}")
    models = {}
    for domain, path in paths.items():
        model, info = load_checkpoint(path, device)
        if info.domains != (domain,):
            raise MedShiftError(f"{path}: a DDIB model must be trained on {domain!r} alone (`medshift train DATA "
                                f"--domains {domain}`); this one knows: {', '.join(info.domains)}")
        if info.resolution != resolution:
            raise MedShiftError(f"{path}: trained at {info.resolution} px, but the evaluated model works at "
                                f"{resolution} px; train the DDIB models at the same --resolution")
        models[domain] = SingleDomainModel(model, info, Path(path))
    return models


@torch.inference_mode()
def translate_ddib(source: SingleDomainModel, target: SingleDomainModel, x: Tensor,
                   settings: TranslationSettings, stats: IntegrationStats | None = None) -> Tensor:
    """Invert normalised images (B, 1, H, W) to settings.tau with the source model, regenerate with the target model.

    Only tau, solver, steps, schedule and tiling of `settings` apply: no guidance or noise renewal (and,
    being the flow alone, no contrast transfer or noise matching).
    """
    plain = replace(settings, guidance_scale=1.0, noise_renewal=0.0)
    labels = torch.zeros(len(x), dtype=torch.long)
    return invert_and_regenerate(source.model, x, labels, labels, plain, stats=stats, target_model=target.model)
