"""Translating volume nodes: frames through the engine, the result node, and the blocking node translation.

The console and the self-test call `translate_volume_node`, which blocks; the panel runs the same
translation in a worker process (background_job.py) and adds its result with `add_translation_result`.
The engine is imported inside the functions, so this module loads before torch is installed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from MedShiftLib.errors import InputImageError, MedShiftError
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.settings import TranslationSettings

from .model_cache import cached_model
from .volume_nodes import (
    FrameSelection,
    add_translated_volume,
    check_output_node,
    check_volume_node,
    output_geometry,
    select_frames,
    volume_frames,
)

ProgressCallback = Callable[[int, int], None]


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


def translate_frames(frames: Sequence[RadiographImage], model: Any, info: Any, settings: TranslationSettings,
                     progress: ProgressCallback | None = None, cancel: Any = None) -> list[RadiographImage]:
    """Translate frames one by one; progress counts solver steps over all frames.

    What input_checks finds about the first frame (not a radiograph, source = target, ...) is logged as
    warnings; the translation runs all the same.
    """
    from MedShiftLib.pipeline.image_translation import translate_image
    from MedShiftLib.pipeline.input_checks import out_of_range_findings

    settings = info.validate(settings)
    for finding in out_of_range_findings(frames[0], settings, info) if frames else []:
        logging.warning(f"MedShift: {finding}")
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


def output_name(input_name: str, settings: TranslationSettings, frame: FrameSelection = None) -> str:
    """Name of a translated node, e.g. 'CT_head sim-low->clinical-normal tau0.6'."""
    suffix = f" frame{frame}" if isinstance(frame, int) and not isinstance(frame, bool) else ""
    return f"{input_name} {settings.description()}{suffix}"


def add_translation_result(node: Any, frames: Sequence[RadiographImage], translated: Sequence[RadiographImage],
                           frame: FrameSelection, settings: TranslationSettings, output_node: Any = None) -> Any:
    """Put the translated frames of `node` into `output_node` or a new node beside it; returns that node.

    MedShiftError when the input, or the chosen output, has left the scene since the translation started
    (a scene close, or the user deleted it): nothing is added then.
    """
    scene = node.GetScene() if node is not None else None
    if scene is None or scene.GetNodeByID(node.GetID()) is not node:
        raise MedShiftError("the input volume was removed from the scene while it was translated; nothing was added")
    if output_node is not None and output_node.GetScene() is not scene:
        raise MedShiftError(f"the output volume '{output_node.GetName()}' was removed from the scene while the "
                            "translation ran; nothing was added")
    return add_translated_volume(scene, translated, output_geometry(node, frames, frame),
                                 output_name(node.GetName(), settings, frame), output_node, like=node)


def translate_volume_node(node: Any, settings: TranslationSettings, model_path: str | Path | None = None,
                          device: str = "auto", frame: FrameSelection = None, output_node: Any = None,
                          progress: ProgressCallback | None = None, cancel: Any = None) -> Any:
    """Translate a volume node (one frame, a chosen frame, or every frame) into a node on the input's grid.

    Blocking; the input is never changed; on cancel (TranslationCancelled) or any error no node is added
    or changed."""
    check_output_node(node, output_node)
    frames = volume_frames(node, frame)
    model, info = cached_model(model_path, device)
    translated = translate_frames(frames, model, info, settings, progress=progress, cancel=cancel)
    return add_translation_result(node, frames, translated, frame, settings, output_node)
