"""Training from a data folder: outputs, determinism, resume, and errors before any work."""
import json

import pytest
import torch
from helpers import write_png_domains

from MedShiftLib.engine.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from MedShiftLib.errors import DataFolderError, MedShiftError
from MedShiftLib.training.config import TrainingConfig
from MedShiftLib.training.run import train


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
    # contrast transfer works with it: statistics of up to 200 training images per domain, recorded as such
    from MedShiftLib.io.data_folder import scan_data_folder
    from MedShiftLib.training.domain_statistics import statistics_of_records
    records = scan_data_folder(data, ["b", "a"]).records
    assert info.statistics == statistics_of_records(records, ["b", "a"], 32, seed=_config(data, run).seed)
    assert info.statistics_provenance == {"data_dir": str(data.resolve()), "images_per_domain": 200}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 for r in log)
    assert "validation_loss" in log[2] and "validation_loss" in log[5]
    assert not list(run.glob("*.tmp"))


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(data, tmp_path, monkeypatch):
    straight = train(_config(data, tmp_path / "straight"), progress=False)
    train(_config(data, tmp_path / "split"), progress=False, stop_after=3)
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 3
    measured = read_checkpoint_info(tmp_path / "split" / "latest.safetensors").statistics

    def must_not_measure(*args, **kwargs):
        raise AssertionError("a resumed run measured its domain statistics again")
    monkeypatch.setattr("MedShiftLib.training.domain_statistics.images_by_domain", must_not_measure)
    resumed = train(_config(data, tmp_path / "split", resume=True), progress=False)
    assert read_checkpoint_info(tmp_path / "split" / "latest.safetensors").statistics == measured
    a = load_checkpoint(tmp_path / "straight" / "latest.safetensors")[0].state_dict()
    b = load_checkpoint(tmp_path / "split" / "latest.safetensors")[0].state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert straight.name == resumed.name


def test_a_resumed_run_measures_statistics_its_checkpoint_lacks_or_cannot_give(data, tmp_path):
    from dataclasses import replace

    from MedShiftLib.io.data_folder import scan_data_folder
    from MedShiftLib.training.domain_statistics import statistics_for_run, statistics_of_records
    train(_config(data, tmp_path / "run", steps=3), progress=False)
    latest = tmp_path / "run" / "latest.safetensors"
    records = scan_data_folder(data, ["b", "a"]).records

    def measure():
        return statistics_of_records(records, ["b", "a"], 32)

    model, info = load_checkpoint(latest)
    assert statistics_for_run(latest, True, measure) == info.statistics
    older = tmp_path / "older.safetensors"
    save_checkpoint(older, model.state_dict(), replace(info, statistics=replace(info.statistics, noise_power=None)))
    assert statistics_for_run(older, True, measure).noise_power is not None
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    assert statistics_for_run(broken, True, measure).noise_power is not None
    assert statistics_for_run(tmp_path / "missing.safetensors", True, measure) == info.statistics


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
])
def test_bad_options_fail_before_any_work(data, tmp_path, change, error, message):
    if change.get("device") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(error, match=message):
        train(_config(data, tmp_path / "run", **change), progress=False)
    assert not (tmp_path / "run" / "training_state.safetensors").exists()


def test_one_domain_folder_is_refused_unless_that_domain_is_named(tmp_path):
    write_png_domains(tmp_path / "one", domains=("only",), subjects=4, views=2)
    with pytest.raises(DataFolderError, match="name that one domain with --domains"):
        train(_config(tmp_path / "one", tmp_path / "run", domains=[]), progress=False)
    best = train(_config(tmp_path / "one", tmp_path / "single", domains=["only"], steps=3), progress=False)
    model, info = load_checkpoint(best)  # a single-domain model, one half of a DDIB pair
    assert info.domains == ("only",) and model.config.num_domains == 1
    assert set(info.statistics.quantiles) == {"only"}


def test_run_folder_gets_a_loss_curve_and_sample_grids_at_the_sample_interval(data, tmp_path):
    from PIL import Image

    train(_config(data, tmp_path / "run", steps=6, checkpoint_every=3, sample_every=2), progress=False)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("samples_step*.png")) == ["samples_step2.png", "samples_step4.png",
                                                                     "samples_step6.png"]
    with Image.open(run / "loss_curve.png") as curve:
        assert curve.format == "PNG" and curve.size[0] > 300
    with Image.open(run / "samples_step6.png") as grid:
        # the input column plus one column per domain (b, a), each panel 128 px wide with 4 px gaps
        assert grid.format == "PNG" and grid.size[0] == 3 * 128 + 2 * 4
    train(_config(data, tmp_path / "quiet", steps=3, sample_every=0), progress=False)
    assert not list((tmp_path / "quiet").glob("samples_step*.png"))


def test_sample_grid_shows_the_models_translations(tmp_path):
    import numpy as np
    from PIL import Image

    from MedShiftLib.engine.network import VelocityUNet, config_from_preset
    from MedShiftLib.training.report import save_sample_grid, translate_to_every_domain

    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset("tiny", 2))  # zero-initialised head: zero velocity, identity map
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    translations = translate_to_every_domain(model, images, torch.tensor([0, 1]))
    assert translations.shape == (2, 2, 32, 32)
    assert torch.allclose(translations[:, 0], images[:, 0]) and torch.allclose(translations[:, 1], images[:, 0])
    with torch.no_grad():
        for p in model.parameters():  # now the velocity depends on the image and the domain label
            p.add_(0.1 * torch.randn_like(p))
    translations = translate_to_every_domain(model, images, torch.tensor([0, 1]))
    own_domain = torch.stack([translations[0, 0], translations[1, 1]])
    other_domain = torch.stack([translations[0, 1], translations[1, 0]])
    # into its own domain an image comes back nearly unchanged (invert and regenerate cancel), not so elsewhere
    assert (other_domain - images[:, 0]).abs().mean() > 2 * (own_domain - images[:, 0]).abs().mean()
    path = save_sample_grid(images, ["a", "b"], translations, ["a", "b"], tmp_path / "grid.png", panel_size=32)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (18 + 2 * (32 + 18 + 4), 3 * 32 + 2 * 4)
    first_input = grid[18 + 18:18 + 18 + 32, :32].astype(float)
    expected = np.clip((images[0, 0].numpy() + 1) / 2, 0, 1) * 255
    assert np.abs(first_input - expected).mean() < 3


