"""The one-shot GPU retrain's two CPU costs: varied subjects of a full-resolution CT, and the domain statistics.

Prints two Markdown tables: the wall and process CPU seconds of one varied subject (`vary_hounsfield`) and of one
256 px training view in the recipe's options (mixed views, `film` look, 4 views per subject, so a quarter of a
subject per view) for each prepared CT; and of `measure_domain_statistics` on IMAGES synthetic images per domain
(five domains, SIZE px: its cost does not depend on what the images show). Single-threaded by default, like
each of the recipe's rendering processes. Run from the repository root (a tree of another commit measures that
commit: copy this file into its benchmarks/):
    python benchmarks/benchmark_retrain_feed.py --ct runs/training_cts/visible_human_head_ct.hu.npz
        [--ct ...] [--subjects 3] [--views 8] [--images 200] [--size 256] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics  # noqa: E402
from MedShiftLib.simulator.anatomical_variation import draw_variation, vary_hounsfield  # noqa: E402
from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS  # noqa: E402
from MedShiftLib.simulator.subjects import read_prepared_ct  # noqa: E402
from MedShiftLib.simulator.training_views import SimulationOptions, ViewRenderer  # noqa: E402


def timed(function, *args, **kwargs):
    """(result, wall s, CPU s) of a call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def synthetic_domains(count: int, size: int) -> dict[str, torch.Tensor]:
    """`count` images per simulator domain: blurred noise at a few scales plus fine noise, in [-1, 1]."""
    generator, images = torch.Generator().manual_seed(0), {}
    for k, domain in enumerate(SIMULATOR_DOMAINS):
        noise = torch.rand(count, 1, size, size, generator=generator) * 2 - 1
        smooth = torch.nn.functional.avg_pool2d(noise, 9, 1, 4) * (1 + k / 3)
        images[domain] = (smooth + 0.03 * (k + 1) * torch.randn(count, 1, size, size, generator=generator)).clamp(-1, 1)
    return images


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, action="append", default=[], help="a prepared CT (.hu.npz)")
    parser.add_argument("--subjects", type=int, default=3, help="varied subjects timed per CT")
    parser.add_argument("--views", type=int, default=8, help="training views timed per CT (0: none)")
    parser.add_argument("--images", type=int, default=200, help="images per domain for the statistics (0: none)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None, help="where measure_domain_statistics measures (where supported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    if args.ct:
        print("| CT | voxels (x, y, z) | spacing mm | varied subject s (CPU s) | 256 px view s (CPU s) |")
        print("|---|---|---|---|---|")
    for path in args.ct:
        hu, spacing = read_prepared_ct(path)
        subject = [timed(vary_hounsfield, hu, spacing, draw_variation(np.random.default_rng(k)))[1:]
                   for k in range(args.subjects)]
        options = SimulationOptions(size=args.size, ct_paths=(str(path),), views="mixed", look="film",
                                    views_per_subject=4)
        view = ("-", "-")
        if args.views:
            _, wall, cpu = timed(ViewRenderer(options, seed=0).render, 0, args.views)
            view = (f"{wall / args.views:.2f}", f"{cpu / args.views:.2f}")
        wall, cpu = np.mean(subject, axis=0)
        print(f"| {path.name} | {' x '.join(str(n) for n in hu.shape[::-1])} | "
              f"{' x '.join(f'{s:g}' for s in spacing)} | {wall:.2f} ({cpu:.2f}) | {view[0]} ({view[1]}) |")
    if args.images:
        images = synthetic_domains(args.images, args.size)
        kwargs = {"device": args.device} if args.device else {}
        _, wall, cpu = timed(measure_domain_statistics, images, **kwargs)
        print(f"\n| domain statistics | images | s (CPU s) |\n|---|---|---|\n"
              f"| {len(images)} domains x {args.images} | {args.size} px | {wall:.1f} ({cpu:.1f}) |")


if __name__ == "__main__":
    main()
