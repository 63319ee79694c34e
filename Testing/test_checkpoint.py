"""Checkpoints: round trip, metadata, and refusal of bad files."""
import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from MedShiftLib.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointInfo,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.errors import CheckpointError, DomainError

DOMAINS = ("sim-low", "clinical-normal")


def _model_and_info(num_domains=2):
    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset("tiny", num_domains))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    info = CheckpointInfo(config=model.config, domains=DOMAINS[:num_domains], resolution=64,
                          pixel_spacing_mm=0.5, provenance={"steps": 10})
    return model, info


@pytest.fixture
def checkpoint(tmp_path):
    model, info = _model_and_info()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info)
    return path, model, info


def test_round_trip_keeps_weights_and_metadata(checkpoint):
    path, model, info = checkpoint
    loaded, loaded_info = load_checkpoint(path)
    assert loaded_info.domains == DOMAINS and loaded_info.resolution == 64
    assert loaded_info.pixel_spacing_mm == 0.5 and loaded_info.provenance == {"steps": 10}
    assert loaded_info.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert not loaded.training
    assert not list(path.parent.glob("*.tmp")), "no temporary file may be left behind"


def test_a_loaded_network_has_channels_last_weights_computes_as_the_plain_one_and_saves_again(checkpoint, tmp_path):
    path, model, info = checkpoint
    loaded, _ = load_checkpoint(path)
    assert loaded.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert not loaded.stem.weight.is_contiguous()
    x, t, labels = torch.randn(2, 1, 32, 32), torch.tensor([0.3, 0.8]), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x, t, labels), model.eval()(x, t, labels), atol=1e-5)
    again = save_checkpoint(tmp_path / "again.safetensors", loaded.state_dict(), info)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in load_file(str(again)).items())


def test_domain_lookup_lists_valid_names(checkpoint):
    _, _, info = checkpoint
    assert info.label_of("clinical-normal") == 1
    with pytest.raises(DomainError, match="this model knows: sim-low, clinical-normal"):
        info.label_of("real")


def _rewrite_metadata(path, tmp_path, change):
    tensors = {k: v.contiguous() for k, v in load_checkpoint(path)[0].state_dict().items()}
    meta = json.loads(read_checkpoint_info(path).to_json())
    change(meta, tensors)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"format": CHECKPOINT_FORMAT, "medshift": json.dumps(meta)})
    return bad


@pytest.mark.parametrize("change, message", [
    (lambda m, t: m.update(format_version=99), "format version 99"),
    (lambda m, t: m.pop("domains"), "lacks domains"),
    (lambda m, t: m.update(domains=["a", "a"]), "distinct"),
    (lambda m, t: m.update(domains=["a", "b", "c"]), "3 names"),
    (lambda m, t: m["model_config"].update(bogus=1), "invalid model_config"),
    (lambda m, t: m.update(resolution=-4), "resolution"),
    (lambda m, t: t.pop("head.weight"), "missing weights: head.weight"),
    (lambda m, t: t.update(extra=torch.zeros(2)), "unexpected weights: extra"),
    (lambda m, t: t.update({"head.bias": torch.zeros(3)}), "shape mismatch: head.bias"),
    (lambda m, t: t.update({"head.bias": torch.full((16,), float("nan"))}), "NaN"),
])
def test_inconsistent_checkpoints_are_refused_with_the_reason(checkpoint, tmp_path, change, message):
    path, _, _ = checkpoint
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(_rewrite_metadata(path, tmp_path, change))


def test_truncated_file_is_refused(checkpoint, tmp_path):
    path, _, _ = checkpoint
    data = path.read_bytes()
    for cut in (4, 200, len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(bad)


def test_pickle_is_never_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("open(r'%s', 'w').write('pwned')" % (tmp_path / "pwned"),))

    bad = tmp_path / "hostile.safetensors"
    bad.write_bytes(pickle.dumps({"state_dict": Boom()}))
    torch_file = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, torch_file)
    for f in (bad, torch_file):
        with pytest.raises(CheckpointError, match="not a MedShift"):
            load_checkpoint(f)
    assert not (tmp_path / "pwned").exists()


