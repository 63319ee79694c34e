"""Faults a user meets, injected: read-only and full disks, a file where a folder belongs, signals in the middle
of a write, moved run folders, hostile sizes, torchrun. Each ends in one line that says what to do."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import one_error_line, small_tmpfs, write_png_domains

from MedShiftLib import atomic_files
from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import load_checkpoint, read_checkpoint_info
from MedShiftLib.engine.working_grid import working_shape
from MedShiftLib.errors import CheckpointError, InputImageError
from MedShiftLib.io.radiograph_files import read_radiograph, write_radiograph
from MedShiftLib.training.config import TrainingConfig
from MedShiftLib.training.run import train

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_png_domains(tmp_path_factory.mktemp("data"), domains=("a", "b"), subjects=4, views=2, size=48)


_tmpfs = small_tmpfs


def _png(path, shape=(40, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (20000 + 20000 * np.random.default_rng(seed).random(shape)).astype(np.uint16)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


# ---- OS errors: one line, in every sub-command -----------------------------------------------------------------

def test_a_read_only_out_is_refused_before_the_model_runs(tmp_path, model_path, capsys, monkeypatch):
    from MedShiftLib.pipeline import file_translation
    monkeypatch.setattr(file_translation, "translate_image", lambda *a, **k: pytest.fail("computed before the check"))
    source = _png(tmp_path / "x.png")
    with _tmpfs(tmp_path, "ro,size=1m") as read_only:
        assert main(["translate", str(source), "--out", str(read_only / "out"), "--model", str(model_path), "--source",
                     "a", "--target", "b", "--device", "cpu"]) == 2
    one_error_line(capsys, "read-only", "choose")


def test_an_out_that_is_a_file_isone_error_line(tmp_path, model_path, data, capsys):
    source, not_a_folder = _png(tmp_path / "x.png"), tmp_path / "file"
    not_a_folder.write_text("keep me")
    assert main(["translate", str(source), "--out", str(not_a_folder), "--model", str(model_path), "--source", "a",
                 "--target", "b"]) == 2
    one_error_line(capsys, "is a file, not a folder")
    assert main(["train", str(data), "--out", str(not_a_folder)]) == 2
    one_error_line(capsys, str(not_a_folder), "is a file, not a folder")
    assert main(["simulate", str(not_a_folder), "--subjects", "1", "--size", "32"]) == 2
    one_error_line(capsys, "is a file, not a folder")
    assert main(["demo", "--out", str(not_a_folder)]) == 2
    one_error_line(capsys, str(not_a_folder))
    assert not_a_folder.read_text() == "keep me"


def test_a_full_disk_with_dicom_output_is_one_line_and_leaves_no_temporary(tmp_path, model_path, capsys):
    image = read_radiograph(_png(tmp_path / "x.png", shape=(256, 256)))
    dicom = write_radiograph(image, tmp_path / "in" / "x.dcm")
    with _tmpfs(tmp_path, "size=8k") as small:
        rc = main(["translate", str(dicom), "--out", str(small), "--model", str(model_path), "--source", "a",
                   "--target", "b", "--steps", "1", "--device", "cpu"])
        err = capsys.readouterr().err
        left = sorted(p.name for p in small.iterdir())
    assert rc == 1 and "no space left" in err and "Traceback" not in err
    assert left == []


def test_training_into_a_full_disk_is_one_line_not_a_safetensors_error(data, tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    from MedShiftLib.engine import checkpoint

    def full_disk(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
                              'space left on device" })')

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--resolution", "32",
                 "--batch-size", "4", "--steps", "1", "--workers", "0", "--device", "cpu", "--quiet"]) == 1
    one_error_line(capsys, "no space left on the disk", "free some space")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("command", [
    ["simulate", "{out}", "--subjects", "1", "--views-per-subject", "1", "--size", "32", "--quiet"],
    ["demo", "--out", "{out}"],
    ["train", "{data}", "--out", "{out}", "--preset", "tiny", "--resolution", "32", "--batch-size", "4", "--steps",
     "1", "--workers", "0", "--device", "cpu", "--quiet"],
    ["evaluate", "--data", "{data}", "--train-data", "{data}", "--out", "{out}"],
])
def test_every_command_into_a_read_only_folder_isone_error_line(tmp_path, data, capsys, command):
    with _tmpfs(tmp_path, "ro,size=1m") as read_only:
        rc = main([a.format(out=read_only / "out", data=data) for a in command])
    assert rc == 2
    one_error_line(capsys, "read-only", "writable disk")


def test_a_closed_pipe_ends_info_quietly(model_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as with `| head -3` on a long output
    try:
        process = subprocess.run([sys.executable, "-m", "MedShiftLib.cli", "info", str(model_path)], env=ENV,
                                 stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert process.returncode == 141 and process.stderr == ""


# ---- temporary files: removed on SIGTERM, swept after SIGKILL, flushed before the rename -----------------------

HANGING_WRITE = """
import sys, time
from pathlib import Path
from MedShiftLib.io import radiograph_writing
real = radiograph_writing._write_into
def hanging(folder, name, *args):
    real(folder, name, *args)
    Path(sys.argv[1]).touch()
    time.sleep(120)
