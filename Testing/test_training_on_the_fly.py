"""Training on images rendered on the fly (`medshift train --simulate`): seeding, exact resume, held-out
validation, prepared CTs, the attenuation table, and no xraydb, POT, SimpleITK or pydicom on that path."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.errors import MedShiftError
from MedShiftLib.simulator.look_fingerprint import look_fingerprint
from MedShiftLib.simulator.model_look import model_look
from MedShiftLib.simulator.subjects import read_prepared_ct, write_prepared_ct
from MedShiftLib.simulator.training_views import SimulatedData, SimulationOptions, render_views, simulated_data
from MedShiftLib.training.config import TrainingConfig
from MedShiftLib.training.optimisation import scaled_learning_rate
from MedShiftLib.training.run import train

MEDSHIFT = Path(__file__).resolve().parents[1] / "MedShift"
OPTIONS = SimulationOptions(size=32, pool_views=3, pool_refresh=2, validation_views=1, views_per_subject=2)


def _config(out, options=OPTIONS, **kw):
    base = dict(data_dir="", out_dir=str(out), resolution=32, preset="tiny", batch_size=4, steps=4,
                checkpoint_every=2, log_every=1, num_workers=0, device="cpu", warmup_steps=1, sample_every=0,
                simulate=options.to_dict())
    return TrainingConfig(**(base | kw))


def _data(seed=0, options=OPTIONS):
    return SimulatedData(options, resolution=32, batch_size=4, seed=seed, device=torch.device("cpu"))


def test_each_step_draws_its_batch_from_seed_and_step_alone_and_validation_is_held_out():
    first, second = _data(), _data()
    x, labels = first.batch(3)
    assert x.shape == (4, 1, 32, 32) and labels.shape == (4,) and set(labels.tolist()) <= set(range(5))
    y, same_labels = second.batch(3)  # a fresh instance (as after --resume) renders the same pool and batch
    assert torch.equal(x, y) and torch.equal(labels, same_labels)
    assert not torch.equal(first.batch(2)[0], x)  # same pool (steps 2 and 3), other draw
    assert not torch.equal(first.pool(0), first.pool(1))  # every pool holds new views
    assert not torch.equal(_data(seed=1).batch(3)[0], x)
    assert x.abs().max() < 1.5 and x.std() > 0.1  # the data folder's normalisation: robust window to [-1, 1]
    assert torch.equal(first.validation_images, second.validation_images)
    assert first.validation_size == 5 and first.validation_labels.tolist() == [0, 1, 2, 3, 4]
    training_views = first.pool(0).reshape(-1, 1, 32, 32)
    assert all(not torch.equal(v, t) for v in first.validation_images for t in training_views)
    statistics = first.statistics_images()
    assert list(statistics) == list(OPTIONS.domains) and all(len(v) == 1 for v in statistics.values())


def test_rendering_processes_give_the_batches_and_validation_of_rendering_in_process():
    from dataclasses import replace
    parallel = _data(options=replace(OPTIONS, render_workers=2))
    try:
        serial = _data()
        assert torch.equal(parallel.validation_images, serial.validation_images)
        for step in (5, 0, 2):  # a later pool first, as after --resume
            assert all(torch.equal(a, b) for a, b in zip(parallel.batch(step), serial.batch(step)))
    finally:
        parallel.close()
    # render_views (scripts/held_out_statistics.py) shares the processes' set-up: the same views as pool 0
    assert np.array_equal(render_views(OPTIONS, 0, OPTIONS.pool_views, workers=2), serial.pool(0).numpy())


def test_five_domains_of_a_pool_view_show_the_same_anatomy():
    pool = _data().pool(0)
    bodies = (pool[0] > pool[0].flatten(1).quantile(0.5, dim=1)[:, None, None]).float()  # brighter half: the head
    overlap = (bodies[0] * bodies[1:]).sum((1, 2)) / bodies[1:].sum((1, 2))
    assert overlap.min() > 0.7


def test_an_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path):
    straight = train(_config(tmp_path / "straight"), progress=False, data=simulated_data(OPTIONS))
    train(_config(tmp_path / "split"), progress=False, stop_after=2, data=simulated_data(OPTIONS))
    train(_config(tmp_path / "split", resume=True), progress=False, data=simulated_data(OPTIONS))
    a = load_checkpoint(tmp_path / "straight" / "latest.safetensors")[0].state_dict()
    b = load_checkpoint(tmp_path / "split" / "latest.safetensors")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, info = load_checkpoint(straight)
    assert info.domains == OPTIONS.domains and info.provenance["simulate"]["pool_views"] == 3
    assert model_look(info) == OPTIONS.look and "look" not in info.provenance  # recorded once, in the options
    assert info.provenance["look_fingerprint"] == look_fingerprint(OPTIONS.look)  # and its version beside it
    assert info.provenance["images_seen"] == 16 and info.statistics is not None
    recorded = json.loads(json.dumps({"simulated": OPTIONS.to_dict(), "images_per_domain": 1}))  # as read back
    assert info.statistics_provenance == recorded
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "validation_loss" in log[3]
    with pytest.raises(MedShiftError, match="pool_views"):
        other = SimulationOptions(**(OPTIONS.to_dict() | {"pool_views": 4, "domains": OPTIONS.domains}))
        train(_config(tmp_path / "split", options=other, resume=True, steps=6), progress=False,
              data=simulated_data(other))


def test_a_data_folder_and_simulate_are_one_or_the_other(tmp_path):
    with pytest.raises(MedShiftError, match="not both"):
        _config(tmp_path, data_dir=str(tmp_path)).check()
    with pytest.raises(MedShiftError, match="or --simulate"):
        _config(tmp_path, simulate=None).check()
    with pytest.raises(MedShiftError, match="smaller than --resolution"):
        SimulationOptions(size=16).check(32)


def test_learning_rate_scaling_rules():
    assert scaled_learning_rate(1e-3, 256, "sqrt") == pytest.approx(4e-3)
    assert scaled_learning_rate(1e-3, 64, "linear") == pytest.approx(4e-3)
    assert scaled_learning_rate(1e-3, 256, "none") == 1e-3
    assert _config("x", batch_size=64, lr_scaling="sqrt", learning_rate=1e-3).peak_learning_rate == pytest.approx(2e-3)


def test_a_prepared_ct_round_trips_and_is_refused_when_foreign(tmp_path):
    hounsfield = np.random.default_rng(0).uniform(-1000, 2000, (4, 5, 6)).astype(np.float32)
    path = write_prepared_ct(tmp_path / "head.hu.npz", hounsfield, (0.5, 0.6, 1.0))
    read, spacing = read_prepared_ct(path)
    assert spacing == (0.5, 0.6, 1.0) and np.abs(read - hounsfield).max() <= 0.5
    (tmp_path / "bad.hu.npz").write_bytes(b"nothing")
    with pytest.raises(MedShiftError, match="not a prepared CT"):
        read_prepared_ct(tmp_path / "bad.hu.npz")


def test_the_attenuation_table_matches_xraydb_away_from_edges():
    xraydb = pytest.importorskip("xraydb")
    sys.path.insert(0, str(MEDSHIFT.parent / "scripts"))
    from make_attenuation_table import formula

    from MedShiftLib.simulator.xray_physics import ATTENUATION_TABLE, COMPOSITIONS, mass_attenuation
    edges = np.array(json.loads(ATTENUATION_TABLE.read_text())["edges_keV"])
    energies = np.random.default_rng(0).uniform(10.0, 150.0, 4000)
    energies = energies[np.abs(energies[:, None] - edges[None]).min(axis=1) > 0.003]
    for material, composition in [*((m, formula(c)) for m, c in COMPOSITIONS.items()), ("csi", "CsI")]:
        reference = xraydb.material_mu(composition, energies * 1000.0, density=1.0)
        np.testing.assert_allclose(mass_attenuation(material, energies), reference, rtol=2e-4)


BLOCKED = ("xraydb", "ot", "SimpleITK", "pydicom")


def _run_blocked(code: str, *args: str, names: tuple[str, ...] = BLOCKED) -> None:
    """Run `code` in a Python where importing any of `names` raises, and check none was loaded after all."""
    block = f"import sys\nfor name in {names!r}:\n    sys.modules[name] = None  # importing it raises\n"
    check = f"loaded = [m for m in {names!r} if sys.modules.get(m) is not None]\nassert not loaded, loaded\n"
    env = dict(os.environ, PYTHONPATH=str(MEDSHIFT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", block + code + check, *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_training_on_the_fly_imports_neither_xraydb_nor_pot_nor_simpleitk_nor_pydicom(tmp_path):
    """The run itself (training.run.train with the simulator's data, a prepared CT and phantoms, mixed views, two
    pitches): only torch, numpy, scipy and safetensors."""
    ct = write_prepared_ct(tmp_path / "ct.hu.npz", _small_head(), (4.0, 4.0, 4.0))
    options = SimulationOptions(size=32, ct_paths=(str(ct),), phantoms_fraction=0.5, views="mixed",
                                pixel_spacings_mm=(0.9, 1.25), pool_views=2, validation_views=1)
    config = _config(tmp_path / "run", options, steps=2, checkpoint_every=2)
    code = ("from MedShiftLib.simulator.training_views import SimulationOptions, simulated_data\n"
            "from MedShiftLib.training.config import TrainingConfig\nfrom MedShiftLib.training.run import train\n"
            f"options = SimulationOptions.from_dict({options.to_dict()!r})\n"
            f"train(TrainingConfig(**{config.__dict__!r}), progress=False, data=simulated_data(options))\n")
    _run_blocked(code)
    assert (tmp_path / "run" / "latest.safetensors").is_file()


def test_the_train_command_on_the_fly_imports_neither_xraydb_nor_pot(tmp_path):
    # (the command's parser still imports SimpleITK through io/radiograph_files: issue 23 item 4 removes that)
    _run_blocked("from MedShiftLib.cli import main\nassert main(sys.argv[1:]) == 0\n", "train", "--simulate",
                 "--out", str(tmp_path / "run"), "--resolution", "32", "--preset", "tiny", "--batch-size", "4",
                 "--steps", "1", "--sample-every", "0", "--device", "cpu", "--pool-views", "1",
                 "--validation-views", "1", "--quiet", names=("xraydb", "ot"))
    assert (tmp_path / "run" / "latest.safetensors").is_file()


def _small_head() -> np.ndarray:
    """A 40^3 HU volume: a water ball with a bone shell, in air."""
    z, y, x = np.mgrid[:40, :40, :40] - 19.5
    radius = np.sqrt(x**2 + y**2 + z**2)
    return np.where(radius < 15, 40.0, -1000.0) + np.where((radius > 13) & (radius < 15), 1200.0, 0.0)
