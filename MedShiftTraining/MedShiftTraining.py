"""MedShiftTraining: trains a MedShift checkpoint with MedShiftLib's trainer.

Headless, with the same options as `medshift train` (DATA_DIR is spelled --data here); on a Linux server
without a display, put `xvfb-run -a` in front (Slicer's application is a QApplication and needs a display
even with --no-main-window). In an installed extension the script is at
`slicer.modules.medshifttraining.path`; in a source checkout at MedShiftTraining/MedShiftTraining.py:

    xvfb-run -a Slicer --no-splash --no-main-window --python-script SCRIPT -- \\
        --data DATA_DIR --out RUN_DIR [--resolution 256 --preset default --steps 2000 --coupling ot ...]

From the Python console (the module's small panel creates the logic, so getModuleLogic reaches it):

    logic = slicer.util.getModuleLogic("MedShiftTraining")
    logic.train("DATA_DIR", "RUN_DIR", steps=500)   # blocks Slicer until done

The panel (Modules > Filtering > MedShift Training) shows this usage and trains in a PythonSlicer worker
(`medshift train`, the code the headless run calls), so Slicer stays responsive; Stop ends the worker and
a later Train with "Resume" continues from its last save.

Run as a script it always ends Slicer with an exit code (0 done, 2 a usage or data problem, 130
interrupted, 1 anything unexpected, with its traceback): `--python-script` alone never quits Slicer.
"""
import logging
import os
import sys
import traceback

import qt
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)


def _ensureMedShiftLibImportable() -> None:
    """Run as a script from a source checkout, MedShiftLib sits in ../MedShift; installed, it is on sys.path."""
    try:
        import MedShiftLib  # noqa: F401
    except ModuleNotFoundError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "MedShift"))


class MedShiftTraining(ScriptedLoadableModule):
    """Trains MedShift checkpoints: headless (--no-main-window --python-script), from the console or its panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedShift Training")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = ["MedShift"]
        self.parent.contributors = ["MedShift contributors"]
        self.parent.helpText = _("""
Trains a MedShift flow-matching checkpoint on a data folder with one sub-folder per domain. The panel trains
in a background process; for long runs use a server, headless:
Slicer --no-main-window --python-script SCRIPT -- --data DATA_DIR --out RUN_DIR
where SCRIPT is slicer.modules.medshifttraining.path (put xvfb-run -a in front on a Linux server without a
display; the other options are those of `medshift train`).
""")
        self.parent.acknowledgementText = _("""
MedShift follows Caetano, Viviers et al., ICCV 2025 workshops (arXiv 2508.21435).
""")


def usageText() -> str:
    """The panel's usage: the headless command with this installation's script path, and the console call."""
    module = getattr(getattr(slicer, "modules", None), "medshifttraining", None)
    script = getattr(module, "path", None) or os.path.abspath(__file__)
    return _("Data folder: one sub-folder of images per domain. Train runs `medshift train` in a background "
             "process; Stop ends it, and Train with Resume continues from its last save.\n\n"
             "Headless (on a Linux server without a display put xvfb-run -a in front):\n"
             "Slicer --no-splash --no-main-window --python-script {script} -- --data DATA_DIR --out RUN_DIR\n\n"
             "Python console: slicer.util.getModuleLogic(\"MedShiftTraining\").train(DATA_DIR, RUN_DIR, steps=500)"
             ).format(script=script)


class MedShiftTrainingWidget(ScriptedLoadableModuleWidget):
    """A small panel: the usage, data and run folders, steps, and Train/Stop. It creates the module's logic, which
    is how slicer.util.getModuleLogic("MedShiftTraining") finds it."""

    def __init__(self, parent=None) -> None:
        self.logic = MedShiftTrainingLogic()  # before the base class, which calls setup() when given no parent
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        """Build the panel in code (no .ui file)."""
        import ctk

        ScriptedLoadableModuleWidget.setup(self)
        form = qt.QFormLayout()
        self.layout.addLayout(form)
        usage = qt.QLabel(usageText())
        usage.wordWrap = True
        usage.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)
        form.addRow(usage)
        self.dataDirEdit = ctk.ctkPathLineEdit()
        self.dataDirEdit.filters = ctk.ctkPathLineEdit.Dirs
        form.addRow(_("Data folder:"), self.dataDirEdit)
        self.outDirEdit = ctk.ctkPathLineEdit()
        self.outDirEdit.filters = ctk.ctkPathLineEdit.Dirs
        form.addRow(_("Run folder:"), self.outDirEdit)
        self.stepsSpinBox = qt.QSpinBox()
        self.stepsSpinBox.setRange(1, 10000000)
        self.stepsSpinBox.value = 2000
        form.addRow(_("Steps:"), self.stepsSpinBox)
        self.resumeCheckBox = qt.QCheckBox(_("Resume the run in the run folder"))
        form.addRow(self.resumeCheckBox)
        self.trainButton = qt.QPushButton(_("Train"))
        form.addRow(self.trainButton)
        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
        form.addRow(self.statusLabel)
        self.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.layout.addStretch(1)

    def cleanup(self) -> None:
        """Slicer closes: no training worker may outlive it."""
        self.logic.stopBackgroundTraining()

    def onTrainButton(self) -> None:
        """Start training in the background, or stop the running training."""
        if self.logic.isTraining:
            self.logic.stopBackgroundTraining()
            return
        with slicer.util.tryWithErrorDisplay(_("MedShift could not start the training.")):
            self.logic.startBackgroundTraining(self.dataDirEdit.currentPath, self.outDirEdit.currentPath,
                                               self.stepsSpinBox.value, resume=self.resumeCheckBox.checked,
                                               onOutput=self.onOutput, onFinished=self.onFinished)
            self.trainButton.text = _("Stop")
            self.statusLabel.text = _("Starting...")

    def onOutput(self, line: str) -> None:
        """Show the worker's last line (steps, loss, saves)."""
        self.statusLabel.text = line

    def onFinished(self, message: str) -> None:
        """Say how the training ended."""
        self.trainButton.text = _("Train")
        self.statusLabel.text = message


