"""`medshift evaluate`: translation quality against baselines on a held-out, aligned simulated test set.

The test folder comes from `medshift simulate --clean` with a seed the model's training data did not
use, so its subjects are unseen and every view exists in every domain, noisy and noise-free. For every
ordered domain pair and every method/setting the evaluation measures, on the same views:

* structure: SSIM / PSNR against the aligned noise-free rendering of the target domain, and SSIM
  against the source image (the paper's way);
* realism: accuracy of an independent domain classifier (domain_classifier.py, trained here on the
  training data folder) at recognising the output as the target domain; KID and coverage of its
  features against the real target-domain test images; relative error of the noise power spectrum in
  flat regions against the real target-domain images (image_quality.py, postprocess/noise_power.py);
* cost: network evaluations (forward passes) and seconds per image.

Methods: the oracle (the real noisy target rendering, i.e. a perfect translation: a ceiling, not
ranked), no translation, histogram matching plus matched noise, contrast transfer plus matched noise,
dose noise insertion (Veldkamp et al. 2009; for pairs whose statistics imply a lower dose), SDEdit
with the same network, DDIB with one single-domain model per domain when they are given (ddib.py),
and MedShift over tau, guidance, noise renewal, contrast transfer and noise matching.
Everything runs at the model's working resolution in the model range. The test set is test_set.py's,
the scores and ranks results.py's, the written report report.py's.
"""
from __future__ import annotations

import importlib.util
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..engine.checkpoint import CheckpointInfo
from ..engine.domain_statistics import DomainStatistics, split_by_domain
from ..engine.network import VelocityUNet
from ..engine.ode_solvers import IntegrationStats
from ..errors import CheckpointError, DataFolderError, MedShiftError
from ..io.data_folder import scan_data_folder
from ..pipeline.image_translation import translate_batch
from ..postprocess.contrast_transfer import measure_domain_statistics
from ..postprocess.noise_model import statistics_dose_fraction
from ..postprocess.noise_power import flat_patch_corners, noise_power_spectrum
from ..settings import DEFAULTS, TranslationSettings
from ..training.dataset import sample_domain_images
from .baselines import (
    BaselineDomain,
    baseline_domain,
    contrast_noise_baseline,
    dose_noise_baseline,
    histogram_noise_baseline,
    sdedit_batch,
)
from .ddib import SingleDomainModel, translate_ddib
from .domain_classifier import (
    ClassifierTraining,
    DomainClassifier,
    accuracy,
    classify,
    confusion_matrix,
    load_domain_classifier,
    save_domain_classifier,
    train_domain_classifier,
)
from .image_quality import coverage, kernel_inception_distance, nps_relative_error, ssim, structure_scores
from .report import write_report
from .results import MethodResult
from .test_set import TestSet, check_held_out, load_test_set

CLASSIFIER_FILE = "domain_classifier.safetensors"
ORACLE, IDENTITY, HISTOGRAM = "oracle (real target rendering)", "no translation", "histogram + noise"
CONTRAST_BASELINE = "contrast transfer + noise"
DOSE_BASELINE = "dose noise insertion (Veldkamp)"


EVALUATION_PACKAGES = {"skimage": "scikit-image", "torchmetrics": "torchmetrics", "prdc": "prdc",
                       "sklearn": "scikit-learn"}


