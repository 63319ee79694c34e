"""Slicer volume nodes <-> radiographs, and translating a node (in this process or in a child process).

This is the only MedShiftLib file that touches MRML; it imports `slicer`/`vtk` inside the functions
that need them, so `python -m MedShiftLib.slicer_nodes JOB_DIR` (the background worker the Slicer
panel starts with PythonSlicer) runs without a scene. Works with a full Slicer and with the PyPI
`slicer-core` package (what Testing/test_slicer_nodes.py uses).

Geometry: a node's IJKToRAS matrix holds spacing, origin and direction in RAS; a RadiographImage holds
them in ITK's LPS (x and y negated). Slice k of a node is the 2-D frame k; an output node gets the
input's IJKToRAS (or, for one frame, the IJKToRAS of that slice) so it overlays the input exactly.

The path of a node translation, each step one function:
    volume_frames (node -> frames) -> translate_frames (engine) -> add_translated_volume (frames -> node)
In the panel, translate_frames runs in a child process: write_translation_job -> `python -m
MedShiftLib.slicer_nodes JOB_DIR` (prints PROGRESS k/N lines) -> read_translation_result. Killing
the child cancels; nothing is added to the scene until the whole result is there.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from .errors import InputImageError, MedShiftError
from .radiograph import RadiographImage

FrameSelection = Union[int, str, None]  # None: the volume must be one frame; k: frame k; "all": every frame
ProgressCallback = Callable[[int, int], None]

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
FORMATS_WITHOUT_SPACING = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
JOB_FILE, INPUT_FILE, OUTPUT_FILE = "job.json", "input.npy", "output.npy"
EXIT_USER_ERROR, EXIT_OUT_OF_MEMORY = 2, 3


# ---- geometry ----------------------------------------------------------------------------------------

def ijk_to_ras_of_node(node: Any) -> np.ndarray:
    """The node's 4x4 IJKToRAS matrix as a numpy array."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def frame_geometry(ijk_to_ras: np.ndarray, frame: int = 0) -> dict[str, tuple[float, ...]]:
    """Spacing, origin and direction (ITK/LPS, as RadiographImage holds them) of slice `frame`."""
    axes = ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    direction_lps = LPS_FROM_RAS @ (axes / spacing)
    origin_lps = LPS_FROM_RAS @ (ijk_to_ras[:3, 3] + frame * axes[:, 2])
    return {"spacing": tuple(float(s) for s in spacing), "origin": tuple(float(o) for o in origin_lps),
            "direction": tuple(float(d) for d in direction_lps.reshape(-1))}


