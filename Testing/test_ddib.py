"""DDIB baseline: single-domain models are checked before use, and a translation inverts with the source
domain's model and regenerates with the target domain's."""
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tiny_checkpoint
from scipy.ndimage import gaussian_filter

from MedShiftLib.engine.ode_solvers import IntegrationStats, integrate
from MedShiftLib.engine.translation import guided_velocity
from MedShiftLib.errors import MedShiftError
from MedShiftLib.evaluation.ddib import load_ddib_models, parse_ddib_models, translate_ddib
from MedShiftLib.settings import TranslationSettings

DOMAINS = ("a", "b", "c")


@pytest.fixture(scope="module")
def single_domain(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddib")
    return {d: write_tiny_checkpoint(root / f"{d}.safetensors", domains=(d,), seed=k) for k, d in enumerate(DOMAINS)}


def test_models_are_named_domain_equals_checkpoint():
    assert parse_ddib_models(["a=runs/a/best.safetensors", "b=x=y.safetensors"]) == {
        "a": Path("runs/a/best.safetensors"), "b": Path("x=y.safetensors")}
    for bad in (["a"], ["=x.safetensors"], ["a="]):
        with pytest.raises(MedShiftError, match="DOMAIN=CHECKPOINT"):
            parse_ddib_models(bad)
    with pytest.raises(MedShiftError, match="twice"):
        parse_ddib_models(["a=x.safetensors", "a=y.safetensors"])


def test_only_single_domain_models_of_known_domains_at_the_right_resolution_load(single_domain, tmp_path):
    models = load_ddib_models(single_domain, DOMAINS, 32)
    assert {d: m.info.domains for d, m in models.items()} == {d: (d,) for d in DOMAINS}
    with pytest.raises(MedShiftError, match="trained on 'a' alone"):
        load_ddib_models({"a": single_domain["b"]}, DOMAINS, 32)
    shared = write_tiny_checkpoint(tmp_path / "shared.safetensors", domains=DOMAINS)
    with pytest.raises(MedShiftError, match="--domains a"):
        load_ddib_models({"a": shared}, DOMAINS, 32)
    with pytest.raises(MedShiftError, match="same --resolution"):
        load_ddib_models(single_domain, DOMAINS, 64)
    with pytest.raises(MedShiftError, match="unknown domain"):
        load_ddib_models({"z": single_domain["a"]}, DOMAINS, 32)


def test_inversion_uses_the_source_model_and_regeneration_the_target_model(single_domain):
    models = load_ddib_models(single_domain, DOMAINS, 32)
    x = torch.from_numpy(gaussian_filter(np.random.default_rng(0).normal(0, 1, (2, 1, 32, 32)), (0, 0, 2, 2))).float()
    settings = TranslationSettings("a", "b", tau=0.0, steps=3, schedule="quadratic", guidance_scale=4.0,
                                   noise_renewal=1.0, contrast_transfer=True)  # the last three do not apply
    stats = IntegrationStats()
    out = translate_ddib(models["a"], models["b"], x, settings, stats)
    label = torch.zeros(2, dtype=torch.long)
    with torch.inference_mode():
        latent = integrate(guided_velocity(models["a"].model, label, 1.0), x, 1.0, 0.0, steps=3, schedule="quadratic")
        expected = integrate(guided_velocity(models["b"].model, label, 1.0), latent, 0.0, 1.0, steps=3,
                             schedule="quadratic")
    assert torch.allclose(out, expected, atol=1e-5)
    assert stats.nfe == 6  # no guidance, no noise renewal
    swapped = translate_ddib(models["b"], models["a"], x, settings)
    assert (swapped - out).abs().max() > 1e-3
    assert not torch.allclose(out, x, atol=1e-3)
