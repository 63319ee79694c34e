"""Copy a training run's checkpoint into MedShift/Resources/Models/ as the bundled model.

Adds to its provenance what a user needs to know (trained on simulated data, how that data was
made, the training command) and refuses files over the 50 MB the extension allows.
Run: .venv/bin/python scripts/package_bundled_model.py RUN/best.safetensors --data-command "..." --train-command "..."
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.engine.checkpoint import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME, load_checkpoint, save_checkpoint  # noqa: E402

MAX_BYTES = 50 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-command", required=True, help="the command that made the training data")
    parser.add_argument("--train-command", required=True, help="the command that trained the model")
    parser.add_argument("--note", default="Trained on simulated skull radiographs only (medshift simulate); "
                        "train on your own data (e.g. X-DigiSkull) with `medshift train` for real images.")
    parser.add_argument("--evaluation", help="results.json of `medshift evaluate` on this checkpoint: its headline "
                        "numbers go into the metadata")
    parser.add_argument("--evaluation-command", default="", help="the command that produced --evaluation")
    args = parser.parse_args()
    model, info = load_checkpoint(args.checkpoint)
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
    out = save_checkpoint(BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME, model.state_dict(), info)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        sys.exit(f"{out}: {size / 1e6:.1f} MB is over the 50 MB limit for the bundled model")
    print(f"{out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
