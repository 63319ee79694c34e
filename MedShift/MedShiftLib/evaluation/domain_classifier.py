"""An independent domain classifier: the realism judge of `medshift evaluate`.

A small CNN, trained by the project on the training split of a data folder (never on the images it
judges), that tells which domain a radiograph comes from. Evaluation uses its predictions (is a
translation recognised as its target domain?) and its penultimate features (KID and coverage between
translations and real target-domain images) instead of Inception/CLIP features, which would need
weights from the internet and were trained on photographs, not radiographs.

Inputs are images in the model range ([-1, 1], robust percentiles, see intensity.py) at a fixed
square resolution. Noise texture is what separates dose levels, so the first layers work at full
resolution and the network sees random crops, never downscaled copies, in training.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic_files import atomic_target
from ..errors import CheckpointError

CLASSIFIER_FORMAT = "medshift-domain-classifier"
FEATURE_CHANNELS = (16, 32, 64, 128)


class DomainClassifier(nn.Module):
    """Conv-BN-ReLU: one full-resolution conv (noise texture lives at the pixel scale), then stages of two
    convs each starting with stride 2; global average pool; linear head."""

    def __init__(self, domains: Sequence[str], channels: Sequence[int] = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.domains = tuple(domains)
        layers: list[nn.Module] = []
        previous = 1
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i > 0:
                layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(previous, len(self.domains))

    @property
    def feature_size(self) -> int:
        """Length of the feature vector `features` returns."""
        return self.head.in_features

    def features(self, x: Tensor) -> Tensor:
        """(B, feature_size) pooled features of images (B, 1, H, W) in the model range."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """(B, domains) logits."""
        return self.head(self.features(x))


@dataclass
class ClassifierTraining:
    """How the classifier is trained (recorded beside its weights)."""

    steps: int = 300
    batch_size: int = 16
    crop: int = 64
    lr: float = 2e-3
    seed: int = 0


def _random_crops(images: Tensor, crop: int, generator: torch.Generator) -> Tensor:
    """One random crop (and random flip) per image of (B, 1, H, W)."""
    _, _, h, w = images.shape
    crop = min(crop, h, w)
    out = []
    for image in images:
        top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
        patch = image[:, top:top + crop, left:left + crop]
        if bool(torch.rand((), generator=generator) < 0.5):
            patch = torch.flip(patch, dims=(2,))
        out.append(patch)
    return torch.stack(out)


def train_domain_classifier(images: Tensor, labels: Tensor, domains: Sequence[str],
                            settings: ClassifierTraining = ClassifierTraining(),
                            progress=None) -> DomainClassifier:
    """Train on images (N, 1, H, W) in the model range with integer labels; returns the model in eval mode.

    Deterministic for the same inputs and settings (seeded crops, batches and initialisation).
    """
    if images.ndim != 4 or images.shape[1] != 1 or len(images) != len(labels):
        raise ValueError("images must be (N, 1, H, W) with one label each")
    present = set(int(v) for v in labels)
    if len(present) < 2:
        raise ValueError("the classifier needs images of at least two domains")
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    model = DomainClassifier(domains)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=settings.steps)
    # Balanced batches: every domain equally often, whatever the counts.
    weights = torch.tensor([1.0 / int((labels == labels[i]).sum()) for i in range(len(labels))])
    model.train()
    for step in range(settings.steps):
        index = torch.multinomial(weights, settings.batch_size, replacement=True, generator=generator)
        batch = _random_crops(images[index], settings.crop, generator)
        loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, settings.steps, float(loss))
    return model.eval()


@torch.inference_mode()
def classify(model: DomainClassifier, images: Tensor, batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """(predicted labels (N,), features (N, feature_size)) of whole images (N, 1, H, W)."""
    labels, features = [], []
    for start in range(0, len(images), batch_size):
        f = model.features(images[start:start + batch_size].float())
        features.append(f)
        labels.append(model.head(f).argmax(dim=1))
    return torch.cat(labels), torch.cat(features)


def save_domain_classifier(model: DomainClassifier, path: str | Path, provenance: dict) -> Path:
    """Write weights and metadata (domains, provenance) to a safetensors file atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": CLASSIFIER_FORMAT, "domains": json.dumps(list(model.domains)),
                "provenance": json.dumps(provenance)}
    with atomic_target(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=metadata)
    return path


def load_domain_classifier(path: str | Path) -> tuple[DomainClassifier, dict]:
    """(model in eval mode, provenance) from `save_domain_classifier`'s file; CheckpointError if unusable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if metadata.get("format") != CLASSIFIER_FORMAT:
            raise CheckpointError(f"{path}: not a MedShift domain classifier; delete it to train a new one")
        domains = json.loads(metadata["domains"])
        model = DomainClassifier(domains)
        model.load_state_dict(tensors)
        return model.eval(), json.loads(metadata.get("provenance", "{}"))
    except CheckpointError:
        raise
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: unreadable domain classifier ({exc}); delete it to train a new one") from None


def accuracy(predicted: Tensor, expected: Tensor) -> float:
    """Fraction of predictions equal to the expected labels."""
    return float((predicted == expected).float().mean()) if len(expected) else float("nan")


def confusion_matrix(predicted: Tensor, expected: Tensor, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true domain, column = predicted domain."""
    matrix = np.zeros((classes, classes), dtype=int)
    for p, e in zip(predicted.tolist(), expected.tolist()):
        matrix[e, p] += 1
    return matrix