def ijk_to_ras_of_image(image: RadiographImage) -> np.ndarray:
    """The IJKToRAS matrix of a one-slice node holding `image` (inverse of `frame_geometry`)."""
    direction_ras = LPS_FROM_RAS @ np.asarray(image.direction, dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction_ras * np.asarray(image.spacing, dtype=float)
    matrix[:3, 3] = LPS_FROM_RAS @ np.asarray(image.origin, dtype=float)
    return matrix


# ---- node -> frames -------------------------------------------------------------------------------------

def spacing_is_known(node: Any) -> bool:
    """False when the node was read from a format that stores no physical pixel size (PNG, JPEG, BMP, TIFF)."""
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    name = (storage.GetFileName() or "") if storage is not None else ""
    return not name.lower().endswith(FORMATS_WITHOUT_SPACING)


def check_volume_node(node: Any) -> None:
    """Raise InputImageError unless `node` is a grey scalar volume with image data."""
    if node is None:
        raise InputImageError("no input volume selected; choose the radiograph to translate")
    name = node.GetName()
    if node.IsA("vtkMRMLVectorVolumeNode") or node.IsA("vtkMRMLDiffusionTensorVolumeNode"):
        raise InputImageError(
            f"'{name}' is a colour/vector volume ({node.GetClassName()}); MedShift translates grey radiographs. "
            "Convert it first with the 'Vector to Scalar Volume' module (luminance), then translate the result")
    if node.IsA("vtkMRMLLabelMapVolumeNode") or not node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputImageError(f"'{name}' is a {node.GetClassName()}, not a grey scalar volume; choose a radiograph")
    image_data = node.GetImageData()
    if image_data is None or min(image_data.GetDimensions()) < 1:
        raise InputImageError(f"'{name}' holds no image data; load the radiograph again")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputImageError(f"'{name}' has {image_data.GetNumberOfScalarComponents()} components per pixel; "
                              "MedShift needs one grey value per pixel")


def frame_count(node: Any) -> int:
    """Number of 2-D frames (slices along K) of a volume node."""
    return int(node.GetImageData().GetDimensions()[2])


def select_frames(name: str, count: int, rows: int, cols: int, frame: FrameSelection) -> list[int]:
    """The slice indices a frame selection means, or InputImageError saying what to choose."""
    if frame is None:
        if count > 1:
            raise InputImageError(
                f"'{name}' has {count} slices of {rows}x{cols} pixels, but one radiograph is expected: for a CT "
                "volume, use CT projection to make a radiograph first; for a cine, translate every frame "
                f"(frame='all') or pick one frame (0..{count - 1})")
        return [0]
    if frame == "all":
        return list(range(count))
    if isinstance(frame, str) or isinstance(frame, bool) or int(frame) != frame:
        raise InputImageError(f"frame must be None, 'all' or a frame number, got {frame!r}")
    if not 0 <= int(frame) < count:
        raise InputImageError(f"'{name}' has {count} frame(s), 0..{count - 1}; frame {frame} does not exist")
    return [int(frame)]


def volume_frames(node: Any, frame: FrameSelection = None) -> list[RadiographImage]:
    """The chosen frames of a scalar volume node as radiographs (copies; the node is never changed)."""
    import slicer

    check_volume_node(node)
    array = slicer.util.arrayFromVolume(node)  # (K, rows, cols), shares memory with the node
    count, rows, cols = array.shape[:3]
    indices = select_frames(node.GetName(), count, rows, cols, frame)
    ijk_to_ras = ijk_to_ras_of_node(node)
    known = spacing_is_known(node)
    frames = []
    for k in indices:
        metadata = {"source_node": node.GetName(), "frame": k, "number_of_frames": count, "spacing_known": known}
        frames.append(RadiographImage(np.array(array[k], copy=True), photometric="MONOCHROME2",
                                      metadata=metadata, **frame_geometry(ijk_to_ras, k)))
    return frames


# ---- frames -> node -------------------------------------------------------------------------------------

def _copy_window_level(source: Any, target: Any) -> None:
    """Give `target` the display window/level of `source`, so both look alike side by side."""
    shown, display = source.GetDisplayNode(), target.GetDisplayNode()
    if shown is None or display is None or not hasattr(shown, "GetWindow"):
        return
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(shown.GetWindow(), shown.GetLevel())


def add_translated_volume(scene: Any, frames: Sequence[RadiographImage], ijk_to_ras: np.ndarray, name: str,
                          output_node: Any = None, like: Any = None) -> Any:
    """Put frames into `output_node` (or a new scalar volume node) with the given IJKToRAS; returns the node."""
    import slicer

    pixels = np.stack([f.pixels for f in frames])
    if output_node is None:
        output_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    output_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
    slicer.util.updateVolumeFromArray(output_node, pixels)
    output_node.CreateDefaultDisplayNodes()
    if like is not None:
        _copy_window_level(like, output_node)
    return output_node


def add_radiograph_volume(scene: Any, image: RadiographImage, name: str) -> Any:
    """A new one-slice scalar volume node holding `image` with its geometry."""
    return add_translated_volume(scene, [image], ijk_to_ras_of_image(image), name)


# ---- translation ---------------------------------------------------------------------------------------

_MODEL_CACHE: dict[tuple, tuple] = {}


def cached_model(model_path: str | Path | None = None, device: str = "auto") -> tuple[Any, Any]:
    """(model, CheckpointInfo) for a checkpoint on a device, loaded once per (file version, device)."""
    from .checkpoint import default_model_path, load_checkpoint
    from .devices import resolve_device

    path = Path(model_path) if model_path else default_model_path()
    torch_device = resolve_device(device)
    stat = path.stat() if path.is_file() else None
    key = (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None, str(torch_device))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # keep one model in memory
        _MODEL_CACHE[key] = load_checkpoint(path, torch_device)
    return _MODEL_CACHE[key]


def read_model_info(model_path: str | Path | None = None) -> Any:
    """CheckpointInfo of a checkpoint (None: the default model), read without loading its weights."""
    from .checkpoint import default_model_path, read_checkpoint_info

    return read_checkpoint_info(Path(model_path) if model_path else default_model_path())


def model_domains(model_path: str | Path | None = None) -> tuple[str, ...]:
    """Domain names a checkpoint knows, in label order."""
    return read_model_info(model_path).domains


def translation_input_problem(node: Any, frame: FrameSelection, source_domain: str,
                              target_domain: str) -> str | None:
    """What keeps a translation from starting (for the panel's Translate tooltip), or None when ready."""
    try:
        check_volume_node(node)
        dims = node.GetImageData().GetDimensions()
        select_frames(node.GetName(), dims[2], dims[1], dims[0], frame)
    except InputImageError as exc:
        return str(exc)
    if not source_domain or not target_domain:
        return "choose the source and the target domain"
    if source_domain == target_domain:
        return f"source and target domain are both '{source_domain}'; choose another target"
    return None


def translate_frames(frames: Sequence[RadiographImage], model: Any, info: Any, settings: Any,
                     progress: ProgressCallback | None = None, cancel: Any = None) -> list[RadiographImage]:
    """Translate frames one by one; progress counts solver steps over all frames."""
    from .translation import translate_image

    settings = settings.validated(info)
    per_frame = 2 * settings.steps
    total = per_frame * len(frames)
    results = []
    for index, image in enumerate(frames):
        report = None
        if progress is not None:
            report = (lambda offset: lambda done, _total: progress(offset + done, total))(index * per_frame)
        results.append(translate_image(image, model, info, settings.for_image(index), progress=report,
                                       cancel=cancel))
    return results


def output_name(input_name: str, settings: Any, frame: FrameSelection = None) -> str:
    """Name of a translated node, e.g. 'CT_head sim-low->clinical-normal tau0.6'."""
    from .translation import describe

    suffix = f" frame{frame}" if isinstance(frame, int) and not isinstance(frame, bool) else ""
    return f"{input_name} {describe(settings)}{suffix}"


def output_geometry(node: Any, frames: Sequence[RadiographImage], frame: FrameSelection) -> np.ndarray:
    """IJKToRAS of the output: the input's, or that of the one translated slice."""
    if isinstance(frame, int) and not isinstance(frame, bool):
        return ijk_to_ras_of_image(frames[0])
    return ijk_to_ras_of_node(node)


def check_output_node(input_node: Any, output_node: Any) -> None:
    """Refuse to write the translation into its own input."""
    if output_node is not None and output_node is input_node:
        raise MedShiftError(f"the output volume is the input '{input_node.GetName()}'; MedShift never overwrites "
                            "its input: choose another output volume or 'Create new volume'")
    if output_node is not None and (output_node.IsA("vtkMRMLVectorVolumeNode")
                                    or output_node.IsA("vtkMRMLLabelMapVolumeNode")):
        raise MedShiftError(f"the output volume '{output_node.GetName()}' is a {output_node.GetClassName()}; "
                            "choose a scalar volume or 'Create new volume'")


def translate_volume_node(node: Any, settings: Any, model_path: str | Path | None = None, device: str = "auto",
                          frame: FrameSelection = None, output_node: Any = None,
                          progress: ProgressCallback | None = None, cancel: Any = None) -> Any:
    """Translate a volume node (one frame, a chosen frame, or every frame) into a node on the input's grid.

    Blocking; the input is never changed; on cancel (TranslationCancelled) or any error no node is added
    or changed."""
    check_output_node(node, output_node)
    frames = volume_frames(node, frame)
    model, info = cached_model(model_path, device)
    translated = translate_frames(frames, model, info, settings, progress=progress, cancel=cancel)
    return add_translated_volume(node.GetScene(), translated, output_geometry(node, frames, frame),
                                 output_name(node.GetName(), settings, frame), output_node, like=node)


# ---- background job (child process) ------------------------------------------------------------------------

def write_translation_job(job_dir: str | Path, frames: Sequence[RadiographImage], settings: Any,
                          model_path: str | Path | None, device: str) -> Path:
    """Write frames and settings into `job_dir` for `python -m MedShiftLib.slicer_nodes JOB_DIR`."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    np.save(job_dir / INPUT_FILE, np.stack([f.pixels for f in frames]))
    job = {
        "settings": asdict(settings),
        "model_path": str(model_path) if model_path else None,
        "device": device,
        "frames": [{"spacing": f.spacing, "origin": f.origin, "direction": f.direction, "photometric": f.photometric,
                    "spacing_known": bool(f.metadata.get("spacing_known", True))} for f in frames],
    }
    (job_dir / JOB_FILE).write_text(json.dumps(job, indent=1))
    return job_dir


def read_translation_job(job_dir: str | Path) -> tuple[list[RadiographImage], Any, str | None, str]:
    """(frames, settings, model_path, device) of a job written by `write_translation_job`."""
    from .translation import TranslationSettings

    job_dir = Path(job_dir)
    job = json.loads((job_dir / JOB_FILE).read_text())
    pixels = np.load(job_dir / INPUT_FILE, allow_pickle=False)
    frames = [RadiographImage(np.ascontiguousarray(p), spacing=tuple(g["spacing"]), origin=tuple(g["origin"]),
                              direction=tuple(g["direction"]), photometric=g["photometric"],
                              metadata={"spacing_known": g["spacing_known"]})
              for p, g in zip(pixels, job["frames"])]
    return frames, TranslationSettings(**job["settings"]), job["model_path"], job["device"]


def run_translation_job(job_dir: str | Path, out=None) -> int:
    """Run a job (in the child process): prints DEVICE/PROGRESS/ERROR lines, writes output.npy; exit code."""
    out = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    job_dir = Path(job_dir)
    try:
        import torch
    except ImportError:
        say("ERROR PyTorch is not installed in this Python; install it with the PyTorch extension (PyTorch Utils)")
        return EXIT_USER_ERROR
    from .devices import describe_device

    try:
        frames, settings, model_path, device = read_translation_job(job_dir)
        model, info = cached_model(model_path, device)
        say(f"DEVICE {describe_device(next(model.parameters()).device)}")
        results = translate_frames(frames, model, info, settings,
                                   progress=lambda done, total: say(f"PROGRESS {done}/{total}"))
        fd, tmp = tempfile.mkstemp(prefix=".output.", suffix=".npy", dir=job_dir)
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, np.stack([r.pixels for r in results]))
        os.replace(tmp, job_dir / OUTPUT_FILE)
    except MedShiftError as exc:
        say(f"ERROR {exc}")
        return EXIT_USER_ERROR
    except torch.cuda.OutOfMemoryError:
        say("ERROR out of GPU memory: choose device 'cpu', or a smaller tile size under Advanced")
        return EXIT_OUT_OF_MEMORY
    return 0


def read_translation_result(job_dir: str | Path, frames: Sequence[RadiographImage]) -> list[RadiographImage]:
    """The translated frames a finished job wrote, on the grids of `frames`."""
    path = Path(job_dir) / OUTPUT_FILE
    if not path.is_file():
        raise MedShiftError(f"the translation process ended without writing {path}; see the Python console log")
    pixels = np.load(path, allow_pickle=False)
    if pixels.shape[0] != len(frames):
        raise MedShiftError(f"the translation process returned {pixels.shape[0]} frames for {len(frames)} inputs")
    return [f.with_pixels(p) for f, p in zip(frames, pixels)]


def parse_worker_line(line: str) -> tuple[str, Any]:
    """('progress', (done, total)), ('device', text), ('error', message) or ('log', line) for a worker line."""
    line = line.rstrip("\r\n")
    kind, _, rest = line.partition(" ")
    if kind == "PROGRESS":
        done, _, total = rest.partition("/")
        if done.isdigit() and total.isdigit():
            return "progress", (int(done), int(total))
    if kind == "DEVICE":
        return "device", rest
    if kind == "ERROR":
        return "error", rest
    return "log", line


def eta_seconds(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left at the average pace so far, or None before the first step."""
    if done <= 0 or total <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s * max(total - done, 0) / done


def format_eta(seconds: float | None) -> str:
    """'ETA 1:05' style text ('' when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"ETA {minutes}:{secs:02d}"


# ---- CT projection --------------------------------------------------------------------------------------

def ct_material_volume(ct_node: Any, grid_size: int = 160) -> Any:
    """The simulator's material volume from a CT node in Hounsfield units (via MedShiftLib.ct_volume)."""
    import slicer
    import SimpleITK as sitk

    from .ct_volume import read_ct_volume

    check_volume_node(ct_node)
    if frame_count(ct_node) < 2:
        raise InputImageError(f"'{ct_node.GetName()}' is a single slice; CT projection needs a 3-D CT volume")
    geometry = frame_geometry(ijk_to_ras_of_node(ct_node))
    image = sitk.GetImageFromArray(np.array(slicer.util.arrayFromVolume(ct_node), dtype=np.float32))
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    with tempfile.TemporaryDirectory(prefix="medshift-ct-") as folder:
        path = Path(folder) / "ct.nrrd"
        sitk.WriteImage(image, str(path))
        return read_ct_volume(path, grid_size=grid_size)


def project_ct_node(ct_node: Any, lao_rao_deg: float = 0.0, cranial_caudal_deg: float = 0.0,
                    sid_mm: float | None = None, detector_pixels: int = 256, domain: str = "sim-low",
                    seed: int = 0, grid_size: int = 160, device: str = "cpu") -> Any:
    """A new radiograph node: a C-arm projection of a CT node rendered in a simulator domain."""
    from .cone_beam_projector import (DEFAULT_DETECTOR_WIDTH_MM, DEFAULT_SID_MM, DEFAULT_SOD_MM, CArmGeometry,
                                      ConeBeamProjector, check_angles)
    from .domain_rendering import check_domain, draw_domain_settings, render_domain, to_uint16

    check_domain(domain)
    try:
        check_angles(lao_rao_deg, cranial_caudal_deg)
    except ValueError as exc:
        raise InputImageError(str(exc)) from None
    sid_mm = DEFAULT_SID_MM if sid_mm is None else float(sid_mm)
    if sid_mm <= DEFAULT_SOD_MM:
        raise InputImageError(f"source-detector distance {sid_mm:g} mm must exceed the source-isocentre distance "
                              f"{DEFAULT_SOD_MM:g} mm")
    if not 16 <= detector_pixels <= 4096:
        raise InputImageError(f"detector size must be 16..4096 pixels, got {detector_pixels}")
    volume = ct_material_volume(ct_node, grid_size)
    spacing = DEFAULT_DETECTOR_WIDTH_MM / detector_pixels
    geometry = CArmGeometry(lao_rao_deg=lao_rao_deg, cranial_caudal_deg=cranial_caudal_deg, sid_mm=sid_mm,
                            rows=detector_pixels, cols=detector_pixels, pixel_spacing_mm=spacing)
    line_integrals = ConeBeamProjector(volume, device=device).project(geometry)
    rng = np.random.default_rng(seed)
    rendering = render_domain(line_integrals, draw_domain_settings(domain, rng), spacing, rng)
    image = RadiographImage(to_uint16(rendering.image), spacing=(spacing, spacing, 1.0))
    name = f"{ct_node.GetName()} {domain} LAO{lao_rao_deg:+g} CRA{cranial_caudal_deg:+g}"
    return add_radiograph_volume(ct_node.GetScene(), image, name)


def main(argv: list[str] | None = None) -> int:
    """`python -m MedShiftLib.slicer_nodes JOB_DIR`: the panel's background translation worker."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m MedShiftLib.slicer_nodes JOB_DIR", file=sys.stderr)
        return EXIT_USER_ERROR
    return run_translation_job(argv[0])


if __name__ == "__main__":
    sys.exit(main())
