"""Training data faults found before the first step, in one line each: unusable files, a domain lost to the
validation split, a run folder inside the data, a full disk; and inputs that are FIFOs or link loops."""
import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_png_domains

from MedShiftLib.cli import main
from MedShiftLib.io.data_folder import scan_data_folder, split_by_subject

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--preset", "tiny", "--resolution", "32", "--batch-size", "4", "--steps", "4", "--device", "cpu", "--quiet",
         "--sample-every", "0"]


def _data(root: Path) -> Path:
    return write_png_domains(root, domains=("a", "b"), subjects=4, views=2, size=32)


def _lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()


def test_unusable_training_files_are_each_named_before_the_first_step(tmp_path, capsys, monkeypatch):
    from MedShiftLib.training import run
    data = _data(tmp_path / "data")
    (data / "a" / "s1_v0.png").write_bytes(b"not a picture")
    (data / "b" / "s2_v1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    monkeypatch.setattr(run, "VelocityUNet", lambda *a, **k: pytest.fail("the network was built"))
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--workers", "0", *TRAIN]) == 2
    lines = _lines(capsys)
    assert len(lines) == 3, lines
    assert "s1_v0.png" in lines[0] and "domain 'a'" in lines[0] and lines[0].startswith("medshift: warning:")
    assert "s2_v1.png" in lines[1] and "domain 'b'" in lines[1]
    assert lines[2].startswith("medshift: error: 2 of 16 training images are unusable")
    assert not (tmp_path / "run").exists()


def test_one_unusable_file_is_one_line_naming_it(tmp_path, capsys):
    data = _data(tmp_path / "data")
    (data / "b" / "s3_v0.png").write_bytes(b"")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--workers", "0", *TRAIN]) == 2
    (line,) = _lines(capsys)
    assert "s3_v0.png" in line and "domain 'b'" in line and "fix or remove it" in line


def test_a_file_damaged_past_its_header_is_one_short_line_from_a_loader_worker(tmp_path, capsys, monkeypatch):
    from MedShiftLib.training import run
    data = _data(tmp_path / "data")
    damaged = data / "a" / "s2_v1.png"
    damaged.write_bytes(damaged.read_bytes()[:200])  # the header reads, the pixels do not
    monkeypatch.setattr(run, "statistics_for_run", lambda *a, **k: None)  # it would read (and meet) the file first
    rc = main(["train", str(data), "--out", str(tmp_path / "run"), "--workers", "2", "--validation-fraction", "0",
               *TRAIN])
    (line,) = _lines(capsys)
    assert rc == 2 and str(damaged) in line and "domain 'a'" in line, line
    assert len(line) < 400 and "worker" not in line, line


def test_a_domain_whose_images_all_fall_into_validation_keeps_a_training_subject(tmp_path):
    data = _data(tmp_path / "data")
    subjects = ["s0", "s1", "s2", "s3"]
    random.Random(0).shuffle(subjects)
    lonely = subjects[0]  # the first subject validation takes with seed 0
    (data / "c").mkdir()
    (data / "a" / f"{lonely}_v0.png").rename(data / "c" / f"{lonely}_v0.png")
    folder = scan_data_folder(data)
    with pytest.warns(UserWarning, match=f"domain 'c'.*subject '{lonely}' trains instead"):
        train, validation = split_by_subject(folder, 0.5, seed=0)
    assert [r.subject for r in train if r.domain == "c"] == [lonely]
    assert not {r.subject for r in train} & {r.subject for r in validation}
    assert validation and {r.domain for r in train} == {"a", "b", "c"}


def test_a_run_folder_inside_the_data_folder_is_refused(tmp_path, capsys):
    data = _data(tmp_path / "data")
    for out in (data / "run", data, data / "a" / "deeper"):
        assert main(["train", str(data), "--out", str(out), "--workers", "0", *TRAIN]) == 2
        (line,) = _lines(capsys)
        assert "inside the data folder" in line and "outside it" in line
    assert not (data / "run").exists() and not (data / "latest.safetensors").exists()
    assert main(["evaluate", "--data", str(tmp_path / "test"), "--train-data", str(data), "--out",
                 str(data / "evaluation")]) == 2
    (line,) = _lines(capsys)
    assert "inside the data folder" in line


def test_a_full_disk_as_safetensors_reports_it_today_is_named(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    from MedShiftLib.engine import checkpoint

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    data = _data(tmp_path / "data")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--workers", "0", *TRAIN]) == 1
    (line,) = _lines(capsys)
    assert "no space left on the disk" in line and "input/output" not in line


def test_a_real_file_size_limit_gives_its_own_errno_not_an_input_output_error(tmp_path):
    script = (
        "import errno, resource, signal, torch\n"
        "from pathlib import Path\n"
        "from MedShiftLib.engine.checkpoint import save_safetensors_atomically\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "try:\n"
        f"    save_safetensors_atomically({{'w': torch.zeros(100000)}}, {{}}, Path({str(tmp_path / 'x.st')!r}))\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno], exc.filename)\n")
    env = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [errno.errorcode[errno.EFBIG], str(tmp_path / "x.st")], out.stdout + out.stderr
    assert not list(tmp_path.iterdir())  # no temporary left


def test_a_fifo_a_link_loop_and_a_broken_link_are_named_for_what_they_are(tmp_path, capsys):
    fifo, loop, broken = tmp_path / "pipe.png", tmp_path / "loop.png", tmp_path / "broken.png"
    os.mkfifo(fifo)
    loop.symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(loop)
    broken.symlink_to(tmp_path / "gone.png")
    for path, what in ((fifo, "is a FIFO (named pipe)"), (loop, "symbolic link loop"), (broken, "broken symbolic")):
        assert main(["translate", str(path), "--out", str(tmp_path / "out"), "--source", "a", "--target",
                     "b"]) == 2
        (line,) = _lines(capsys)
        assert str(path) in line and what in line and "no such file" not in line
    assert main(["train", str(fifo), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    (line,) = _lines(capsys)
    assert "is a FIFO (named pipe), not a data folder" in line
