"""Measure a `medshift train --simulate` model's domain statistics on a full held-out set rendered in its look.

Contrast transfer and noise matching use each domain's statistics (grey-level quantiles, band contrast, noise
power, noise level). A --simulate run measures them on its few validation views (`--validation-views`, 4 in
this session's CPU fine-tune, whose post-processed default got worse for it: docs/bundled_model.md). This
renders `--views` views (default 200: the shipped model's statistics came from 200 images per domain of a
216-view folder) with the run's own simulation options, recorded in the checkpoint: the same CTs, share of
phantoms, view kinds, pitches and look; of its held-out seed (training seed + VALIDATION_SEED_OFFSET, whose
first views are the run's validation views; never trained on), and measures the statistics on them.
scripts/package_bundled_model.py calls it (--statistics-views) for the bundled model.

Run: .venv/bin/python scripts/held_out_statistics.py MODEL --out STATS.json [--views 200] [--workers N] [--ct CT ...]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import CheckpointInfo, provenance_section, read_checkpoint_info  # noqa: E402
from MedShiftLib.engine.domain_statistics import DomainStatistics, split_by_domain, write_statistics  # noqa: E402
from MedShiftLib.errors import MedShiftError  # noqa: E402
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics  # noqa: E402
from MedShiftLib.simulator.look_fingerprint import LOOK_FINGERPRINT_KEY, look_fingerprint  # noqa: E402
from MedShiftLib.simulator.model_look import trained_look, warn_if_look_changed  # noqa: E402
from MedShiftLib.simulator.training_views import (  # noqa: E402
    VALIDATION_SEED_OFFSET,
    SimulationOptions,
    render_views,
    working_squares,
)

DEFAULT_VIEWS = 200


def held_out_statistics(info: CheckpointInfo, views: int = DEFAULT_VIEWS, workers: int = 0,
                        ct_paths: list[str] | None = None, device: str | None = None) -> tuple[DomainStatistics, dict]:
    """(statistics, provenance) measured on `views` held-out views of the model's --simulate options (`ct_paths`:
    the prepared CTs when they are no longer where the run read them), rendered here or by `workers` processes,
    their band contrast measured on `device` (default: `measurement_device`)."""
    record = provenance_section(info, "simulate")
    if not record:
        raise MedShiftError("the model records no `medshift train --simulate` options, so its held-out views "
                            "cannot be rendered; measure its statistics on its training folder with "
                            "`medshift domain-contrast --model MODEL --data DATA_DIR`")
    if views < 1:
        raise MedShiftError(f"--views must be at least 1, got {views}")
    try:
        options = SimulationOptions.from_dict(record)
    except (TypeError, ValueError) as exc:
        raise MedShiftError(f"the model's recorded --simulate options cannot be read ({exc}); re-package the "
                            "model, or measure its statistics with `medshift domain-contrast`") from None
    warn_if_look_changed(info)  # the views are rendered in the present version of the look
    options = replace(options, ct_paths=tuple(ct_paths) if ct_paths else options.ct_paths,
                      look=trained_look(info) or options.look)
    missing = [path for path in options.ct_paths if not Path(path).is_file()]
    if missing:
        raise MedShiftError(f"{missing[0]}: a CT the model was trained on is not there; give the prepared CTs "
                            "(.hu.npz) with --ct")
    seed = provenance_section(info, "config").get("seed", 0)
    if not isinstance(seed, int):
        raise MedShiftError(f"the model's recorded training seed {seed!r:.60} is not a whole number; "
                            "re-package the model")
    seed += VALIDATION_SEED_OFFSET
    images, labels = working_squares(render_views(options, seed, views, workers), info.resolution)
    statistics = measure_domain_statistics(split_by_domain(images, labels, options.domains),
                                           device=device or measurement_device(info))
    provenance = {"simulated": options.to_dict(), LOOK_FINGERPRINT_KEY: look_fingerprint(options.look), "seed": seed,
                  "views": views, "images_per_domain": views, "resolution": info.resolution,
                  "measured_by": "scripts/held_out_statistics.py: held-out views rendered with the run's options"}
    return statistics, provenance


def measurement_device(info: CheckpointInfo) -> str:
    """"cuda" when the run trained on CUDA (or chose its device itself) and CUDA is here, else "cpu"."""
    import torch

    trained_on = str(provenance_section(info, "config").get("device", "cpu"))
    wants_cuda = trained_on == "auto" or trained_on.startswith("cuda")
    return "cuda" if wants_cuda and torch.cuda.is_available() else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True, help="the statistics file to write (e.g. MODEL_STEM.stats.json "
                        "beside a copy of the model)")
    parser.add_argument("--views", type=int, default=DEFAULT_VIEWS, help="held-out views (x the model's domains)")
    parser.add_argument("--workers", type=int, default=0, help="processes rendering the views (0: this one)")
    parser.add_argument("--ct", action="append", help="the prepared CTs (default: the paths the run recorded)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    args = parser.parse_args()
    if Path(args.out).exists() and not args.overwrite:
        sys.exit(f"held_out_statistics.py: error: {args.out} exists; pass --overwrite to replace it")
    try:
        info = read_checkpoint_info(args.model)
        statistics, provenance = held_out_statistics(info, args.views, args.workers, args.ct)
    except MedShiftError as error:
        sys.exit(f"held_out_statistics.py: error: {error}")
    print(write_statistics(args.out, statistics, info.domains, provenance))


if __name__ == "__main__":
    main()
