"""The Slicer side's model cache: one load per version of a checkpoint's files and device."""
import os

from helpers import write_tiny_checkpoint

from MedShiftLib.engine.checkpoint import load_checkpoint, save_checkpoint
from MedShiftLib.engine.domain_statistics import statistics_path, write_statistics
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics
from MedShiftSlicer.model_cache import cached_model, model_domains


def _touch_later(path, seconds):
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_the_model_is_loaded_once_and_again_when_its_weights_or_statistics_change(tmp_path):
    import torch

    path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("a", "b"))
    first = cached_model(path, "cpu")
    assert cached_model(path, "cpu") is first and first[1].statistics is None
    assert model_domains(path) == ("a", "b")

    images = {"a": torch.randn(2, 1, 32, 32), "b": 2 * torch.randn(2, 1, 32, 32)}
    write_statistics(statistics_path(path), measure_domain_statistics(images), ("a", "b"))
    _touch_later(statistics_path(path), 1)
    with_statistics = cached_model(path, "cpu")
    assert with_statistics is not first and with_statistics[1].statistics is not None

    model, info = load_checkpoint(path)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(path, model.state_dict(), info)
    _touch_later(path, 2)
    retrained = cached_model(path, "cpu")
    assert retrained is not with_statistics
    assert not torch.equal(next(retrained[0].parameters()), next(first[0].parameters()))
