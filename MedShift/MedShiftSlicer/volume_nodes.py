"""Volume nodes <-> radiographs: the frames of a scalar volume node, and a node made from translated frames.

The path of a node translation: volume_frames (node -> frames) -> the engine -> add_translated_volume
(frames -> node). The input node is never changed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from MedShiftLib.errors import InputImageError, MedShiftError
from MedShiftLib.io.radiograph import RadiographImage

from .node_geometry import frame_geometry, ijk_to_ras_of_image, ijk_to_ras_of_node

FrameSelection = int | str | None  # None: the volume must be one frame; k: frame k; "all": every frame
FORMATS_WITHOUT_SPACING = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def spacing_is_known(node: Any) -> bool:
    """False when the node was read from a format that stores no physical pixel size (PNG, JPEG, BMP, or a TIFF
    whose resolution tags are not physical: MedShiftLib/io/raster_files.py decides, as for files)."""
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    name = (storage.GetFileName() or "") if storage is not None else ""
    if name.lower().endswith((".tif", ".tiff")):
        from MedShiftLib.io.raster_files import tiff_spacing_is_physical

        return tiff_spacing_is_physical(name)
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