class MedShiftTrainingLogic(ScriptedLoadableModuleLogic):
    """Builds a TrainingConfig and calls MedShiftLib.training.run.train (the code `medshift train` runs)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._training = None  # (process, worker state) of the panel's background training

    @property
    def isTraining(self) -> bool:
        """True while the panel's background training runs."""
        return self._training is not None

    def startBackgroundTraining(self, dataDir, outDir, steps, resume=False, onOutput=None, onFinished=None) -> None:
        """Run `medshift train DATA_DIR --out RUN_DIR --steps N [--resume]` in a PythonSlicer process.

        onOutput(line) gets each line it prints; onFinished(message) runs once at the end."""
        _ensureMedShiftLibImportable()
        from MedShiftLib.errors import MedShiftError
        from MedShiftSlicer import background_job

        if self.isTraining:
            raise MedShiftError("a training is already running; stop it first")
        if not dataDir or not os.path.isdir(dataDir):
            raise MedShiftError(f"the data folder '{dataDir}' does not exist; choose the folder with one sub-folder "
                                "of images per domain")
        if not outDir:
            raise MedShiftError("choose a run folder for the checkpoints and logs")
        app = getattr(slicer, "app", None)
        executable = background_job.python_slicer_executable(getattr(app, "slicerHome", "") if app else "")
        state = dict(workerPid=None, buffer="", lastLine="", stopped=False, onOutput=onOutput, onFinished=onFinished)
        state["worker"] = worker = background_job.WorkerProcess(
            background_job.MODULE_DIR, lambda text: self._onTrainingOutput(state, text),
            lambda exitCode, exitStatus, startError: self._endTraining(state, exitCode, startError))
        self._training = state
        worker.start(executable, background_job.training_arguments(dataDir, outDir, steps, resume))

    def stopBackgroundTraining(self) -> None:
        """End the training worker (its last save stays; Resume continues from it)."""
        from MedShiftSlicer import background_job

        state = self._training
        if state is None:
            return
        state["stopped"] = True
        if state["workerPid"]:  # else killed as soon as it prints its PID (its first line): killing the launcher
            background_job.kill_process(state["workerPid"])  # would orphan it; the launcher ends with its worker

    def _onTrainingOutput(self, state, text: str) -> None:
        from MedShiftSlicer.background_job import parse_worker_line

        state["buffer"] += text
        *lines, state["buffer"] = state["buffer"].replace("\r", "\n").split("\n")
        for line in (line.strip() for line in lines):
            if not line:
                continue
            kind, value = parse_worker_line(line)
            if kind == "pid" and state["workerPid"] is None:
                state["workerPid"] = value
                if state["stopped"]:
                    self.stopBackgroundTraining()
                continue
            state["lastLine"] = line
            logging.info(f"MedShiftTraining: {line}")
            if state["onOutput"]:
                state["onOutput"](line)

    def _endTraining(self, state, exitCode, startError) -> None:
        self._training = None
        if startError is not None:
            message = _("The training process could not start ({reason})").format(reason=startError)
        else:
            message = (_("Stopped; Train with Resume continues from the last save.") if state["stopped"]
                       else _("Done: {line}").format(line=state["lastLine"]) if exitCode == 0
                       else _("Training failed (exit code {code}): {line}").format(code=exitCode,
                                                                                   line=state["lastLine"]))
        if state["onFinished"]:
            state["onFinished"](message)

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
    except Exception:  # e.g. torch missing: report it and still end Slicer
        traceback.print_exc()
        print("MedShiftTraining: error: training stopped by an unexpected error (traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    exitCode = main()
    if hasattr(slicer, "app") and slicer.app is not None:
        slicer.util.exit(exitCode)
    sys.exit(exitCode)
