"""Int8 checkpoints (one scale per output channel): the round trip's error bound, and refusal of damaged files."""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from MedShiftLib.engine.checkpoint import CheckpointInfo, load_checkpoint, read_checkpoint_info, save_checkpoint
from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.engine.weight_quantisation import INT8_WEIGHTS, SCALE_SUFFIX, WEIGHTS_FORMAT_KEY
from MedShiftLib.errors import CheckpointError

DOMAINS = ("sim-low", "clinical-normal")
CONV = "encoder.1.0.conv2.weight"  # a 3x3 convolution of 80 x 80 x 3 x 3: large enough to be stored in int8


def _model_and_info():
    torch.manual_seed(0)
    model = VelocityUNet(replace(config_from_preset("tiny", len(DOMAINS)), channels=(16, 80)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        model.state_dict()[CONV][3].zero_()  # an all-zero output channel
    info = CheckpointInfo(config=model.config, domains=DOMAINS, resolution=64, provenance={"steps": 10})
    return model, info


@pytest.fixture
def int8_checkpoint(tmp_path):
    model, info = _model_and_info()
    return save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info, weights_dtype=torch.int8), model


def _metadata(path):
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_int8_weights_load_within_half_a_step_of_their_channel_and_the_rest_as_float16(int8_checkpoint, tmp_path):
    path, model = int8_checkpoint
    half = save_checkpoint(tmp_path / "half.safetensors", model.state_dict(), read_checkpoint_info(path),
                           weights_dtype=torch.float16)
    assert path.stat().st_size < 0.65 * half.stat().st_size
    assert _metadata(path)[WEIGHTS_FORMAT_KEY] == INT8_WEIGHTS
    stored = load_file(str(path))
    loaded, info = load_checkpoint(path)
    assert info.provenance == {"steps": 10} and info.domains == DOMAINS
    quantised = 0
    for name, original in model.state_dict().items():
        value = loaded.state_dict()[name]
        assert value.dtype == torch.float32
        if stored[name].dtype == torch.int8:
            quantised += original.numel()
            scale = stored[name + SCALE_SUFFIX]
            peak = original.reshape(len(original), -1).abs().amax(dim=1)
            assert torch.allclose(scale[peak > 0], peak[peak > 0] / 127) and (scale > 0).all()
            step = scale.reshape(-1, *[1] * (original.dim() - 1))
            assert ((value - original).abs() <= step / 2 + 1e-7).all(), name
            assert (value - original).abs().max() > 0  # it is quantised, not a float copy
        else:
            assert stored[name].dtype == torch.float16 and torch.equal(value, stored[name].float()), name
    assert quantised > 0.75 * sum(v.numel() for v in model.state_dict().values())
    assert torch.equal(loaded.state_dict()[CONV][3], torch.zeros_like(loaded.state_dict()[CONV][3]))
    assert stored["label_embedding.weight"].dtype == torch.float16  # the embedding table stays float16
    x, t, labels = torch.randn(2, 1, 32, 32), torch.tensor([0.3, 0.8]), torch.tensor([0, 1])
    with torch.no_grad():
        reference = model.eval()(x, t, labels)
        change = loaded(x, t, labels) - reference
    assert change.pow(2).mean().sqrt() < 0.02 * reference.pow(2).mean().sqrt()


def _rewrite(path, change_tensors=None, metadata_change=None):
    """Write `path` again with its tensors and metadata changed as given."""
    tensors, metadata = load_file(str(path)), _metadata(path)
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, str(path), metadata=metadata | (metadata_change or {}))


def _set_scale(value):
    def change(tensors):
        tensors[CONV + SCALE_SUFFIX][5] = value
    return change


@pytest.mark.parametrize("change_tensors, metadata_change, message", [
    (_set_scale(float("nan")), None, "NaN, infinity, zero or a negative"),
    (_set_scale(float("inf")), None, "NaN, infinity, zero or a negative"),
    (_set_scale(0.0), None, "NaN, infinity, zero or a negative"),
    (_set_scale(-0.01), None, "NaN, infinity, zero or a negative"),
    (lambda t: t.pop(CONV + SCALE_SUFFIX), None, f"int8 weight {CONV} has no scale"),
    (lambda t: t.update({CONV + SCALE_SUFFIX: t[CONV + SCALE_SUFFIX][:-1].clone()}), None,
     "has shape (79,) (torch.float32) where 80 output channels need one float each"),
    (lambda t: t.update({CONV + SCALE_SUFFIX: t[CONV + SCALE_SUFFIX].to(torch.int8)}), None, "need one float each"),
    (lambda t: t.update({"head.weight" + SCALE_SUFFIX: torch.ones(16)}), None, "a scale for head.weight, which is"),
    (None, {WEIGHTS_FORMAT_KEY: "int4-grouped"}, "stored as 'int4-grouped', which this MedShift does not read"),
    (None, {WEIGHTS_FORMAT_KEY: "float"}, "bytes can hold"),  # int8 sizes in a float file: too small for it
], ids=["scale-nan", "scale-inf", "scale-zero", "scale-negative", "missing-scale", "scale-shape", "scale-int",
        "orphan-scale", "unknown-format", "int8-in-a-float-file"])
