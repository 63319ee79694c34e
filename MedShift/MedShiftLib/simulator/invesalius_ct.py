"""`medshift fetch-ct`: a real head CT, InVesalius' example "Cranium", from Debian's invesalius-examples package.

The package (GPL-2, https://packages.debian.org/invesalius-examples) holds
usr/share/doc/invesalius-examples/examples/Cranium.inv3, a gzipped tar whose main.plist gives the shape,
type and spacing of matrix.dat: 108 x 256 x 256 int16 Hounsfield units at 0.957 x 0.957 x 1.5 mm (skull
top to upper teeth, with a head-holder arc behind the head). InVesalius stores the rows of each slice
from posterior to anterior (the face is at the high row indices), so the rows are flipped to DICOM's
LPS order; columns are taken as stored (left-right cannot be told from the anatomy; a mirrored head
makes the same radiographs up to a flip). The .deb is read here (ar + tar), so neither dpkg nor ar is
needed; only `apt-get download` fetches it. The voxels are checked against a SHA-256 recorded below.
"""
from __future__ import annotations

import hashlib
import io
import plistlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_files import publish_folder, temporary_folder
from ..errors import MedShiftError
from ..io.checked_writes import write_itk_checked

PACKAGE = "invesalius-examples"
INV3_PATH = "usr/share/doc/invesalius-examples/examples/Cranium.inv3"
# SHA-256 of Cranium.inv3's matrix.dat (invesalius-examples 3.1.99998-4, Debian bookworm)
CRANIUM_MATRIX_SHA256 = "d87fd5e6aaf2c4fdf4f3fe28ee3335192fc2464ed8e9682fc78530cb837938da"
OUTPUT_NAME = "cranium_ct.nrrd"
# The body-only, downsampled copy that the repository ships (GPL-2, its own folder; scripts/make_shipped_ct.py)
SHIPPED_CT = Path(__file__).resolve().parents[2] / "Resources" / "ThirdParty" / "Cranium" / "cranium_head_ct.nrrd"
MANUAL_DOWNLOAD = (f"download {PACKAGE}_*_all.deb by hand from https://packages.debian.org/bookworm/all/{PACKAGE}/"
                   "download and run `medshift fetch-ct OUT_DIR --deb FILE`")


class CTFetchError(MedShiftError):
    """The example CT cannot be downloaded, unpacked or verified."""


@dataclass(frozen=True)
class InVesaliusVolume:
    """A volume read from an InVesalius project: HU indexed [z, y, x] in LPS order and spacing (x, y, z) mm."""

    hounsfield: np.ndarray
    spacing_mm: tuple[float, float, float]
    sha256: str


def shipped_ct_path() -> Path | None:
    """The shipped Cranium CT (MedShift/Resources/ThirdParty/Cranium), or None where it is not present."""
    return SHIPPED_CT if SHIPPED_CT.is_file() else None


