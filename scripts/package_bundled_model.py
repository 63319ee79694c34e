"""Copy a training run's checkpoint into MedShift/Resources/Models/ as the bundled model, in half precision (or int8).

Adds to its provenance what a user needs to know (trained on simulated data, how that data was
made, the training command) and refuses files over the 50 MB the extension allows. The weights are
stored as float16 (about 11 MB; loading upcasts them to float32, docs/bundled_model.md); training
runs keep float32 for --resume. `--half-only` stores a checkpoint in float16 with its metadata unchanged.
`--weights int8` stores the large weights in int8 with a scale per output channel instead (about 6 MB;
docs/bundled_model.md, "Int8 weights", has what that changes).
`--statistics-views N` measures the domain statistics again on N held-out views of a --simulate run, rendered
in its look with its options (scripts/held_out_statistics.py; the run's own come from its few validation views).
Run: .venv/bin/python scripts/package_bundled_model.py RUN/best.safetensors --data-command "..." --train-command "..."
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from held_out_statistics import held_out_statistics  # noqa: E402  (beside this script)

from MedShiftLib.engine.checkpoint import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME, load_checkpoint, save_checkpoint  # noqa: E402
from MedShiftLib.errors import MedShiftError  # noqa: E402

MAX_BYTES = 50 * 1024 * 1024
WEIGHT_TYPES = {"float16": torch.float16, "int8": torch.int8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default=str(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME), help="where to write it "
                        "(default: the bundled model)")
    parser.add_argument("--half-only", action="store_true", help="only store the weights in float16 (or --weights): "
                        "metadata and statistics as they are")
    parser.add_argument("--weights", choices=WEIGHT_TYPES, default="float16", help="how the weights are stored: "
                        "float16 (default, 11 MB) or int8 with a scale per output channel (6 MB)")
    parser.add_argument("--data-command", default="", help="the command that made the training data")
    parser.add_argument("--train-command", default="", help="the command that trained the model")
    parser.add_argument("--note", default="Trained on simulated skull radiographs only (medshift simulate); "
                        "train on your own data (e.g. X-DigiSkull) with `medshift train` for real images.")
    parser.add_argument("--evaluation", help="results.json of `medshift evaluate` on this checkpoint: its headline "
                        "numbers go into the metadata")
    parser.add_argument("--evaluation-command", default="", help="the command that produced --evaluation")
    parser.add_argument("--statistics-views", type=int, default=0, help="measure the domain statistics again on "
                        "this many held-out views rendered with the --simulate run's options (200: as many images "
                        "per domain as the shipped model's; 0: keep the run's)")
    parser.add_argument("--statistics-workers", type=int, default=0, help="processes rendering those views")
    args = parser.parse_args()
    if args.half_only and args.statistics_views:
        parser.error("--half-only keeps the statistics as they are: leave out --statistics-views, or --half-only")
    model, info = load_checkpoint(args.checkpoint)
    if not args.half_only and not (args.data_command and args.train_command):
        parser.error("--data-command and --train-command are required (or --half-only)")
    if not args.half_only:
        describe(info, args)
    if args.statistics_views:
        try:
            info.statistics, info.statistics_provenance = held_out_statistics(info, args.statistics_views,
                                                                              args.statistics_workers)
        except MedShiftError as error:
            sys.exit(f"package_bundled_model.py: error: {error}")
    out = save_checkpoint(args.out, model.state_dict(), info, weights_dtype=WEIGHT_TYPES[args.weights])
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        sys.exit(f"{out}: {size / 1e6:.1f} MB is over the 50 MB limit for the bundled model")
    print(f"{out} ({size / 1e6:.1f} MB, {args.weights} weights)")


def describe(info, args: argparse.Namespace) -> None:
    """Provenance a user of the bundled model needs: what it was trained on, the commands, the evaluation."""
    info.provenance = info.provenance | {"trained_on": "simulated data", "data_command": args.data_command,
                                         "train_command": args.train_command, "note": args.note}
    info.provenance["config"] = {k: v for k, v in info.provenance.get("config", {}).items()
                                 if k not in ("data_dir", "out_dir")}
    info.provenance.pop("data_dir", None)
    if args.evaluation:
        record = json.loads(Path(args.evaluation).read_text())
        headline = {"command": args.evaluation_command, "views": record["views"],
                    "classifier_accuracy_untranslated": record["classifier_accuracy_untranslated"]}
        for scope in ("summary", "goal_pair"):
            headline[scope] = {method: {k: v for k, v in values.items() if k != "family"}
                               for method, values in record[scope].items()
                               if method.startswith("MedShift tau=") and " w=" not in method or "oracle" in method}
        info.provenance["evaluation"] = headline


if __name__ == "__main__":
    main()
