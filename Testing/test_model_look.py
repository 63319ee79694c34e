"""The simulator look a model was trained on travels in its checkpoint, and the demo renders its input in it."""
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import write_tiny_checkpoint
from PIL import Image

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME, load_checkpoint, save_checkpoint
from MedShiftLib.errors import MedShiftError
from MedShiftLib.simulator.domain_styles import BUNDLED_MODEL_LOOK
from MedShiftLib.simulator.look_fingerprint import look_fingerprint
from MedShiftLib.simulator.model_look import model_look, trained_look

ROOT = Path(__file__).resolve().parents[1]


def _model_with(path: Path, provenance: dict) -> Path:
    plain = write_tiny_checkpoint(path.with_name("plain.safetensors"), domains=("sim-low", "clinical-normal"),
                                  resolution=32)
    model, info = load_checkpoint(plain)
    info.provenance = provenance
    return save_checkpoint(path, model.state_dict(), info)


def test_the_look_is_read_from_the_provenance_and_the_shipped_model_falls_back_to_the_bundled_look(tmp_path):
    _, recorded = load_checkpoint(_model_with(tmp_path / "a.safetensors", {"look": "legacy"}))
    _, options_only = load_checkpoint(_model_with(tmp_path / "b.safetensors", {"simulate": {"look": "film"}}))
    _, folder_run = load_checkpoint(_model_with(tmp_path / "c.safetensors", {"data_dir": "/data"}))
    _, shipped = load_checkpoint(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME)
    assert (trained_look(recorded), model_look(recorded)) == ("legacy", "legacy")
    assert model_look(options_only) == "film"
    assert trained_look(folder_run) is None and model_look(folder_run) == BUNDLED_MODEL_LOOK
    assert trained_look(shipped) is None and model_look(shipped) == BUNDLED_MODEL_LOOK == "radiograph"
    _, unknown = load_checkpoint(_model_with(tmp_path / "d.safetensors", {"look": "sepia"}))
    with pytest.raises(MedShiftError, match="'sepia'"):
        model_look(unknown)


def _demo_input(model: Path, out: Path, *options: str) -> np.ndarray:
    assert main(["demo", "--out", str(out), "--model", str(model), "--phantom", *options]) == 0
    return np.asarray(Image.open(out / "input_sim-low.png"))


def test_the_demo_renders_its_input_in_the_look_the_model_was_trained_on(tmp_path):
    legacy = _demo_input(_model_with(tmp_path / "legacy.safetensors", {"look": "legacy"}), tmp_path / "l")
    unrecorded = _model_with(tmp_path / "none.safetensors", {})
    bundled_look = _demo_input(unrecorded, tmp_path / "n")
    assert not np.array_equal(legacy, bundled_look)
    assert np.array_equal(legacy, _demo_input(unrecorded, tmp_path / "x", "--look", "legacy"))
    assert np.array_equal(bundled_look, _demo_input(unrecorded, tmp_path / "r", "--look", BUNDLED_MODEL_LOOK))


def test_held_out_statistics_refuse_a_model_without_simulation_options_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "held_out_statistics.py"),
                           str(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME), "--out", str(tmp_path / "s.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "medshift domain-contrast" in done.stderr and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(("trained_on", "cuda_here", "measured_on"), [
    ("cpu", True, "cpu"), ("cuda", True, "cuda"), ("cuda:0", True, "cuda"), ("auto", True, "cuda"),
    ("cuda", False, "cpu"), ("auto", False, "cpu"), (None, True, "cpu")])
def test_held_out_statistics_are_measured_on_cuda_only_when_the_run_trained_there_and_it_is_here(
        monkeypatch, trained_on, cuda_here, measured_on):
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from held_out_statistics import measurement_device

    from MedShiftLib.engine.checkpoint import CheckpointInfo
    from MedShiftLib.engine.network import UNetConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_here)
    config = {} if trained_on is None else {"device": trained_on}
    info = CheckpointInfo(config=UNetConfig(num_domains=1), domains=("sim-low",), resolution=32,
                          provenance={"config": config})
    assert measurement_device(info) == measured_on


@pytest.mark.parametrize("provenance", [{"simulate": "x"}, {"simulate": ["film"]}, {"look": ["film"]},
                                        {"simulate": {"look": 3}}])