def download_package(folder: Path, apt_get: str = "apt-get") -> Path:
    """Run `apt-get download invesalius-examples` in `folder`; returns the .deb it wrote."""
    executable = shutil.which(apt_get)
    if executable is None:
        raise CTFetchError(f"apt-get is not available on this machine (not a Debian/Ubuntu system?); {MANUAL_DOWNLOAD}")
    try:
        result = subprocess.run([executable, "download", PACKAGE], cwd=folder, capture_output=True, text=True,
                                timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CTFetchError(f"`apt-get download {PACKAGE}` failed ({exc}); {MANUAL_DOWNLOAD}") from exc
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        lines = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise CTFetchError(f"`apt-get download {PACKAGE}` failed ({reason}); {MANUAL_DOWNLOAD}")
    return debs[-1]


def _ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a Unix ar archive (a .deb is one), by name."""
    if not data.startswith(b"!<arch>\n"):
        raise CTFetchError("not a Debian package (no ar archive header); " + MANUAL_DOWNLOAD)
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise CTFetchError("damaged Debian package (bad ar member header); " + MANUAL_DOWNLOAD) from exc
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def inv3_from_deb(deb: str | Path) -> bytes:
    """The bytes of Cranium.inv3 inside an invesalius-examples .deb."""
    deb = Path(deb)
    try:
        data = deb.read_bytes()
    except OSError as exc:
        raise CTFetchError(f"cannot read {deb} ({exc.strerror or exc}); " + MANUAL_DOWNLOAD) from exc
    payload = next((v for k, v in _ar_members(data).items() if k.startswith("data.tar")), None)
    if payload is None:
        raise CTFetchError(f"{deb} holds no data.tar member; is it the {PACKAGE} package? " + MANUAL_DOWNLOAD)
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
            for member in archive:
                if member.isfile() and member.name.lstrip("./") == INV3_PATH:
                    return archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CTFetchError(f"cannot unpack {deb} ({exc}); " + MANUAL_DOWNLOAD) from exc
    raise CTFetchError(f"{deb} does not contain {INV3_PATH}; is it the {PACKAGE} package?")


def read_inv3(inv3: bytes, expected_sha256: str | None = CRANIUM_MATRIX_SHA256) -> InVesaliusVolume:
    """The CT of an InVesalius project (.inv3 bytes); refuses voxels whose SHA-256 differs from the expected one."""
    try:
        with tarfile.open(fileobj=io.BytesIO(inv3), mode="r:gz") as archive:
            files = {Path(m.name).name: m for m in archive if m.isfile()}
            if "main.plist" not in files:
                raise CTFetchError("the InVesalius project has no main.plist")
            info = plistlib.loads(archive.extractfile(files["main.plist"]).read())
            matrix = info["matrix"]
            raw = archive.extractfile(files[matrix["filename"]]).read()
    except (tarfile.TarError, EOFError, OSError, KeyError, plistlib.InvalidFileException) as exc:
        raise CTFetchError(f"cannot read the InVesalius project ({exc!r})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise CTFetchError(f"the CT's voxels have SHA-256 {digest}, not the expected {expected_sha256}: the package "
                           "is damaged or a different version; nothing was written")
    shape = tuple(int(n) for n in matrix["shape"])
    dtype = np.dtype(matrix.get("dtype", "int16"))
    if len(shape) != 3 or len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise CTFetchError(f"matrix {matrix['filename']} has {len(raw)} bytes, not a {shape} {dtype} volume")
    hu = np.frombuffer(raw, dtype=dtype).reshape(shape)[:, ::-1, :]  # rows posterior -> anterior: flip to LPS
    spacing = tuple(float(s) for s in info["spacing"])
    return InVesaliusVolume(hounsfield=np.ascontiguousarray(hu), spacing_mm=spacing, sha256=digest)


def write_ct_nrrd(volume: InVesaliusVolume, path: str | Path) -> Path:
    """Write a HU volume as a compressed NRRD (LPS, identity direction, centred origin), atomically."""
    import SimpleITK as sitk

    path = Path(path)
    image = sitk.GetImageFromArray(volume.hounsfield.astype(np.int16))
    image.SetSpacing(volume.spacing_mm)
    n_xyz = np.asarray(volume.hounsfield.shape[::-1], dtype=float)
    image.SetOrigin(tuple(-(n_xyz - 1) / 2 * np.asarray(volume.spacing_mm)))
    with temporary_folder(path) as folder:  # read back whole before it takes the name (a full disk cuts it short)
        write_itk_checked(image, folder / path.name, path, "nrrd", compress=True)
        publish_folder(folder, path)
    return path


def fetch_cranium_ct(out_dir: str | Path, deb: str | Path | None = None, apt_get: str = "apt-get",
                     expected_sha256: str | None = CRANIUM_MATRIX_SHA256) -> Path:
    """Download (or take `deb`), unpack, verify and convert the Cranium CT to OUT_DIR/cranium_ct.nrrd."""
    out = Path(out_dir) / OUTPUT_NAME
    if deb is None:
        with tempfile.TemporaryDirectory(prefix="medshift-apt-") as folder:
            inv3 = inv3_from_deb(download_package(Path(folder), apt_get))
    else:
        inv3 = inv3_from_deb(deb)
    return write_ct_nrrd(read_inv3(inv3, expected_sha256), out)