def test_a_damaged_int8_file_is_refused_with_one_line_that_says_what_to_do(int8_checkpoint, change_tensors,
                                                                          metadata_change, message):
    path, _ = int8_checkpoint
    _rewrite(path, change_tensors, metadata_change)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert "copy it again" in str(error.value) or "update MedShift" in str(error.value)


def test_an_int8_tensor_in_a_file_that_records_no_format_is_refused(tmp_path):
    model, info = _model_and_info()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info, weights_dtype=torch.float16)
    _rewrite(path, lambda t: t.update({"head.weight": torch.ones(t["head.weight"].shape, dtype=torch.int8)}))
    assert WEIGHTS_FORMAT_KEY not in _metadata(path)
    with pytest.raises(CheckpointError, match="int8 weight head.weight has no scale"):
        load_checkpoint(path)


def test_int8_saving_refuses_weights_that_are_not_finite(tmp_path):
    model, info = _model_and_info()
    state = model.state_dict()
    state[CONV] = state[CONV].clone()
    state[CONV][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=f"weight {CONV} is not finite"):
        save_checkpoint(tmp_path / "m.safetensors", state, info, weights_dtype=torch.int8)
    assert not (tmp_path / "m.safetensors").exists()


def test_the_packaging_script_writes_int8_weights_on_request_and_float16_by_default(tmp_path):
    model, info = _model_and_info()
    run = save_checkpoint(tmp_path / "best.safetensors", model.state_dict(), info)
    script = Path(__file__).resolve().parents[1] / "scripts" / "package_bundled_model.py"
    sizes = {}
    for weights in ("float16", "int8"):
        out = tmp_path / weights / "medshift_default.safetensors"
        command = [sys.executable, str(script), str(run), "--half-only", "--out", str(out)]
        done = subprocess.run(command + (["--weights", "int8"] if weights == "int8" else []), capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"{weights} weights" in done.stdout
        assert _metadata(out).get(WEIGHTS_FORMAT_KEY) == (INT8_WEIGHTS if weights == "int8" else None)
        assert load_checkpoint(out)[1].provenance == info.provenance
        sizes[weights] = out.stat().st_size
    assert sizes["int8"] < 0.65 * sizes["float16"]


def test_int8_saving_names_float16_for_a_small_tensor_that_overflows_it(tmp_path):
    model, info = _model_and_info()
    state = dict(model.state_dict())
    state["head.bias"] = torch.full_like(state["head.bias"], 1e6)  # small: kept in float16, whose largest is 65504
    with pytest.raises(ValueError, match=r"weights head.bias do not fit torch.float16; save them in float32"):
        save_checkpoint(tmp_path / "m.safetensors", state, info, weights_dtype=torch.int8)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("change_tensors, message", [
    (lambda t: t.update({"bogus.weight": torch.ones(80, 80, dtype=torch.int8),
                         "bogus.weight" + SCALE_SUFFIX: torch.ones(80)}), "unexpected weights: bogus.weight"),
    (lambda t: t.update({CONV: t[CONV][:40].clone(), CONV + SCALE_SUFFIX: t[CONV + SCALE_SUFFIX][:40].clone()}),
     f"shape mismatch: {CONV} (40, 80, 3, 3) != (80, 80, 3, 3)"),
], ids=["unknown-name", "wrong-shape"])
def test_int8_weights_that_do_not_fit_the_model_are_refused_before_any_is_dequantised(int8_checkpoint, monkeypatch,
                                                                                     change_tensors, message):
    from MedShiftLib.engine import weight_quantisation

    path, _ = int8_checkpoint
    _rewrite(path, change_tensors)
    dequantised = []
    real = weight_quantisation._dequantised
    monkeypatch.setattr(weight_quantisation, "_dequantised", lambda *a: dequantised.append(a[1]) or real(*a))
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(path)
    assert dequantised == []
