"""A full disk (or `ulimit -f`) while writing outputs: no cut-short file is kept or counted, a good earlier output
is never replaced by a broken one, and a re-run translates what was not written. The limits are real: a
RLIMIT_FSIZE set in a child process, and a small tmpfs where this machine allows mounting one."""
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import small_tmpfs

from MedShiftLib.cli import main
from MedShiftLib.io.radiograph_files import read_radiograph

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}
FORMATS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".dcm")


def _limited(limit: int):
    """preexec_fn: a file-size limit of `limit` bytes, its signal ignored (a write past it fails with EFBIG)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


WRITE_EACH_FORMAT = """
import json, sys
import numpy as np
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.io.radiograph_files import write_radiograph
pixels = np.random.default_rng(1).integers(0, 65535, (300, 300)).astype(np.uint16)
image = RadiographImage(pixels=pixels, spacing=(0.1, 0.1, 1.0), file_format="png")
outcome = {}
for path in sys.argv[1:]:
    try:
        write_radiograph(image, path, overwrite=True)
        outcome[path] = "written"
    except OSError as exc:
        outcome[path] = f"OSError {exc.errno}"
    except Exception as exc:
        outcome[path] = type(exc).__name__
print(json.dumps(outcome))
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("limit", [20_000, 180_300])  # cut early; cut near the end (the final writes fail)
def test_a_write_cut_short_by_a_file_size_limit_keeps_the_good_earlier_output(tmp_path, limit):
    from MedShiftLib.io.radiograph import RadiographImage
    from MedShiftLib.io.radiograph_files import write_radiograph
    earlier = RadiographImage(pixels=(np.arange(90_000) % 1000).astype(np.uint16).reshape(300, 300),
                              spacing=(0.1, 0.1, 1.0), file_format="png")
    outputs = [tmp_path / extension.strip(".") / f"x{extension}" for extension in FORMATS]  # one folder each: ITK
    for output in outputs:  # reads x.nii when asked for x.nii.gz beside it
        write_radiograph(earlier, output)
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, "-c", WRITE_EACH_FORMAT, *map(str, outputs)], env=ENV,
                            capture_output=True, text=True, timeout=120, preexec_fn=_limited(limit))
    outcome = json.loads(result.stdout.splitlines()[-1])
    after = _files(tmp_path)
    assert not [name for name in after if "/." in name]  # no temporary left
    for output in outputs:
        image = read_radiograph(output)
        if outcome[str(output)] == "written":  # it fitted: the new image, whole
            assert image.pixels.max() > 999, output
        else:  # refused with the system's reason, and the earlier output untouched
            assert outcome[str(output)] == "OSError 27", (output, outcome)
            name = str(output.relative_to(tmp_path))
            assert after[name] == before[name], output
    assert list(outcome.values()).count("written") < len(FORMATS)
    for noise in ("MetaImage", "TIFFAppendToStrip", "NWAD"):  # the libraries' own lines are not shown
        assert noise not in result.stderr, result.stderr


def _inputs(folder: Path, count: int, shape=(64, 64)) -> list[Path]:
    folder.mkdir()
    paths = []
    for k in range(count):
        pixels = (20000 + 20000 * np.random.default_rng(k).random(shape)).astype(np.uint16)
        paths.append(folder / f"in{k}.png")
        sitk.WriteImage(sitk.GetImageFromArray(pixels), str(paths[-1]))
    return paths


def _translate_command(inputs: Path, out: Path, model_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "MedShiftLib.cli", "translate", str(inputs), "--out", str(out),
            "--model", str(model_path), "--source", "a", "--target", "b", "--steps", "1", "--device", "cpu",
            "--format", "nifti", *extra]


def test_translate_past_a_file_size_limit_counts_no_broken_output_and_a_rerun_writes_them(tmp_path, model_path):
    _inputs(tmp_path / "in", 3, shape=(128, 128))  # a 16-bit NIfTI output of 32 KB each: past the limit
    out = tmp_path / "out"
    out.mkdir()
    cut = subprocess.run(_translate_command(tmp_path / "in", out, model_path), env=ENV, capture_output=True, text=True,
                         timeout=180, preexec_fn=_limited(20_000))
    assert cut.returncode == 1, cut.stderr
    assert "0 written" in cut.stderr and "Traceback" not in cut.stderr
    assert list(out.iterdir()) == []  # nothing cut short, no temporary
    rerun = subprocess.run(_translate_command(tmp_path / "in", out, model_path), env=ENV, capture_output=True,
                           text=True, timeout=180)
    assert rerun.returncode == 0 and "3 written, 0 skipped" in rerun.stderr, rerun.stderr
    for output in out.iterdir():
        assert read_radiograph(output).pixels.shape == (128, 128)


def test_a_full_tmpfs_stops_the_batch_in_one_line_and_keeps_only_whole_outputs(tmp_path, model_path, capsys):
    inputs = _inputs(tmp_path / "in", 4, shape=(128, 128))
    with small_tmpfs(tmp_path, "size=80k") as small:
        rc = main(["translate", *map(str, inputs), "--out", str(small), "--model", str(model_path), "--source", "a",
                   "--target", "b", "--steps", "1", "--device", "cpu", "--format", "nifti"])
        printed, err = capsys.readouterr()
        kept = {p.name: read_radiograph(p).pixels for p in small.iterdir()}
        hidden = [name for name in os.listdir(small) if name.startswith(".")]
        rc_overwrite = main(["translate", *map(str, inputs), "--out", str(small), "--model", str(model_path),
                             "--source", "a", "--target", "b", "--steps", "1", "--device", "cpu", "--format", "nifti",
                             "--overwrite"])
        err_overwrite = capsys.readouterr().err
        kept_after = {p.name: read_radiograph(p).pixels for p in small.iterdir()}
    assert rc == 1 and "no space left" in err and "Traceback" not in err
    assert 0 < len(kept) < 4 and not hidden
    assert sorted(Path(line).name for line in printed.splitlines()) == sorted(kept)  # each written one is whole
    for pixels in kept.values():
        assert pixels.shape == (128, 128) and np.all(np.isfinite(pixels)) and np.count_nonzero(pixels[-8:]) > 0
    assert rc_overwrite == 1 and "no space left" in err_overwrite
    assert set(kept_after) == set(kept)  # --overwrite on a full disk replaced nothing by a broken file
    for name, pixels in kept_after.items():
        assert np.array_equal(pixels, kept[name])