def require_evaluation_packages() -> None:
    """MedShiftError naming what to install when an evaluation dependency is missing."""
    missing = [name for module, name in EVALUATION_PACKAGES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise MedShiftError(f"evaluation needs {', '.join(missing)}: pip install 'medshift[evaluation]' "
                            "(or bash scripts/setup_env.sh evaluation)")


@dataclass
class EvaluationSettings:
    """What `medshift evaluate` runs: the settings swept for MedShift, the pairs, the views, the judge."""

    taus: tuple[float, ...] = (0.3, 0.45, 0.6)
    guidance_scales: tuple[float, ...] = (1.0, 1.5, 2.0)
    solver: str = DEFAULTS["solver"]
    steps: int = DEFAULTS["steps"]
    schedule: str = DEFAULTS["schedule"]
    noise_renewals: tuple[float, ...] = (0.0,)
    contrast_transfers: tuple[bool, ...] = (False,)
    noise_matchings: tuple[bool, ...] = (False,)
    ddib_taus: tuple[float, ...] = (0.0,)  # used when single-domain DDIB models are given
    pairs: tuple[tuple[str, str], ...] | None = None  # None: every ordered pair of the model's domains
    max_views: int | None = None
    max_classifier_images: int = 200  # per domain
    classifier: ClassifierTraining = field(default_factory=ClassifierTraining)
    batch_size: int = 8
    seed: int = 0


def training_images(train_dir: str | Path, domains: Sequence[str], resolution: int, per_domain: int,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `per_domain` images of each domain from the training folder: ((N, 1, R, R) model range, labels)."""
    return sample_domain_images(scan_data_folder(train_dir, domains).records, domains, resolution, per_domain, seed)


def domain_classifier_for(out_dir: Path, train_images: torch.Tensor, train_labels: torch.Tensor,
                          domains: Sequence[str], settings: ClassifierTraining, provenance: dict,
                          log: Callable[[str], None]) -> DomainClassifier:
    """The cached classifier in out_dir when it was trained the same way, else a newly trained (and saved) one."""
    path = out_dir / CLASSIFIER_FILE
    if path.is_file():
        try:
            model, saved = load_domain_classifier(path)
            if saved == provenance:
                log(f"domain classifier: reusing {path}")
                return model
        except CheckpointError as exc:
            log(f"domain classifier: {exc}; training a new one")
    log(f"domain classifier: training on {len(train_images)} images ({settings.steps} steps)")
    model = train_domain_classifier(train_images, train_labels, domains, settings)
    save_domain_classifier(model, path, provenance)
    return model


def _batched(fn: Callable[[torch.Tensor, int], torch.Tensor], x: np.ndarray, batch_size: int) -> np.ndarray:
    """fn(batch, index of its first image) over x in batches, concatenated."""
    out = [fn(torch.from_numpy(x[i:i + batch_size, None].astype(np.float32)), i)[:, 0].double().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


class PairEvaluator:
    """Scores outputs for one (source, target) pair against the test set's aligned references."""

    def __init__(self, test: TestSet, source: str, target: str, classifier: DomainClassifier,
                 target_label: int) -> None:
        self.test, self.source, self.target = test, source, target
        self.classifier, self.target_label = classifier, target_label
        clean_target = test.clean[target]
        self.corners = [flat_patch_corners(c) for c in clean_target]
        self.target_nps = noise_power_spectrum(test.images[target], self.corners)
        _, self.target_features = classify(classifier, torch.from_numpy(test.images[target][:, None]).float())

    def score(self, outputs: np.ndarray, ranked: bool = True) -> dict[str, float]:
        """Mean structure and realism metrics of outputs (V, H, W) in the model range."""
        clean, source = self.test.clean[self.target], self.test.images[self.source]
        structure = np.array([structure_scores(o, c) for o, c in zip(outputs, clean)])
        ssim_source = np.mean([ssim(o, s) for o, s in zip(outputs, source)])
        predicted, features = classify(self.classifier, torch.from_numpy(outputs[:, None]).float())
        metrics = {"ssim_clean": float(structure[:, 0].mean()), "psnr_clean": float(structure[:, 1].mean()),
                   "ssim_source": float(ssim_source),
                   "classifier_accuracy": accuracy(predicted, torch.full_like(predicted, self.target_label)),
                   "nps_error": nps_relative_error(noise_power_spectrum(outputs, self.corners), self.target_nps)}
        if ranked:
            metrics["kid"] = kernel_inception_distance(self.target_features, features)
            metrics["coverage"] = coverage(self.target_features, features)
        return metrics


def evaluate_pair(model: VelocityUNet, info: CheckpointInfo, test: TestSet, source: str, target: str,
                  classifier: DomainClassifier, baseline_domains: dict[str, BaselineDomain],
                  settings: EvaluationSettings, measured: DomainStatistics | None = None,
                  ddib: dict[str, SingleDomainModel] | None = None) -> list[MethodResult]:
    """Every method/setting on one ordered domain pair.

    `measured` (domain statistics measured on the training data) feeds the contrast baseline; `ddib`
    (single-domain models by domain) adds DDIB rows at settings.ddib_taus.
    """
    evaluator = PairEvaluator(test, source, target, classifier, info.label_of(target))
    x = test.images[source]
    results: list[MethodResult] = []

    def add(method: str, family: str, outputs: np.ndarray, seconds: float, nfe: float,
            tau: float | None = None, guidance: float | None = None, ranked: bool = True) -> None:
        metrics = evaluator.score(outputs, ranked) | {"nfe": nfe, "seconds_per_image": seconds / len(outputs)}
        results.append(MethodResult(method, family, source, target, tau, guidance, metrics, outputs[0].copy()))

    add(ORACLE, "oracle", test.images[target], 0.0, 0, ranked=False)
    add(IDENTITY, "baseline", x.copy(), 0.0, 0)
    start = time.perf_counter()
    rng = np.random.default_rng([settings.seed, info.label_of(source), info.label_of(target)])
    outputs = np.stack([histogram_noise_baseline(image, baseline_domains[target], rng) for image in x])
    add(HISTOGRAM, "baseline", outputs, time.perf_counter() - start, 0)
    if measured is not None:
        start = time.perf_counter()
        outputs = np.stack([contrast_noise_baseline(image, source, target, measured, baseline_domains[target], rng)
                            for image in x])
        add(CONTRAST_BASELINE, "baseline", outputs, time.perf_counter() - start, 0)
        dose = statistics_dose_fraction(measured, source, target)
        if dose is not None and dose < 1.0:  # the physics method makes lower doses only
            start = time.perf_counter()
            outputs = np.stack([dose_noise_baseline(image, dose, settings.seed + k) for k, image in enumerate(x)])
            add(DOSE_BASELINE, "baseline", outputs, time.perf_counter() - start, 0)

    device = next(model.parameters()).device
    for tau in settings.ddib_taus if ddib else ():
        config = TranslationSettings(source, target, tau=tau, solver=settings.solver, steps=settings.steps,
                                     schedule=settings.schedule)
        stats = IntegrationStats()
        start = time.perf_counter()
        outputs = _batched(lambda b, _, config=config, stats=stats: translate_ddib(
            ddib[source], ddib[target], b.to(device), config, stats).cpu(), x, settings.batch_size)
        add(f"DDIB tau={tau:g}", "DDIB", outputs, time.perf_counter() - start,
            stats.nfe / _batches(len(x), settings.batch_size), tau, 1.0)

    source_labels = torch.full((1,), info.label_of(source))
    target_labels = torch.full((1,), info.label_of(target))
    for tau in settings.taus:
        config = TranslationSettings(source, target, tau=tau, solver=settings.solver, steps=settings.steps,
                                     schedule=settings.schedule)
        generator = torch.Generator().manual_seed(settings.seed)
        stats = IntegrationStats()
        start = time.perf_counter()
        outputs = _batched(lambda b, _, config=config, generator=generator, stats=stats: sdedit_batch(
            model, b.to(device), target_labels.expand(len(b)), config, generator, stats).cpu(), x, settings.batch_size)
        add(f"SDEdit tau={tau:g}", "SDEdit", outputs, time.perf_counter() - start,
            stats.nfe / _batches(len(x), settings.batch_size), tau, 1.0)
        for w, eta, transfer, matching in itertools.product(settings.guidance_scales, settings.noise_renewals,
                                                            settings.contrast_transfers, settings.noise_matchings):
            config = TranslationSettings(source, target, tau=tau, guidance_scale=w, solver=settings.solver,
                                         steps=settings.steps, schedule=settings.schedule, noise_renewal=eta,
                                         seed=settings.seed, contrast_transfer=transfer, noise_matching=matching)
            stats = IntegrationStats()
            start = time.perf_counter()
            outputs = _batched(lambda b, first, config=config, stats=stats: translate_batch(
                model, b.to(device), source_labels.expand(len(b)), target_labels.expand(len(b)),
                config.for_image(first), stats=stats, statistics=info.statistics).cpu(), x, settings.batch_size)
            passes = 1 if w == 1.0 else 2
            name = (f"MedShift tau={tau:g}" + ("" if w == 1.0 else f" w={w:g}")
                    + ("" if eta == 0 else f" noise={eta:g}") + (" contrast" if transfer else "")
                    + (" matched-noise" if matching else ""))
            add(name, "MedShift", outputs, time.perf_counter() - start,
                passes * stats.nfe / _batches(len(x), settings.batch_size), tau, w)
    return results


def _batches(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def all_pairs(domains: Sequence[str]) -> list[tuple[str, str]]:
    """Every ordered pair of distinct domains."""
    return [(s, t) for s in domains for t in domains if s != t]


def classifier_accuracy_on_test(classifier: DomainClassifier, test: TestSet, domains: Sequence[str]
                                ) -> tuple[float, np.ndarray]:
    """Accuracy (and confusion matrix) of the classifier on the untranslated held-out images of every domain."""
    images = torch.from_numpy(np.concatenate([test.images[d] for d in domains])[:, None]).float()
    expected = torch.cat([torch.full((len(test.images[d]),), i) for i, d in enumerate(domains)])
    predicted, _ = classify(classifier, images)
    return accuracy(predicted, expected), confusion_matrix(predicted, expected, len(domains))


def run_evaluation(model: VelocityUNet, info: CheckpointInfo, test_dir: str | Path, train_dir: str | Path,
                   out_dir: str | Path, settings: EvaluationSettings = EvaluationSettings(),
                   log: Callable[[str], None] = print,
                   ddib: dict[str, SingleDomainModel] | None = None) -> dict:
    """The whole protocol; writes the report into out_dir and returns the summary (see report.py).

    `ddib` (ddib.load_ddib_models) must then hold a single-domain model for every domain of the pairs.
    """
    require_evaluation_packages()
    test_dir, train_dir, out_dir = Path(test_dir), Path(train_dir), Path(out_dir)
    if test_dir.resolve() == train_dir.resolve():
        raise MedShiftError("the test folder and the training folder are the same; evaluate on held-out subjects "
                            "(e.g. `medshift simulate TEST_DIR --clean --seed <another seed>`)")
    check_held_out(test_dir, train_dir)
    domains = list(info.domains)
    pairs = list(settings.pairs) if settings.pairs else all_pairs(domains)
    for source, target in pairs:
        info.label_of(source), info.label_of(target)
        if source == target:
            raise MedShiftError(f"pair {source}->{target}: source and target must differ")
    for (source, target), tau, w, eta, transfer, matching in itertools.product(
            pairs, settings.taus, settings.guidance_scales, settings.noise_renewals, settings.contrast_transfers,
            settings.noise_matchings):
        info.validate(TranslationSettings(source, target, tau=tau, guidance_scale=w, solver=settings.solver,
                                          steps=settings.steps, schedule=settings.schedule, noise_renewal=eta,
                                          contrast_transfer=transfer, noise_matching=matching))
    if ddib:
        missing = sorted({d for pair in pairs for d in pair} - set(ddib))
        if missing:
            raise MedShiftError(f"DDIB needs a single-domain model for every domain of the evaluated pairs; missing: "
                                f"{', '.join(missing)} (give DOMAIN=CHECKPOINT for each, or no DDIB models)")
        for tau in settings.ddib_taus:
            info.validate(TranslationSettings(*pairs[0], tau=tau, solver=settings.solver, steps=settings.steps,
                                              schedule=settings.schedule))
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"test set: {test_dir}")
    test = load_test_set(test_dir, domains, info.resolution, settings.max_views)
    if len(test.names) < 3:
        raise DataFolderError(f"{test_dir}: {len(test.names)} aligned view(s); KID and coverage need at least 3")
    log(f"{len(test.names)} aligned views per domain; training data for the classifier and baseline: {train_dir}")
    train_images, train_labels = training_images(train_dir, domains, info.resolution, settings.max_classifier_images,
                                                 settings.seed)
    provenance = {"train_data": str(train_dir.resolve()), "domains": domains, "resolution": info.resolution,
                  "images": len(train_images), "settings": vars(settings.classifier)}
    classifier = domain_classifier_for(out_dir, train_images, train_labels, domains, settings.classifier,
                                       provenance, log)
    test_accuracy, confusion = classifier_accuracy_on_test(classifier, test, domains)
    log(f"domain classifier accuracy on untranslated held-out images: {test_accuracy:.3f}")
    by_domain = split_by_domain(train_images, train_labels, domains)
    measured = measure_domain_statistics(by_domain)
    baseline_domains = {d: baseline_domain([im[0].double().numpy() for im in images],
                                           nps=measured.noise_power[d] if measured.noise_power else None,
                                           level=measured.noise_level[d] if measured.noise_level else None)
                        for d, images in by_domain.items()}
    results: list[MethodResult] = []
    for k, (source, target) in enumerate(pairs):
        start = time.perf_counter()
        results += evaluate_pair(model, info, test, source, target, classifier, baseline_domains, settings, measured,
                                 ddib)
        log(f"[{k + 1}/{len(pairs)}] {source} -> {target} ({time.perf_counter() - start:.0f} s)")
    return write_report(out_dir, results, test, domains, pairs, test_accuracy, confusion, settings,
                        ddib_paths={d: str(m.path) for d, m in (ddib or {}).items()})
