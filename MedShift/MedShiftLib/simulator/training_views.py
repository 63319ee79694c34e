"""Training data rendered on the fly (`medshift train --simulate`): no data folder, no file written or read per step.

Rendering a view (projection and five domain renderings) costs 2-4 s on one core of the shared
development CPU (256 px, 2026-12-03, `benchmarks/benchmark_training.py --simulate`), while a whole
training step of 16 such images took 48 ms on an H200 (docs/benchmarks.md, synthetic batches):
rendering every step's images afresh would leave the trainer waiting. So views are rendered into a
*pool*: pool k holds views k*P .. (k+1)*P - 1 of the simulated data set (subject = view id // views
per subject, each subject a phantom or a varied CT as in `medshift simulate`), all five domains of
each, normalised as the data folder's images are; it serves `pool_refresh` steps, then pool k+1
replaces it. Each step draws its batch from the pool on the training device: a (view, domain) pair
per image, a random square crop of 0.6-1.0 of the side resized to the working resolution and a
random left-right flip (grid_sample; the same augmentation as a data folder's crops, plus the
mirror), all from a generator seeded by (seed, step). With `render_workers` > 0 the pools are
rendered by that many processes, the next one while the current one trains.

Everything derives from (seed, view id) and (seed, step): a run is reproducible and `--resume` continues
exactly (the pool of the resumed step is rendered again). Validation uses a fixed held-out set: the
first `validation_views` views of seed + VALIDATION_SEED_OFFSET, centre squares, never flipped; the
domain statistics of the checkpoints are measured on them. Only torch, numpy and scipy are imported on
this path (attenuation from the committed table, CTs prepared as .npz or read once per process).
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.domain_statistics import split_by_domain
from ..engine.intensity import fit_intensity_window, normalize
from ..errors import MedShiftError
from .cone_beam_projector import ConeBeamProjector
from .domain_rendering import to_uint16
from .domain_styles import DEFAULT_LOOK, LOOKS, check_look
from .domains import SIMULATOR_DOMAINS
from .look_fingerprint import LOOK_FINGERPRINT_KEY, look_fingerprint
from .simulation import render_view, subject_source
from .subjects import SubjectSource
from .views import VIEW_KINDS, ViewOptions

VALIDATION_SEED_OFFSET = 1_000_003
CROP_SCALE = (0.6, 1.0)
SAMPLE_IMAGES = 4


@dataclass(frozen=True)
class SimulationOptions:
    """What `--simulate` renders (recorded in the run's configuration; --resume needs the same)."""

    size: int = 256
    ct_paths: tuple[str, ...] = ()
    phantoms_fraction: float = 0.0
    views: str = "c-arm"
    pixel_spacings_mm: tuple[float, ...] | None = None
    look: str = DEFAULT_LOOK
    vary_anatomy: bool = True
    views_per_subject: int = 4
    pool_views: int = 64
    pool_refresh: int = 25
    validation_views: int = 8
    render_workers: int = 0
    domains: tuple[str, ...] = field(default=SIMULATOR_DOMAINS)

    def check(self, resolution: int) -> None:
        """MedShiftError for options that cannot work with a working resolution."""
        if self.size < resolution:
            raise MedShiftError(f"--size {self.size} is smaller than --resolution {resolution}; render at least the "
                                "working resolution")
        for name in ("views_per_subject", "pool_views", "pool_refresh", "validation_views"):
            if getattr(self, name) < 1:
                raise MedShiftError(f"--{name.replace('_', '-')} must be at least 1")
        if self.render_workers < 0:
            raise MedShiftError("--render-workers must be 0 (render in this process) or more")
        unknown = sorted(set(self.domains) - set(SIMULATOR_DOMAINS))
        if unknown or len(self.domains) < 1:
            raise MedShiftError(f"--domains: the simulator renders {', '.join(SIMULATOR_DOMAINS)}; not "
                                f"{', '.join(unknown) or 'none'}")
        check_look(self.look)
        ViewOptions(self.views, self.pixel_spacings_mm)  # refuses a bad view kind or pitch

    def to_dict(self) -> dict:
        """JSON-ready (lists for tuples), as the run's configuration stores it; `render_workers` left out."""
        record = asdict(self)
        record.pop("render_workers")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}

    @classmethod
    def from_dict(cls, record: dict, render_workers: int = 0) -> SimulationOptions:
        """Options from `to_dict`."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
        return cls(**values, render_workers=render_workers)


def add_simulation_arguments(p: argparse.ArgumentParser) -> None:
    """The `--simulate` options of `medshift train` (simulate's names where they mean the same)."""
    d = SimulationOptions()
    g = p.add_argument_group("training on images rendered on the fly (--simulate)")
    g.add_argument("--simulate", action="store_true", help="render the training images while training (no DATA_DIR)")
    g.add_argument("--size", type=int, help="detector size in pixels (default: --resolution); larger: random crops")
    g.add_argument("--ct", action="append", metavar="CT", help="a head CT (.npz from scripts/prepare_training_ct.py, "
                   "or any CT `medshift simulate` reads); repeat for several")
    g.add_argument("--phantoms-fraction", type=float, default=d.phantoms_fraction,
                   help="with --ct: share of the subjects that are procedural phantoms")
    g.add_argument("--no-anatomy-variation", action="store_true", help="with --ct: every subject is the CT as it is")
    g.add_argument("--views", choices=VIEW_KINDS, default=d.views, help="view kinds, as `medshift simulate --views`")
    g.add_argument("--pixel-pitch-mm", type=float, nargs="+", metavar="MM", help="detector pitch(es); one drawn "
                   "per view")
    g.add_argument("--look", choices=LOOKS, default=d.look, help="the simulator's look")
    g.add_argument("--views-per-subject", type=int, default=d.views_per_subject, help="views of each subject")
    g.add_argument("--pool-views", type=int, default=d.pool_views, help="views (x 5 domains) rendered per pool")
    g.add_argument("--pool-refresh", type=int, default=d.pool_refresh, help="steps each pool serves")
    g.add_argument("--validation-views", type=int, default=d.validation_views,
                   help="held-out views (x 5 domains) for validation and the domain statistics")
    g.add_argument("--render-workers", type=int, default=d.render_workers,
                   help="processes rendering the pools (0: this process, between steps)")


def options_from_arguments(args: argparse.Namespace) -> SimulationOptions | None:
    """SimulationOptions of parsed `medshift train --simulate` options (None without --simulate)."""
    if not getattr(args, "simulate", False):
        return None
    return SimulationOptions(
        size=args.size or args.resolution, ct_paths=tuple(args.ct or ()), phantoms_fraction=args.phantoms_fraction,
        views=args.views, pixel_spacings_mm=tuple(args.pixel_pitch_mm) if args.pixel_pitch_mm else None,
        look=args.look, vary_anatomy=not args.no_anatomy_variation, views_per_subject=args.views_per_subject,
        pool_views=args.pool_views, pool_refresh=args.pool_refresh, validation_views=args.validation_views,
        render_workers=args.render_workers, domains=tuple(args.domains or SIMULATOR_DOMAINS))


class ViewRenderer:
    """Renders views of one seed's simulated data set, normalised: (domains, size, size) float32 each."""

    def __init__(self, options: SimulationOptions, seed: int, device: str = "cpu") -> None:
        self.options, self.seed, self.device = options, seed, device
        self.views = ViewOptions(options.views, options.pixel_spacings_mm)
        self.source: SubjectSource = subject_source(seed, options.size, self.views, options.ct_paths,
                                                    phantoms_fraction=options.phantoms_fraction,
                                                    vary_anatomy=options.vary_anatomy, device=device)
        self.source.load_all()

    def render(self, first: int, count: int) -> np.ndarray:
        """Views first .. first + count - 1: (count, domains, size, size), each subject made once."""
        options, out = self.options, []
        projector, current = None, None
        for view_id in range(first, first + count):
            subject, view = divmod(view_id, options.views_per_subject)
            if subject != current:
                projector = ConeBeamProjector(self.source.subject(subject).volume, device=self.device)
                current = subject
            _, geometry = self.views.geometry(self.seed, subject, view, options.size)
            rendered = render_view(projector, geometry, self.seed, subject, view, options.domains, clean=False,
                                   look=options.look)
            out.append(np.stack([normalised(rendered.images[d]) for d in options.domains]))
        return np.stack(out)


def render_views(options: SimulationOptions, seed: int, count: int, workers: int = 0) -> np.ndarray:
    """Views 0 .. count - 1 of `seed`'s simulated data set, normalised: (count, domains, size, size), rendered here
    (workers 0) or shared out among `workers` processes (the same numbers either way)."""
    if workers == 0:
        return ViewRenderer(options, seed).render(0, count)
    with rendering_processes(options, workers) as executor:
        return gathered(submit_views(executor, workers, seed, 0, count))


def working_squares(views: np.ndarray, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered views (V, domains, size, size) as images (V * domains, 1, resolution, resolution) and their
    domain labels (index in the domains), view by view."""
    count, domains, size = views.shape[:3]
    squares = torch.from_numpy(views).reshape(-1, 1, size, size)
    if size != resolution:
        squares = F.interpolate(squares, size=(resolution, resolution), mode="bilinear", antialias=True,
                                align_corners=False)
    return squares, torch.arange(domains).repeat(count)


def normalised(image: np.ndarray) -> np.ndarray:
    """A [0, 1] rendering as a data folder's PNG of it reads: 16-bit, then the robust window to [-1, 1]."""
    stored = to_uint16(image)
    return normalize(stored, fit_intensity_window(stored, "MONOCHROME2")).astype(np.float32)


def rendering_processes(options: SimulationOptions, workers: int) -> ProcessPoolExecutor:
    """`workers` spawned processes that render views of `options` (one thread each; see submit_views)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(options,))


def submit_views(executor: ProcessPoolExecutor, workers: int, seed: int, first: int, count: int) -> list[Future]:
    """Views first .. first + count - 1 of `seed`, shared out in `workers` chunks among the rendering processes."""
    share = math.ceil(count / workers)
    return [executor.submit(_render_in_worker, seed, first + start, min(share, count - start))
            for start in range(0, count, share)]


def gathered(chunks: list[Future]) -> np.ndarray:
    """The views of `submit_views`'s chunks, in order: (count, domains, size, size)."""
    return np.concatenate([chunk.result() for chunk in chunks])


_WORKER_OPTIONS: SimulationOptions | None = None
_WORKER_RENDERERS: dict[int, ViewRenderer] = {}


def _start_worker(options: SimulationOptions) -> None:
    global _WORKER_OPTIONS
    torch.set_num_threads(1)
    _WORKER_OPTIONS = options


def _render_in_worker(seed: int, first: int, count: int) -> np.ndarray:
    if seed not in _WORKER_RENDERERS:  # the training seed and the held-out one: each CT read once per seed
        _WORKER_RENDERERS[seed] = ViewRenderer(_WORKER_OPTIONS, seed)
    return _WORKER_RENDERERS[seed].render(first, count)


def crop_and_flip(images: torch.Tensor, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """Random squares of CROP_SCALE of the side, resized to `resolution`, half of them mirrored left-right.

    images (B, size, size) -> (B, 1, resolution, resolution); bilinear (grid_sample), on images' device."""
    b = images.shape[0]
    device = generator.device
    scale = torch.empty(b, device=device).uniform_(*CROP_SCALE, generator=generator)
    centre = (torch.rand(b, 2, device=device, generator=generator) * 2 - 1) * (1 - scale)[:, None]
    flip = torch.where(torch.rand(b, device=device, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = centre
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, [b, 1, resolution, resolution], align_corners=False)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)


def batch_generator(seed: int, step: int, device: torch.device | str) -> torch.Generator:
    """The generator of step `step`'s image choice and augmentation (apart from the loss's)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + 7919 * step + 2)


class SimulatedData:
    """A run's training data rendered on the fly (see the module docstring; the interface of folder_data.py)."""

    def __init__(self, options: SimulationOptions, resolution: int, batch_size: int, seed: int,
                 device: torch.device, rank: int = 0, world_size: int = 1) -> None:
        options.check(resolution)
        self.options, self.resolution, self.batch_size, self.seed = options, resolution, batch_size, seed
        self.device, self.rank, self.world_size = torch.device(device), rank, world_size
        self.domains = list(options.domains)
        render_device = "cuda" if self.device.type == "cuda" and options.render_workers == 0 else "cpu"
        self.renderer = ViewRenderer(options, seed, render_device)
        self._pool_index, self._pool = -1, None
        self._pending: dict[int, Future] = {}
        self._executor = rendering_processes(options, options.render_workers) if options.render_workers else None
        held_out = seed + VALIDATION_SEED_OFFSET
        if self._executor is None:
            validation = ViewRenderer(options, held_out).render(0, options.validation_views)
        else:  # rendered by the workers, with the first pool
            chunks = self._submit(held_out, 0, options.validation_views)
            self._pending = {0: self._submit(seed, 0, options.pool_views)}
            validation = gathered(chunks)
        self.validation_images, self.validation_labels = working_squares(validation, resolution)

    @property
    def validation_size(self) -> int:
        """Held-out images (views x domains)."""
        return len(self.validation_images)

    def _render_pool(self, index: int) -> np.ndarray:
        count = self.options.pool_views
        if self._executor is None:
            return self.renderer.render(index * count, count)
        chunks = self._pending.pop(index, None)
        if chunks is None:  # e.g. resumed in a later pool: what was started for another pool is not needed
            for stale in self._pending.values():
                for chunk in stale:
                    chunk.cancel()
            self._pending = {}
            chunks = self._submit(self.seed, index * count, count)
        return gathered(chunks)

    def _submit(self, seed: int, first: int, count: int) -> list[Future]:
        """Views first .. first + count - 1 of `seed`, shared out among the rendering processes."""
        return submit_views(self._executor, self.options.render_workers, seed, first, count)

    def pool(self, index: int) -> torch.Tensor:
        """Pool `index` on the training device: (pool_views, domains, size, size); the next one started."""
        if index != self._pool_index:
            self._pool = torch.from_numpy(self._render_pool(index)).to(self.device)
            self._pool_index = index
            if self._executor is not None and index + 1 not in self._pending:
                count = self.options.pool_views
                self._pending = {index + 1: self._submit(self.seed, (index + 1) * count, count)}
        return self._pool

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of step `step`'s batch: (B/world, 1, R, R) on the device, and labels."""
        pool = self.pool(step // self.options.pool_refresh)
        generator = batch_generator(self.seed, step, self.device)
        view = torch.randint(pool.shape[0], (self.batch_size,), device=self.device, generator=generator)
        label = torch.randint(pool.shape[1], (self.batch_size,), device=self.device, generator=generator)
        images = crop_and_flip(pool[view, label], self.resolution, generator)
        share = self.batch_size // self.world_size
        part = slice(self.rank * share, (self.rank + 1) * share)
        return images[part], label[part]

    def batches(self, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of steps start_step, start_step + 1, ..."""
        step = start_step
        while True:
            yield self.batch(step)
            step += 1

    def validation_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out images in batches."""
        return [(self.validation_images[i:i + self.batch_size], self.validation_labels[i:i + self.batch_size])
                for i in range(0, self.validation_size, self.batch_size)]

    def sample_batch(self) -> tuple[torch.Tensor, list[int]]:
        """The first SAMPLE_IMAGES held-out images (consecutive domains of the first views)."""
        count = min(SAMPLE_IMAGES, self.validation_size)
        return self.validation_images[:count], self.validation_labels[:count].tolist()

    def statistics_images(self) -> dict[str, torch.Tensor]:
        """The held-out images of each domain (for the checkpoints' domain statistics)."""
        return split_by_domain(self.validation_images, self.validation_labels, self.domains)

    def statistics_provenance(self) -> dict:
        """What the checkpoint records about the images its domain statistics were measured on."""
        return {"simulated": self.options.to_dict(), "images_per_domain": self.validation_size
                // max(len(self.domains), 1)}

    def working_pixel_spacing(self) -> float | None:
        """The working grid's pixel spacing (mm) when every view has one pitch: pitch * size / resolution."""
        pitches = set(self.options.pixel_spacings_mm or (self.renderer.views.smallest_spacing(self.options.size),))
        return float(pitches.pop()) * self.options.size / self.resolution if len(pitches) == 1 else None

    def provenance(self) -> dict:
        """The simulation options (no data folder), the look the model learns among them and its version
        (simulator/model_look.py)."""
        return {"simulate": self.options.to_dict(), LOOK_FINGERPRINT_KEY: look_fingerprint(self.options.look),
                "train_images": "rendered on the fly", "validation_images": self.validation_size}

    def close(self) -> None:
        """Stop the rendering processes."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def simulated_data(options: SimulationOptions):
    """The data factory of `training.run.train` for `options` (one SimulatedData per training process)."""
    def build(config, place, device: torch.device) -> SimulatedData:
        return SimulatedData(options, config.resolution, config.batch_size, config.seed, device, place.rank,
                             place.world_size)
    return build
