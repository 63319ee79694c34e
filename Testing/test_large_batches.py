"""Large batches and interrupted detached writes: planning grows linearly with the input count and says how far
it is; a run killed between an NRRD output's data file and its header leaves no output that a re-run skips."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MedShiftLib import cli
from MedShiftLib.io.radiograph_files import read_radiograph
from MedShiftLib.pipeline import output_plan
from MedShiftLib.pipeline.output_plan import output_name, plan_outputs

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}


def _batch(root: Path, count: int) -> tuple[list[Path], Path]:
    """`count` empty inputs and an --out where each one's output exists."""
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    files = []
    for k in range(count):
        files.append(root / "in" / f"image_{k:05d}.png")
        files[-1].touch()
        (root / "out" / output_name(files[-1])).touch()
    return files, root / "out"


def _file_system_lookups(monkeypatch, root: Path, count: int) -> int:
    """How many path resolutions and stats planning `count` inputs with existing outputs makes."""
    files, out = _batch(root, count)
    calls = [0]
    for module, name in ((os.path, "realpath"), (os, "stat"), (os.path, "samefile"), (os.path, "lexists")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, **k: calls.__setitem__(0, calls[0] + 1) or
                            _real(*a, **k))
    plans = plan_outputs(files, out)
    monkeypatch.undo()
    assert all(plan.skip_reason for plan in plans)
    return calls[0]


def test_planning_grows_linearly_with_the_input_count(tmp_path, monkeypatch):
    small = _file_system_lookups(monkeypatch, tmp_path / "small", 100)
    large = _file_system_lookups(monkeypatch, tmp_path / "large", 400)
    assert large <= 4.4 * small, (small, large)  # linear: 4x the inputs, 4x the look-ups (quadratic was 16x)


def test_planning_a_large_batch_reports_its_progress(tmp_path, monkeypatch, capsys):
    files, out = _batch(tmp_path, 25)
    monkeypatch.setattr(output_plan, "PLAN_PROGRESS_EVERY", 10)
    heard = []
    plan_outputs(files, out, progress=lambda done, total: heard.append((done, total)))
    assert heard == [(10, 25), (20, 25), (25, 25)]
    monkeypatch.setattr(cli, "PLANNING_PROGRESS_FROM", 20)
    cli._planning_printer(25)(25, 25)
    assert "planning outputs 25/25" in capsys.readouterr().err
    assert cli._planning_printer(19) is None  # a small batch plans at once: no progress line


KILLED_BETWEEN_DATA_AND_HEADER = """
import os, signal, sys
from MedShiftLib import atomic_files
real = atomic_files.publish
def publish(tmp, path, overwrite=True):
    real(tmp, path, overwrite)
    if str(path).endswith(".raw.gz"):
        os.kill(os.getpid(), signal.SIGKILL)  # the data file is in place, its header not yet
atomic_files.publish = publish
from MedShiftLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_between_an_nrrd_data_file_and_its_header_leaves_nothing_a_rerun_skips(tmp_path, model_path):
    source = tmp_path / "in" / "scan.nhdr"
    source.parent.mkdir()
    pixels = (20000 + 20000 * np.random.default_rng(3).random((48, 40))).astype(np.uint16)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(source), useCompression=True)
    out = tmp_path / "out"
    arguments = ["translate", str(source), "--out", str(out), "--model", str(model_path), "--source", "a",
                 "--target", "b", "--steps", "1", "--device", "cpu"]
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_DATA_AND_HEADER, *arguments], env=ENV,
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "scan.raw.gz").exists() and not (out / "scan.nhdr").exists()  # the stray data file
    assert cli.main(arguments) == 0  # translated again, not skipped as existing
    assert sorted(p.name for p in out.iterdir()) == ["scan.nhdr", "scan.raw.gz"]  # temporaries swept
    assert read_radiograph(out / "scan.nhdr").pixels.shape == (48, 40)
    assert cli.main(arguments) == 1  # now it is an output: skipped unless --overwrite


FIFO_SWAPPED_IN = """
import os, signal, sys, time
from pathlib import Path
# a test run started in the background by a non-interactive shell inherits SIGINT ignored: give Ctrl-C its default
signal.signal(signal.SIGINT, signal.default_int_handler)
from MedShiftLib.pipeline import file_translation
real_plan, real_translate = file_translation.plan_outputs, file_translation.translate_image
def plan(files, *args, **kwargs):
    plans = real_plan(files, *args, **kwargs)
    os.unlink(files[0])
    os.mkfifo(files[0])  # the first input becomes a FIFO after the planning, before it is read
    return plans
def translate(image, *args, **kwargs):
    Path(sys.argv[1]).touch()  # the FIFO is behind: the signal comes in the middle of the next image
    time.sleep(120)
file_translation.plan_outputs, file_translation.translate_image = plan, translate
from MedShiftLib.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signal_number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_input_replaced_by_a_fifo_is_refused_and_signals_still_stop_the_run(tmp_path, model_path, signal_number,
                                                                                status):
    for name in ("a.png", "b.png"):
        pixels = (20000 + 20000 * np.random.default_rng(0).random((40, 48))).astype(np.uint16)
        sitk.WriteImage(sitk.GetImageFromArray(pixels), str(tmp_path / name))
    ready = tmp_path / "ready"
    command = [sys.executable, "-c", FIFO_SWAPPED_IN, str(ready), "translate", str(tmp_path / "a.png"),
               str(tmp_path / "b.png"), "--out", str(tmp_path / "out"), "--model", str(model_path), "--source", "a",
               "--target", "b", "--steps", "1", "--device", "cpu"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal_number)  # stuck on the FIFO or not, the signal must end the run
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert ready.exists(), err  # the FIFO did not hold the run up
    assert "a.png: is a FIFO (named pipe), not an image file" in err and "Traceback" not in err, err
    assert process.returncode == status, err
    assert not any((tmp_path / "out").iterdir())  # no temporary left behind


def test_a_fifo_put_in_place_after_the_check_is_never_opened(tmp_path):
    from MedShiftLib.io.regular_files import readable_path
    pixels = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48)
    source = tmp_path / "x.png"
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(source))
    with readable_path(source) as readable:
        os.unlink(source)
        os.mkfifo(source)  # swapped between the check and the library's open
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(readable))), pixels)
