"""MedShiftTraining: hidden module that trains a MedShift checkpoint with MedShiftLib's trainer.

No panel: run it headless with the same options as `medshift train` (DATA_DIR is spelled --data here):

    Slicer --no-splash --no-main-window --python-script MedShiftTraining/MedShiftTraining.py -- \\
        --data DATA_DIR --out RUN_DIR [--resolution 256 --preset default --steps 2000 --coupling ot ...]

or from the Python console (the module has no panel, so slicer.util.getModuleLogic cannot reach its logic;
create it directly):

    import MedShiftTraining
    MedShiftTraining.MedShiftTrainingLogic().train("DATA_DIR", "RUN_DIR", steps=500)

Run as a script it always ends Slicer with an exit code (0 done, 2 a usage or data problem, 130
interrupted, 1 anything unexpected, with its traceback): `--python-script` alone never quits Slicer.
"""
import logging
import os
import sys
import traceback

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleLogic


def _ensureMedShiftLibImportable() -> None:
    """Run as a script from a source checkout, MedShiftLib sits in ../MedShift; installed, it is on sys.path."""
    try:
        import MedShiftLib  # noqa: F401
    except ModuleNotFoundError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "MedShift"))


class MedShiftTraining(ScriptedLoadableModule):
    """Hidden module: trains MedShift checkpoints headless (no widget, hence no panel)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedShift Training")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = ["MedShift"]
        self.parent.contributors = ["MedShift contributors"]
        self.parent.helpText = _("""
Trains a MedShift flow-matching checkpoint on a data folder with one sub-folder per domain. Run headless:
Slicer --no-main-window --python-script MedShiftTraining.py -- --data DATA_DIR --out RUN_DIR
(the other options are those of `medshift train`).
""")
        self.parent.acknowledgementText = _("""
MedShift follows Caetano, Viviers et al., ICCV 2025 workshops (arXiv 2508.21435).
""")
        self.parent.hidden = True
        # No widget: Slicer creates no panel, and slicer.util.getModuleLogic cannot reach the logic (create
        # MedShiftTrainingLogic directly).
        self.parent.widgetRepresentationCreationEnabled = False


class MedShiftTrainingLogic(ScriptedLoadableModuleLogic):
    """Builds a TrainingConfig and calls MedShiftLib.training.run.train (the code `medshift train` runs)."""

    def train(self, dataDir, outDir, progress=True, **options):
        """Train (or resume, resume=True) on dataDir into outDir; returns the path of the best checkpoint.

        options are TrainingConfig fields: resolution, preset, batch_size, steps, learning_rate, coupling,
        device, seed, ... (see MedShiftLib.training.config.TrainingConfig)."""
        _ensureMedShiftLibImportable()
        from MedShiftLib.training.config import TrainingConfig
        from MedShiftLib.training.run import train
        return train(TrainingConfig(data_dir=str(dataDir), out_dir=str(outDir), **options), progress=progress)

    @staticmethod
    def argumentsWithDataOption(argv):
        """`--data DIR` (this module's spelling) turned into the DATA_DIR positional of `medshift train`."""
        argv = list(argv)
        if argv[:1] == ["--"]:
            argv = argv[1:]
        result, i = [], 0
        while i < len(argv):
            if argv[i] == "--data" and i + 1 < len(argv):
                result.append(argv[i + 1])
                i += 2
                continue
            if argv[i].startswith("--data="):
                result.append(argv[i][len("--data="):])
            else:
                result.append(argv[i])
            i += 1
        return result

    def trainFromArguments(self, argv) -> int:
        """Parse `medshift train` options (with --data DIR) and train; returns the process exit code."""
        import argparse

        _ensureMedShiftLibImportable()
        from MedShiftLib.errors import MedShiftError
        from MedShiftLib.training.config import add_training_arguments
        from MedShiftLib.training.run import train_from_arguments

        parser = argparse.ArgumentParser(
            prog="MedShiftTraining.py", description="Train a MedShift checkpoint (same options as `medshift train`; "
                                                    "DATA_DIR may be given as --data DIR).")
        add_training_arguments(parser)
        try:
            args = parser.parse_args(self.argumentsWithDataOption(argv))
        except SystemExit as exc:  # --help or a usage error: argparse has printed the message
            return int(exc.code or 0)
        try:
            best = train_from_arguments(args)
        except MedShiftError as exc:
            print(f"MedShiftTraining: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("MedShiftTraining: interrupted", file=sys.stderr)
            return 130
        print(best)
        return 0


def main(argv=None) -> int:
    """Entry point of `Slicer --python-script MedShiftTraining.py -- ...`; every failure becomes an exit code."""
    logging.getLogger().setLevel(logging.INFO)
    try:
        return MedShiftTrainingLogic().trainFromArguments(sys.argv[1:] if argv is None else argv)
    except Exception:  # e.g. torch or POT missing: report it and still end Slicer
        traceback.print_exc()
        print("MedShiftTraining: error: training stopped by an unexpected error (traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    exitCode = main()
    if hasattr(slicer, "app") and slicer.app is not None:
        slicer.util.exit(exitCode)
    sys.exit(exitCode)