radiograph_writing._write_into = hanging
from MedShiftLib.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _hang_in_a_write(tmp_path, model_path, signal_number):
    ready, out = tmp_path / "ready", tmp_path / "out"
    command = [sys.executable, "-c", HANGING_WRITE, str(ready), "translate", str(_png(tmp_path / "x.nrrd")),
               "--out", str(out), "--model", str(model_path), "--source", "a", "--target", "b", "--steps", "1",
               "--device", "cpu"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), process.communicate()
    assert any(p.name.startswith(".") for p in out.iterdir())  # the half-written file is there now
    process.send_signal(signal_number)
    process.wait(timeout=30)
    return process, out


def test_sigterm_in_the_middle_of_a_write_removes_the_temporary_files(tmp_path, model_path):
    process, out = _hang_in_a_write(tmp_path, model_path, signal.SIGTERM)
    assert process.returncode == 143 and "terminated" in process.stderr.read()
    assert list(out.iterdir()) == []


def test_temporaries_of_a_killed_process_are_swept_by_the_next_write(tmp_path, model_path):
    process, out = _hang_in_a_write(tmp_path, model_path, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL and list(out.iterdir())
    mine = out / f".other{atomic_files.TEMPORARY_MARK}live-{os.getpid()}-x.tmp"
    mine.write_bytes(b"")  # another tag: not ours to remove
    atomic_files.write_bytes_atomically(out / "next.txt", b"x")
    assert sorted(p.name for p in out.iterdir()) == sorted(["next.txt", mine.name])


def test_a_stale_training_temporary_is_swept_when_training_starts(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / (atomic_files.temporary_prefix("latest.safetensors").replace(str(os.getpid()), str(dead.pid))
                        + "abc.tmp")
    live = tmp_path / (atomic_files.temporary_prefix("best.safetensors") + "abc.tmp")  # this process: running
    stale.write_bytes(b"88 MB once"), live.write_bytes(b"")
    atomic_files.check_writable_folder(tmp_path)
    assert not stale.exists() and live.exists()


def test_an_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic_files.os, "fsync", lambda fd: events.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else fd)) or real_fsync(fd))
    monkeypatch.setattr(atomic_files.os, "replace", lambda a, b: events.append(("replace", str(b))) or
                        real_replace(a, b))
    atomic_files.write_bytes_atomically(tmp_path / "x.json", b"{}")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1] != str(tmp_path / "x.json") and events[2][1] == str(tmp_path)


# ---- --resume: the run folder however it is spelled, or moved ---------------------------------------------------

def _config(data, out, **kw):
    base = dict(data_dir=str(data), out_dir=str(out), resolution=32, preset="tiny", batch_size=4, steps=3,
                checkpoint_every=3, log_every=1, num_workers=0, validation_fraction=0.25, device="cpu",
                warmup_steps=1, sample_every=0)
    return TrainingConfig(**(base | kw))