def test_a_hand_edited_look_record_stops_the_demo_with_one_line_that_says_what_to_do(tmp_path, capsys, provenance):
    model = _model_with(tmp_path / "edited.safetensors", provenance)
    assert main(["demo", "--out", str(tmp_path / "o"), "--model", str(model), "--phantom"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "re-package the model" in error and "--look" in error, error
    assert not (tmp_path / "o" / "input_sim-low.png").exists()
    # the remedy works: the look given on the command line needs no record
    assert _demo_input(model, tmp_path / "g", "--look", "film").shape[0] > 0


@pytest.mark.parametrize("provenance", [{"config": "x", "simulate": {"look": "film"}}, {"simulate": "x"},
                                        {"simulate": {"look": "film", "views": 3, "no_such_option": 1}},
                                        {"config": {"seed": "x"}, "simulate": {"look": "film"}}])
def test_held_out_statistics_refuse_a_hand_edited_provenance_with_a_project_error(provenance):
    sys.path.insert(0, str(ROOT / "scripts"))
    from held_out_statistics import held_out_statistics, measurement_device

    from MedShiftLib.engine.checkpoint import CheckpointInfo
    from MedShiftLib.engine.network import UNetConfig

    info = CheckpointInfo(config=UNetConfig(num_domains=1), domains=("sim-low",), resolution=32,
                          provenance=provenance)
    with pytest.raises(MedShiftError, match="re-package the model"):
        held_out_statistics(info, views=1)
    if not isinstance(provenance["config"] if "config" in provenance else {}, dict):
        with pytest.raises(MedShiftError, match="re-package the model"):
            measurement_device(info)


def _film_model(tmp_path: Path, fingerprint: str | None) -> Path:
    record = {"simulate": {"look": "film"}} | ({"look_fingerprint": fingerprint} if fingerprint else {})
    return _model_with(tmp_path / f"film_{fingerprint}.safetensors", record)


def _look_warnings(model: Path) -> list[str]:
    """The warnings model_look gives for `model`, called twice (warnings shown once per message, as by default)."""
    _, info = load_checkpoint(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert model_look(info) == model_look(info) == "film"
    return [str(w.message) for w in caught]


def test_a_model_trained_on_another_version_of_its_look_is_warned_about_once(tmp_path):
    present = look_fingerprint("film")
    assert _look_warnings(_film_model(tmp_path, present)) == []
    assert _look_warnings(_film_model(tmp_path, None)) == []  # an earlier MedShift's model records none
    changed = _look_warnings(_film_model(tmp_path, "0123456789ab"))
    assert len(changed) == 1 and "another version of the simulator look 'film'" in changed[0]
    assert f"0123456789ab, now {present}" in changed[0] and "retrain" in changed[0]
    _, shipped = load_checkpoint(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model_look(shipped) == BUNDLED_MODEL_LOOK and "look_fingerprint" not in shipped.provenance


def test_the_demo_warns_on_one_line_when_the_look_changed_and_not_when_the_look_is_given(tmp_path, capsys):
    model = _film_model(tmp_path, "0123456789ab")
    _demo_input(model, tmp_path / "a")
    lines = [line for line in capsys.readouterr().err.splitlines() if "another version" in line]
    assert len(lines) == 1 and lines[0].startswith("medshift: warning: the model was trained on another version")
    _demo_input(model, tmp_path / "b", "--look", "film")
    assert "another version" not in capsys.readouterr().err


def test_info_shows_the_look_and_whether_its_version_is_the_present_one(tmp_path, capsys):
    def look_line(model: Path) -> list[str]:
        assert main(["info", str(model)]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("simulator look")]

    present = look_fingerprint("film")
    assert look_line(_film_model(tmp_path, present)) == [f"simulator look    film, fingerprint {present} (the present "
                                                         "version)"]
    assert look_line(_film_model(tmp_path, "0123456789ab")) == [
        f"simulator look    film, fingerprint 0123456789ab (another version; the present one is {present})"]
    assert "not recorded" in look_line(_film_model(tmp_path, None))[0]
    assert look_line(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME) == []
    hand_edited = _model_with(tmp_path / "edited.safetensors", {"simulate": {"look": "film"}, "look_fingerprint": 7})
    assert "re-package the model" in look_line(hand_edited)[0]


def test_held_out_statistics_warn_when_the_look_changed_and_record_the_version_they_were_rendered_in(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from held_out_statistics import held_out_statistics

    simulate = {"size": 32, "views": "mixed", "look": "film", "domains": ["sim-low", "clinical-normal"]}
    _, info = load_checkpoint(_model_with(tmp_path / "m.safetensors", {"simulate": simulate,
                                                                        "look_fingerprint": "0123456789ab"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, provenance = held_out_statistics(info, views=1, device="cpu")
    assert [str(w.message).count("another version of the simulator look 'film'") for w in caught] == [1]
    assert provenance["look_fingerprint"] == look_fingerprint("film") and provenance["simulated"]["look"] == "film"
    assert "look" not in provenance  # recorded once, in the options