def test_huge_header_claim_and_foreign_safetensors_are_refused(tmp_path):
    bad = tmp_path / "huge.safetensors"
    bad.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="bad header"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a MedShift checkpoint"):
        read_checkpoint_info(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_saving_refuses_mismatched_domain_count():
    model, info = _model_and_info()
    info.domains = ("only-one",)
    with pytest.raises(ValueError):
        save_checkpoint("/nonexistent/x.safetensors", model.state_dict(), info)


def _statistics(domains=DOMAINS, level=0.0):
    from MedShiftLib.engine.domain_statistics import NPS_BINS, QUANTILE_COUNT, DomainStatistics

    quantiles = {d: tuple(level + k / QUANTILE_COUNT for k in range(QUANTILE_COUNT)) for d in domains}
    band_rms = {s: {t: (0.1, 0.2) for t in domains} for s in domains}
    return DomainStatistics((1.0, 2.0), quantiles, band_rms, {d: (0.01,) * (NPS_BINS - 1) for d in domains})


def test_domain_statistics_live_beside_the_weights_and_rewriting_them_leaves_the_weights_alone(tmp_path):
    from MedShiftLib.engine.domain_statistics import read_statistics, statistics_path, write_statistics

    model, info = _model_and_info()
    info.statistics = _statistics()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info)
    sidecar = tmp_path / "m.stats.json"
    assert statistics_path(path) == sidecar and sidecar.is_file()
    assert "domain_contrast" not in json.loads(json.loads(_header(path))["__metadata__"]["medshift"])
    assert read_checkpoint_info(path).statistics == info.statistics
    weights = path.read_bytes()
    write_statistics(sidecar, _statistics(level=0.5), DOMAINS, {"data_dir": "elsewhere"})
    assert path.read_bytes() == weights
    assert read_checkpoint_info(path).statistics == _statistics(level=0.5)
    assert read_statistics(sidecar, DOMAINS)[1] == {"data_dir": "elsewhere"}
    info.statistics = None  # a checkpoint without statistics takes away a stale statistics file
    save_checkpoint(path, model.state_dict(), info)
    assert not sidecar.exists() and read_checkpoint_info(path).statistics is None


def test_single_file_checkpoints_with_statistics_in_the_metadata_are_still_read(tmp_path):
    from MedShiftLib.engine.checkpoint import save_safetensors_atomically

    model, info = _model_and_info()
    legacy = json.loads(info.to_json()) | {"domain_contrast": _statistics().to_dict()}
    path = tmp_path / "old.safetensors"
    save_safetensors_atomically({k: v.contiguous() for k, v in model.state_dict().items()},
                                {"format": CHECKPOINT_FORMAT, "medshift": json.dumps(legacy)}, path)
    assert read_checkpoint_info(path).statistics == _statistics()
    _, loaded = load_checkpoint(path)
    assert loaded.statistics == _statistics()


@pytest.mark.parametrize("content, message", [
    ("{not json", "unreadable domain statistics"),
    (json.dumps({"format": "something-else"}), "not a MedShift domain statistics file"),
    (json.dumps({"format": "medshift-domain-statistics", "format_version": 9}), "format version 9"),
    (json.dumps({"format": "medshift-domain-statistics", "format_version": 1, "domains": ["x", "y"],
                 "statistics": {}}), "measure them again for this model"),
    (json.dumps({"format": "medshift-domain-statistics", "format_version": 1, "domains": list(DOMAINS),
                 "statistics": {"band_sigmas_px": 3}}), "band_sigmas_px must be a non-empty list"),
])
def test_a_corrupt_or_foreign_statistics_file_is_refused_with_the_reason(tmp_path, content, message):
    model, info = _model_and_info()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info)
    (tmp_path / "m.stats.json").write_text(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_info(path)


def _header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return f.read(n)


def test_half_precision_weights_load_as_the_float32_cast_of_the_stored_halves(tmp_path):
    model, info = _model_and_info()
    half = save_checkpoint(tmp_path / "half.safetensors", model.state_dict(), info, weights_dtype=torch.float16)
    full = save_checkpoint(tmp_path / "full.safetensors", model.state_dict(), info)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = load_file(str(half))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    loaded, loaded_info = load_checkpoint(half)
    assert loaded_info.provenance == info.provenance and loaded_info.config == info.config
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.equal(v, stored[k].float())
        assert torch.allclose(v, model.state_dict()[k], rtol=1e-3, atol=1e-4)


def test_weights_too_large_for_half_precision_are_refused_on_saving_and_infinite_halves_on_loading(tmp_path):
    model, info = _model_and_info()
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name][0] = 1e6  # above float16's 65504
    with pytest.raises(ValueError, match="do not fit torch.float16"):
        save_checkpoint(tmp_path / "m.safetensors", state, info, weights_dtype=torch.float16)
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), info, weights_dtype=torch.float16)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    tensors = load_file(str(path))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("inf")
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        load_checkpoint(path)