def test_resume_accepts_the_same_folders_spelled_otherwise_and_a_moved_run_folder(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(data, tmp_path / "D")
    train(_config("./D", "RS2"), progress=False)
    train(_config(str(tmp_path / "D") + "/", str(tmp_path / "RS2") + "/", steps=4, resume=True), progress=False)
    shutil.move(tmp_path / "RS2", tmp_path / "moved")
    best = train(_config("D", "moved", steps=5, resume=True), progress=False)
    assert read_checkpoint_info(best.parent / "latest.safetensors").provenance["steps"] == 5


# ---- sizes bounded before anything is allocated -------------------------------------------------------------------

def test_strips_and_huge_working_grids_are_refused_saying_what_to_do(tmp_path, model_path, capsys):
    with pytest.raises(InputImageError, match="crop or pad"):
        working_shape((2, 20000), 256, None, None)
    with pytest.raises(InputImageError, match="crop or pad"):
        working_shape((4, 3000), 256, None, None, mode="none")
    with pytest.raises(InputImageError, match="working grid"):
        working_shape((4000, 4000), 256, 1.0, 0.01)  # a model trained at a 100 times finer spacing
    assert working_shape((1000, 3000), 256, None, None) == (256, 768)
    strip = tmp_path / "strip.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(40000, dtype=np.uint16).reshape(2, 20000)), str(strip))
    assert main(["translate", str(strip), "--out", str(tmp_path / "o"), "--model", str(model_path), "--source", "a",
                 "--target", "b", "--device", "cpu"]) == 1
    assert "strip.png: the image is 2 x 20000 pixels" in capsys.readouterr().err


def _with_metadata(source: Path, target: Path, change) -> Path:
    """A copy of a checkpoint whose MedShift metadata has been changed by `change(dict)`."""
    raw = source.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["medshift"])
    change(meta)
    header["__metadata__"]["medshift"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    target.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    return target


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(resolution=10**9), "'resolution' 1000000000"),
    (lambda m: m["model_config"].update(channels=[65536, 65536]), "channels 65536"),
    (lambda m: m["model_config"].update(channels=[4096, 4096, 4096], attention_heads=4), "parameters"),
])
def test_hostile_checkpoint_sizes_are_refused_before_any_network_is_built(model_path, tmp_path, change, message):
    hostile = _with_metadata(model_path, tmp_path / "hostile.safetensors", change)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_info(hostile)


def test_simulate_refuses_sizes_it_cannot_render_and_a_missing_gpu(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "sim"), "--size", "8192"]) == 2
    one_error_line(capsys, "--size 8192", "16..4096")
    if not torch.cuda.is_available():
        assert main(["simulate", str(tmp_path / "sim"), "--size", "32", "--device", "cuda"]) == 2
        one_error_line(capsys, "no CUDA GPU", "--device cpu")
    assert not (tmp_path / "sim").exists()


# ---- messages that said the wrong thing ---------------------------------------------------------------------------

def test_a_folder_as_model_says_it_is_a_folder_and_what_it_holds(tmp_path, model_path, capsys):
    shutil.copy(model_path, tmp_path / "best.safetensors")
    assert main(["info", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder, not a checkpoint file", "best.safetensors")


def test_a_damaged_weight_body_is_blamed_on_damage(model_path, tmp_path):
    info = read_checkpoint_info(model_path)
    assert "loss" not in info.provenance.get("metrics", {})
    damaged = _with_metadata(model_path, tmp_path / "damaged.safetensors",
                             lambda m: m["provenance"].update(metrics={"loss": 0.2}))
    raw = bytearray(damaged.read_bytes())
    raw[-4:] = np.array([np.nan], dtype=np.float32).tobytes()  # the last weight's bytes flipped to NaN
    damaged.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged: copy it again") as error:
        load_checkpoint(damaged)
    assert "diverged" not in str(error.value)


def test_the_colour_warning_is_one_plain_line(tmp_path, model_path, capsys):
    colour = tmp_path / "rgb.png"
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(colour))
    assert main(["translate", str(colour), "--out", str(tmp_path / "o"), "--model", str(model_path), "--source", "a",
                 "--target", "b", "--steps", "1", "--device", "cpu"]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "colour image" in line]
    assert len(warning) == 1 and warning[0].startswith("medshift: warning: ") and ".py:" not in warning[0]


def test_malformed_statistics_say_what_they_found(model_path, tmp_path):
    from MedShiftLib.engine.domain_statistics import DomainStatistics
    with pytest.raises(CheckpointError, match="found 2 values"):
        DomainStatistics.from_dict({"band_sigmas_px": [1.0], "quantiles": {"a": [0.0, 1.0]}, "band_rms": {}}, ["a"])


# ---- torchrun: one line from rank 0, and status 2 for a usage error -----------------------------------------------

@pytest.mark.slow
def test_train_processes_gives_a_usage_error_once_with_status_2(data, tmp_path):
    command = [sys.executable, "-m", "MedShiftLib.cli", "train", str(data), "--out", str(tmp_path / "run"),
               "--preset", "tiny", "--resolution", "32", "--batch-size", "3", "--steps", "2", "--workers", "0",
               "--device", "cpu", "--quiet", "--processes", "2"]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("medshift: error:") == 1 and "multiple of the 2 training processes" in result.stderr
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr


@pytest.mark.slow
def test_under_torchrun_only_rank_0_prints_a_usage_error(data, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "MedShiftLib.cli", "train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
               "--resolution", "32", "--batch-size", "3", "--steps", "2", "--workers", "0", "--device", "cpu",
               "--quiet"]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert result.stderr.count("medshift: error:") == 1 and "multiple of the 2" in result.stderr
    assert "[rank1]" not in result.stderr and "[rank0]" not in result.stderr