def test_bf16_on_the_cpu_and_a_batch_not_divisible_by_the_processes_are_refused(data, tmp_path, monkeypatch):
    import torch.distributed as dist

    with pytest.raises(MedShiftError, match="bf16 needs a CUDA GPU"):
        train(_config(data, tmp_path / "run", precision="bf16"), progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(MedShiftError, match="global batch and must be a multiple of the 2 training processes"):
        train(_config(data, tmp_path / "run", batch_size=3), progress=False)
    assert not dist.is_initialized() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_training_killed_with_sigkill_resumes_to_the_end_without_gaps(data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from MedShiftLib.training.state import read_training_state

    run = tmp_path / "run"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "MedShift"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "MedShiftLib.cli", "train", str(data), "--out", str(run), "--preset", "tiny",
               "--resolution", "32", "--batch-size", "4", "--steps", "100000", "--checkpoint-every", "3",
               "--log-every", "1", "--workers", "0", "--device", "cpu", "--validation-fraction", "0.25",
               "--warmup-steps", "2", "--domains", "b", "a", "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state, log_path = run / "training_state.safetensors", run / "log.jsonl"

    def logged_steps() -> list[int]:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        return [json.loads(line)["step"] for line in lines if line.strip().endswith("}")]

    deadline = time.monotonic() + 60
    # kill it once the first checkpoint exists and it has logged a step beyond it (part-way to the next save)
    while not (state.exists() and max(logged_steps(), default=0) >= 4) and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stderr.close()

    saved_step = read_training_state(state)[0]["step"]
    assert saved_step >= 3 and max(logged_steps()) >= saved_step
    final = saved_step + 4
    train(_config(data, run, steps=final, resume=True), progress=False)
    steps = [r["step"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())]
    assert steps == list(range(1, final + 1))  # no gap, and the steps redone after the kill logged once
    model, info = load_checkpoint(run / "latest.safetensors")
    assert info.provenance["steps"] == final and read_training_state(state)[0]["step"] == final
    assert not list(run.glob(".*.tmp"))


def test_ema_warm_up_forgets_the_initial_weights():
    """Weights that jump away from their initial value are followed within a few hundred updates, not
    the ~thousands a fixed 0.999 decay would need (22 % of step 0 would remain after 1,500 updates)."""
    from MedShiftLib.training.optimisation import ema_decay_at, make_ema

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = make_ema(model, 0.999)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    expected = 0.0
    for n in range(1, 301):
        ema.update_parameters(model)
        expected += (1.0 - ema_decay_at(n, 0.999)) * (1.0 - expected)
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-5)
    assert ema.module.weight.item() > 0.95  # a fixed 0.999 would stand at 1 - 0.999**300 = 0.26
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1) and ema_decay_at(100_000, 0.999) == 0.999


def test_init_from_starts_from_a_checkpoints_weights_and_refuses_other_domains(data, tmp_path):
    first = train(_config(data, tmp_path / "first", steps=3, checkpoint_every=3), progress=False)
    start, _ = load_checkpoint(first)
    tuned = train(_config(data, tmp_path / "tuned", steps=1, checkpoint_every=1, learning_rate=1e-9,
                          init_from=str(first)), progress=False)
    fresh = train(_config(data, tmp_path / "fresh", steps=1, checkpoint_every=1, learning_rate=1e-9), progress=False)
    weights = {name: load_checkpoint(path)[0].state_dict() for name, path in (("tuned", tuned), ("fresh", fresh))}
    key = "head.weight" if "head.weight" in weights["tuned"] else next(iter(weights["tuned"]))
    assert torch.allclose(weights["tuned"][key], start.state_dict()[key], atol=1e-6)
    assert not torch.allclose(weights["fresh"][key], start.state_dict()[key], atol=1e-6)
    assert read_checkpoint_info(tuned).provenance["config"]["init_from"] == str(first)
    with pytest.raises(MedShiftError, match="differ from the data's"):
        train(_config(data, tmp_path / "swapped", steps=1, domains=["a", "b"], init_from=str(first)), progress=False)


def test_training_on_the_cpu_uses_the_weight_layout_loading_gives_for_inference(data, tmp_path, monkeypatch):
    import MedShiftLib.training.run as run_module
    layouts = []

    def recording_step(net, *args, **kwargs):
        weight = next(p for p in net.parameters() if p.dim() == 4 and p.shape[1] > 1)
        layouts.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())
        return original(net, *args, **kwargs)
    original = run_module.train_step
    monkeypatch.setattr(run_module, "train_step", recording_step)
    best = train(_config(data, tmp_path / "run", steps=2, checkpoint_every=2), progress=False)
    loaded = load_checkpoint(best)[0].stem.weight
    assert layouts == [True, True]  # channels-last on the CPU, as for inference (engine/devices.network_memory_format)
    assert loaded.is_contiguous(memory_format=torch.channels_last) and not loaded.is_contiguous()
