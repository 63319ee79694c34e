"""Training from a data folder: outputs, determinism, resume, and errors before any work."""
import json

import pytest
import torch

from helpers import write_png_domains
from MedShiftLib.checkpoint import load_checkpoint
from MedShiftLib.errors import DataFolderError, MedShiftError
from MedShiftLib.trainer import TrainingConfig, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_png_domains(tmp_path_factory.mktemp("data"), domains=("a", "b"), subjects=4, views=2, size=48)


def _config(data, out, **kw):
    base = dict(data_dir=str(data), out_dir=str(out), resolution=32, preset="tiny", batch_size=4, steps=6,
                checkpoint_every=3, log_every=1, num_workers=0, validation_fraction=0.25, device="cpu",
                warmup_steps=2, domains=["b", "a"])
    return TrainingConfig(**(base | kw))


def test_a_run_writes_checkpoints_state_and_log(data, tmp_path):
    best = train(_config(data, tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"latest.safetensors", "best.safetensors", "training_state.safetensors",
                                                "log.jsonl"}
    model, info = load_checkpoint(best)
    assert info.domains == ("b", "a") and info.resolution == 32
    assert info.provenance["config"]["coupling"] == "ot"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 for r in log)
    assert "validation_loss" in log[2] and "validation_loss" in log[5]
    assert not list(run.glob("*.tmp"))


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(data, tmp_path):
    straight = train(_config(data, tmp_path / "straight"), progress=False)
    train(_config(data, tmp_path / "split"), progress=False, stop_after=3)
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 3
    resumed = train(_config(data, tmp_path / "split", resume=True), progress=False)
    a = load_checkpoint(tmp_path / "straight" / "latest.safetensors")[0].state_dict()
    b = load_checkpoint(tmp_path / "split" / "latest.safetensors")[0].state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert straight.name == resumed.name


def test_resume_refuses_other_options_and_fresh_runs_refuse_old_folders(data, tmp_path):
    train(_config(data, tmp_path / "run", steps=3), progress=False)
    with pytest.raises(MedShiftError, match="other options .*coupling"):
        train(_config(data, tmp_path / "run", steps=6, resume=True, coupling="independent"), progress=False)
    with pytest.raises(MedShiftError, match="pass --resume"):
        train(_config(data, tmp_path / "run"), progress=False)
    with pytest.raises(MedShiftError, match="no training state"):
        train(_config(data, tmp_path / "empty", resume=True), progress=False)


@pytest.mark.parametrize("change, error, message", [
    (dict(preset="huge"), MedShiftError, "unknown model preset"),
    (dict(coupling="magic"), MedShiftError, "unknown coupling"),
    (dict(batch_size=64), DataFolderError, "fewer than the batch size"),
    (dict(resolution=36), MedShiftError, "multiple of 8"),
    (dict(device="cuda:7"), MedShiftError, "cuda"),
    (dict(domains=["a"]), DataFolderError, "at least two domains"),
])
def test_bad_options_fail_before_any_work(data, tmp_path, change, error, message):
    if change.get("device") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(error, match=message):
        train(_config(data, tmp_path / "run", **change), progress=False)
    assert not (tmp_path / "run" / "training_state.safetensors").exists()


def test_one_domain_folder_is_refused(tmp_path):
    write_png_domains(tmp_path / "one", domains=("only",), subjects=2, views=1)
    with pytest.raises(DataFolderError):
        train(_config(tmp_path / "one", tmp_path / "run", domains=[]), progress=False)
