"""Multi-process training: torchrun with two CPU processes (Gloo), data sharding, identical replicas."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import write_png_domains

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.engine.network import VelocityUNet, config_from_preset
from MedShiftLib.training.distributed import REPLICA_DIGEST_ENV, ProcessPlace, replica_digest
from MedShiftLib.training.sampling import EpochPermutationSampler, step_generator

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("start", [0, 8, 11])
def test_shards_of_each_global_batch_are_disjoint_and_together_the_single_process_batch(world_size, start):
    size, batch = 37, 8
    single = list(EpochPermutationSampler(size, seed=3, epoch=2, start=start))
    shards = [list(EpochPermutationSampler(size, seed=3, epoch=2, start=start, rank=r, world_size=world_size,
                                           batch_size=batch)) for r in range(world_size)]
    share = batch // world_size
    full_batches = len(single) // batch
    assert all(len(s) == full_batches * share == len(EpochPermutationSampler(
        size, 3, 2, start, rank=r, world_size=world_size, batch_size=batch)) for r, s in enumerate(shards))
    for k in range(full_batches):
        parts = [s[k * share:(k + 1) * share] for s in shards]
        together = [i for part in parts for i in part]
        assert len(set(together)) == batch
        assert sorted(together) == sorted(single[k * batch:(k + 1) * batch])


def test_a_global_batch_that_the_processes_cannot_share_is_refused():
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        EpochPermutationSampler(20, seed=0, rank=0, world_size=3, batch_size=8)


def test_every_process_draws_its_own_noise_and_rank_0_draws_the_single_process_noise():
    draws = [torch.randn(4, generator=step_generator(5, 12, rank)) for rank in range(3)]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
    assert torch.equal(draws[0], torch.randn(4, generator=step_generator(5, 12)))


def test_a_process_not_started_by_torchrun_is_a_group_of_one(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    place = ProcessPlace.from_environment()
    assert (place.rank, place.world_size, place.is_main, place.is_distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    place = ProcessPlace.from_environment()
    assert (place.rank, place.world_size, place.is_main, place.is_distributed) == (2, 4, False, True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_under_torchrun_end_with_identical_weights_and_one_writer(tmp_path):
    data = write_png_domains(tmp_path / "data", domains=("a", "b"), subjects=4, views=2, size=48)
    run, digests = tmp_path / "run", tmp_path / "digests"
    env = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1", REPLICA_DIGEST_ENV: str(digests)}
    steps = 4
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "MedShiftLib.cli", "train", str(data), "--out", str(run), "--preset", "tiny", "--resolution",
               "32", "--batch-size", "4", "--steps", str(steps), "--checkpoint-every", "2", "--log-every", "1",
               "--workers", "0", "--device", "cpu", "--validation-fraction", "0.25", "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = {json.loads(p.read_text())["rank"]: json.loads(p.read_text()) for p in digests.glob("rank*.json")}
    assert sorted(ranks) == [0, 1]
    assert all(r["world_size"] == 2 and r["step"] == steps for r in ranks.values())
    assert ranks[0]["model"] == ranks[1]["model"] and ranks[0]["ema"] == ranks[1]["ema"]
    # what rank 0 saved is the EMA both processes hold, and training moved it away from the initial weights
    saved, info = load_checkpoint(run / "latest.safetensors")
    assert replica_digest(saved.state_dict()) == ranks[0]["ema"]
    assert info.provenance["processes"] == 2 and info.provenance["steps"] == steps
    torch.manual_seed(0)
    assert replica_digest(VelocityUNet(config_from_preset("tiny", 2)).state_dict()) != ranks[0]["model"]
    # a single writer: one log line per step (two writers would append each line twice), nothing else
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    assert {p.name for p in run.iterdir()} == {"latest.safetensors", "best.safetensors", "training_state.safetensors",
                                               "latest.stats.json", "best.stats.json", "log.jsonl", "loss_curve.png",
                                               "samples_step2.png", "samples_step4.png"}
