"""The translation path runs on a machine with only torch, numpy, scipy, safetensors and Pillow (the GPU machine):
SimpleITK, pydicom, xraydb, POT, matplotlib and tqdm are imported only where a format or feature needs them,
and a missing one is named in one line with its pip command.

Each check runs in a fresh interpreter whose import system refuses those packages (None in sys.modules:
`import` raises ModuleNotFoundError and importlib.util.find_spec answers None, as for a package that is
not installed).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from test_radiograph_io import make_dicom, ramp

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("SimpleITK", "pydicom", "xraydb", "ot", "matplotlib", "tqdm")
BLOCKER = f"""
import sys
for _name in {ABSENT!r}:
    sys.modules[_name] = None  # `import` then fails as for a package that is not installed; find_spec says None
"""


def _run(code: str, cwd: Path, block: bool = True) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter (the packages in ABSENT refused when `block`), MedShift from this tree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}
    source = (BLOCKER if block else "") + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", source], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_importing_the_translation_path_loads_none_of_the_optional_packages(tmp_path):
    run = _run("""
        import sys
        import MedShiftLib.cli, MedShiftLib.pipeline.file_translation, MedShiftLib.pipeline.image_translation
        import MedShiftLib.training.run, MedShiftLib.engine.couplings, MedShiftLib.io.radiograph_files
        import MedShiftLib.io.data_folder, MedShiftLib.simulator.simulation
        print(sorted(m for m in ("SimpleITK", "pydicom", "xraydb", "ot", "matplotlib", "PIL") if m in sys.modules))
    """, tmp_path, block=False)  # (tqdm left out: torch.hub imports it when it is there, and does without)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_without_the_optional_packages_a_tensor_an_npy_and_a_png_are_translated(tmp_path):
    np.save(tmp_path / "chest.npy", ramp(64, 64).astype(np.float32))
    sitk.WriteImage(sitk.GetImageFromArray(ramp(64, 64)), str(tmp_path / "chest.png"))
    run = _run("""
        import numpy as np, torch
        from pathlib import Path
        from MedShiftLib.engine.checkpoint import default_model_path, load_checkpoint
        from MedShiftLib.pipeline.file_translation import translate_files
        from MedShiftLib.pipeline.image_translation import translate_batch
        from MedShiftLib.settings import TranslationSettings
        model, info = load_checkpoint(default_model_path(), torch.device("cpu"))
        settings = info.validate(TranslationSettings(source_domain="clinical-normal", target_domain="clinical-low"))
        x = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64)
        labels = lambda d: torch.tensor([info.domains.index(d)])
        y = translate_batch(model, x, labels("clinical-normal"), labels("clinical-low"), settings,
                            statistics=info.statistics)
        print("tensor", tuple(y.shape), bool(torch.isfinite(y).all()), float((y - x).abs().mean()) > 0)
        report = translate_files([Path("chest.npy"), Path("chest.png")], "out", settings)
        print(report.summary(), report.failed)
        out = np.load("out/chest.npy")
        print("npy", out.shape, out.dtype)
    """, tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "tensor (1, 1, 64, 64) True True"
    assert lines[1] == "2 written, 0 skipped, 0 failed []"
    assert lines[2] == "npy (64, 64) float32"
    from MedShiftLib.io.radiograph_files import read_radiograph
    png = read_radiograph(tmp_path / "out" / "chest.png")  # written without SimpleITK, read back with it here
    assert png.pixels.dtype == np.uint16 and png.shape == (64, 64)
    assert not np.array_equal(png.pixels, ramp(64, 64))  # translated, not copied


def test_without_pydicom_or_simpleitk_a_dicom_or_nrrd_input_fails_in_one_line_naming_the_package(tmp_path):
    make_dicom(tmp_path / "chest.dcm", ramp(32, 32))
    make_dicom(tmp_path / "IM000001", ramp(32, 32))
    sitk.WriteImage(sitk.GetImageFromArray(ramp(32, 32)), str(tmp_path / "chest.nrrd"))
    run = _run("""
        from MedShiftLib.errors import MissingPackageError
        from MedShiftLib.io.radiograph_files import read_radiograph
        for name in ("chest.dcm", "IM000001", "chest.nrrd"):
            try:
                read_radiograph(name)
            except MissingPackageError as exc:
                print(exc)
    """, tmp_path)
    assert run.returncode == 0, run.stderr
    dicom, no_extension, nrrd = run.stdout.splitlines()
    assert dicom == no_extension == ("the Python package pydicom is needed for DICOM files but is not installed; "
                                     "install it with: pip install pydicom")
    assert "SimpleITK is needed for NRRD, NIfTI and MHA files" in nrrd and nrrd.endswith("pip install SimpleITK")
    cli = _run("""
        import sys
        from MedShiftLib.cli import main
        sys.exit(main(["translate", "chest.dcm", "--out", "out", "--source", "clinical-normal",
                       "--target", "clinical-low"]))
    """, tmp_path)
    assert cli.returncode == 1
    failure = [line for line in cli.stderr.splitlines() if "chest.dcm" in line]
    assert len(failure) == 1 and "pip install pydicom" in failure[0] and "Traceback" not in cli.stderr


def test_without_pot_every_coupling_runs(tmp_path):
    """The OT and bridge plans are solved in torch (engine/couplings.py): training needs no POT."""
    run = _run("""
        import torch
        from MedShiftLib.engine.couplings import make_coupling
        x1, generator = torch.randn(4, 1, 8, 8), torch.Generator().manual_seed(0)
        for name in ("independent", "ot", "schrodinger-bridge"):
            print(name, tuple(make_coupling(name).sample(x1, generator).x_t.shape))
    """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{name} (4, 1, 8, 8)" for name in ("independent", "ot", "schrodinger-bridge")]


def test_training_and_simulation_progress_bars_need_no_tqdm():
    """Without tqdm an asked-for progress bar is a silent stand-in, not an ImportError."""
    run = _run("""
        from MedShiftLib.optional_packages import progress_bar
        bar = progress_bar(True, total=3)
        bar.update(1); bar.set_postfix(loss="0.1"); bar.close()
        print(type(bar).__name__)
    """, ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "_NoProgressBar"
