"""MedShift.py and MedShiftTraining.py themselves, imported with stand-ins for what only a running Slicer has.

The scene is slicer-core's real MRML scene; Qt's QProcess and QTimer, slicer.app, the scripted-module base
classes and SampleData are stand-ins (slicer_stand_ins.py) whose interfaces follow Slicer's source.
"""
from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core's MRML scene is not available", allow_module_level=True)

from slicer_stand_ins import Bar, Combo, FakeProcess, FakeTimer, ParameterNode, load_module  # noqa: E402

from MedShiftLib.errors import MedShiftError  # noqa: E402
from MedShiftLib.settings import TranslationSettings  # noqa: E402
from MedShiftSlicer.parameters import FrameChoice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = TranslationSettings("a", "c", tau=0.5, steps=2)


def _radiograph(name="xr"):
    rng = np.random.default_rng(2)
    pixels = (1000 + 400 * rng.random((1, 40, 48))).astype(np.uint16)
    return slicer.util.addVolumeFromArray(pixels, name=name)


def _volume_count(scene):
    return scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")


class Run:
    """What a background run told the panel."""

    def __init__(self):
        self.progress, self.finished = [], []

    def on_progress(self, done, total, message):
        self.progress.append((done, total, message))

    def on_finished(self, node, error, out_of_memory):
        self.finished.append((node, error, out_of_memory))


def _start(medshift, node, model_path, settings=SETTINGS):
    logic, run = medshift.MedShiftLogic(), Run()
    logic.startBackgroundTranslation(node, settings, device="cpu", modelPath=str(model_path),
                                     onProgress=run.on_progress, onFinished=run.on_finished)
    return logic, run, FakeProcess.last()


def _work(process):
    """Run the worker the panel asked for, as the launcher would, and hand its output to the process stand-in."""
    proc = subprocess.run([sys.executable, *process.arguments], cwd=process.cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": ""})
    process.output(proc.stdout)
    return proc.returncode


def _job_folders(tmp_path):
    return list((tmp_path / "slicer_temp").glob("MedShift-*"))


def test_the_panel_runs_the_projects_command_in_pythonslicer(medshift, scene, model_path, python_slicer, tmp_path):
    node = _radiograph()
    logic, run, process = _start(medshift, node, model_path)
    assert logic.isRunning and process.program() == str(python_slicer)
    assert process.arguments[:3] == ["-m", "MedShiftLib.cli", "translate"]
    assert "--machine-progress" in process.arguments and "--cancel-file" in process.arguments
    code = _work(process)
    process.finish(code, FakeProcess.NormalExit)
    (added, error, out_of_memory), = run.finished
    assert error == "" and not out_of_memory and not logic.isRunning
    assert added.GetName() == "xr a->c tau0.5"
    assert slicer.util.arrayFromVolume(added).shape == (1, 40, 48)
    assert [p[:2] for p in run.progress] == [(k, 4) for k in range(1, 5)] and "CPU" in run.progress[-1][2]
    assert process.deleted and not _job_folders(tmp_path)


@pytest.mark.parametrize("ending", ["finished", "failed to start"])
def test_a_worker_process_hands_on_all_its_output_and_ends_once(medshift, tmp_path, ending):
    """The one QProcess wrapper of the translation, projection and training workers (background_job.WorkerProcess)."""
    from MedShiftSlicer.background_job import WorkerProcess
    texts, ends = [], []
    worker = WorkerProcess(tmp_path, texts.append, lambda *end: ends.append(end))
    process = FakeProcess.last()
    assert process.parent is slicer.app and process.cwd == str(tmp_path) and worker.launcher_pid() is None
    worker.start("PythonSlicer", ["-c", "pass"])
    assert process.program() == "PythonSlicer" and process.arguments == ["-c", "pass"]
    process.pid = 4242
    process.output("PID 12\n")
    process.pending = b"last words\n"  # printed, not yet read, when it ends
    if ending == "finished":
        process.finish(3, FakeProcess.CrashExit)
        expected = (3, FakeProcess.CrashExit, None)
    else:
        process.fail_to_start()
        expected = (None, None, "No such file or directory")
    assert worker.launcher_pid() == 4242 and worker.ended and process.deleted
    process.finish(0)  # a second end, and output after the end, change nothing
    process.output("too late\n")
    assert ends == [expected] and "".join(texts) == "PID 12\nlast words\n"


def test_a_process_that_cannot_start_ends_the_run_with_a_message(medshift, scene, model_path, python_slicer,
                                                                  tmp_path):
    count = _volume_count(scene)
    logic, run, process = _start(medshift, _radiograph(), model_path)
    process.fail_to_start()  # Qt emits errorOccurred(FailedToStart) and no finished()
    (node, error, _), = run.finished
    assert node is None and "could not start" in error and str(python_slicer) in error
    assert not logic.isRunning and not _job_folders(tmp_path)
    assert _volume_count(scene) == count + 1  # the input only


@pytest.mark.parametrize("case", ["crash", "error", "deleted input"])
def test_every_other_end_of_a_run_gives_one_message_and_no_node(medshift, scene, model_path, python_slicer, tmp_path,
                                                                case):
    node = _radiograph()
    settings = TranslationSettings("a", "nope") if case == "error" else SETTINGS
    if case == "error":  # the model check before starting catches this one; a worker can still meet it
        logic, run, process = _start(medshift, node, model_path, SETTINGS)
        process.arguments[process.arguments.index("--target") + 1] = settings.target_domain
    else:
        logic, run, process = _start(medshift, node, model_path)
    count = _volume_count(scene)
    if case == "crash":
        process.finish(-11, FakeProcess.CrashExit)
    else:
        code = _work(process)
        if case == "deleted input":
            scene.RemoveNode(node)
        process.finish(code, FakeProcess.NormalExit)
    (added, error, _), = run.finished
    assert added is None and not logic.isRunning and not _job_folders(tmp_path)
    expected = {"crash": "stopped unexpectedly", "error": "unknown domain 'nope'",
                "deleted input": "removed from the scene"}[case]
    assert expected in error
    assert _volume_count(scene) == count - (case == "deleted input")


def test_cancel_asks_the_worker_first_and_kills_it_with_its_launcher_when_it_goes_on(medshift, scene, model_path,
                                                                                    python_slicer, monkeypatch):
    killed = []
    monkeypatch.setattr(medshift.background_job, "kill_process", killed.append)
    logic, run, process = _start(medshift, _radiograph(), model_path)
    process.pid = 4100
    process.output("PID 4242\n")
    job = logic._run["job"]
    logic.cancelBackgroundTranslation()
    assert job.cancel_file.exists() and killed == []  # asked, not killed
    (delay, kill_later), = FakeTimer.shots
    assert delay == medshift.background_job.KILL_AFTER_SECONDS * 1000
    kill_later()
    assert killed == [4242, 4100]  # the worker (python-real) and the launcher
    process.finish(9, FakeProcess.CrashExit)
    (added, error, _), = run.finished
    assert added is None and error == medshift.MedShiftLogic.CANCELLED_MESSAGE
    kill_later()  # a late timer for a finished run does nothing
    assert killed == [4242, 4100]


@pytest.mark.parametrize("kill_now", [False, True], ids=["cancel", "scene close"])
def test_an_early_cancel_keeps_the_cancel_file_and_kills_nothing_before_the_worker_is_known(
        medshift, scene, model_path, python_slicer, monkeypatch, tmp_path, kill_now):
    """PythonSlicer forwards no signal: killing it before its worker said its PID would orphan the worker."""
    killed = []
    monkeypatch.setattr(medshift.background_job, "kill_process", killed.append)
    logic, run, process = _start(medshift, _radiograph(), model_path)
    process.pid = 4100  # the launcher runs; its worker is still importing torch
    job = logic._run["job"]
    logic.cancelBackgroundTranslation(killNow=kill_now)
    for _delay, shot in FakeTimer.shots:
        shot()
    assert killed == [] and job.cancel_file.exists()
    process.output("PID 4242\n")  # the worker is known now: both go
    assert killed == [4242, 4100] and job.cancel_file.exists()
    process.finish(9, FakeProcess.CrashExit)
    assert not _job_folders(tmp_path) and run.finished[0][1] == medshift.MedShiftLogic.CANCELLED_MESSAGE


def test_a_launcher_killed_before_its_worker_was_known_leaves_the_cancel_file(medshift, scene, model_path,
                                                                              python_slicer, tmp_path):
    """E.g. Qt ends the launcher as Slicer quits during a cancel: the orphaned worker still finds the cancel file."""
    logic, run, process = _start(medshift, _radiograph(), model_path)
    job = logic._run["job"]
    logic.cancelBackgroundTranslation(killNow=True)
    process.finish(9, FakeProcess.CrashExit)
    assert run.finished[0][1] == medshift.MedShiftLogic.CANCELLED_MESSAGE and not logic.isRunning
    assert job.cancel_file.exists()


def test_without_pythonslicer_nothing_starts_and_the_message_says_why(medshift, scene, model_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    logic = medshift.MedShiftLogic()
    with pytest.raises(MedShiftError, match="cannot find PythonSlicer"):
        logic.startBackgroundTranslation(_radiograph(), SETTINGS, device="cpu", modelPath=str(model_path))
    assert not logic.isRunning and FakeProcess.instances == []


def test_sample_data_is_registered_with_the_parameters_slicer_has(medshift, monkeypatch):
    registered = []

    # Slicer 5.10-5.13 Modules/Scripted/SampleData/SampleData.py, SampleDataLogic (a static method):
    def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None, nodeNames=None,
                                       customDownloader=None, thumbnailFileName=None, loadFileTypes=None,
                                       loadFiles=None, loadFileProperties={}, checksums=None,  # noqa: B006
                                       loadFileType=None):
        registered.append(dict(category=category, sampleName=sampleName, uris=uris, fileNames=fileNames,
                               nodeNames=nodeNames, checksums=checksums))

    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=registerCustomSampleDataSource)
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    medshift.registerSampleData()
    assert [r["sampleName"] for r in registered] == ["MedShiftRadiograph", "MedShiftHeadPhantomCT"]
    for record in registered:
        assert record["category"] == "MedShift" and record["uris"].startswith("file://")
        assert record["checksums"].startswith("SHA256:") and len(record["checksums"]) == 7 + 64
    parent = types.SimpleNamespace()
    medshift.MedShift(parent)
    assert ("startupCompleted()", medshift.registerSampleData) in slicer.app.connections


def test_headless_training_ends_slicer_with_a_failure_code_on_an_unexpected_error(monkeypatch, tmp_path, capsys):
    path = ROOT / "MedShiftTraining" / "MedShiftTraining.py"
    training = load_module(path, monkeypatch, tmp_path)

    def broken(args):
        raise ModuleNotFoundError("No module named 'ot'")

    monkeypatch.setattr("MedShiftLib.training.run.train_from_arguments", broken)
    assert training.main(["--data", "d", "--out", "o"]) == 1
    assert "No module named 'ot'" in capsys.readouterr().err
    exits = []
    monkeypatch.setattr(slicer.util, "exit", exits.append)
    monkeypatch.setattr(sys, "argv", [str(path), "--", "--data", "d", "--out", "o"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(path), run_name="__main__")  # what `Slicer --python-script` runs
    assert exits == [1] and stopped.value.code == 1


def test_an_old_slicer_is_told_which_slicer_medshift_needs(monkeypatch, tmp_path):
    for name in [n for n in sys.modules if n == "MedShiftSlicer" or n.startswith("MedShiftSlicer.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(majorVersion=5, minorVersion=8,
                                                             connect=lambda *a: None), raising=False)
    with pytest.raises(ImportError, match=r"needs 3D Slicer 5\.10 or newer .* this is Slicer 5\.8"):
        load_module(ROOT / "MedShift" / "MedShift.py", monkeypatch, tmp_path, keep_app=True)


def test_what_an_old_slicer_reads_before_the_version_check_is_python_3_9():
    """Slicer 5.8 and older run Python 3.9: the files read before the check must not be a syntax error there."""
    import ast

    for path in ["MedShift/MedShift.py", "MedShift/MedShiftSlicer/__init__.py", "MedShift/MedShiftLib/__init__.py",
                 "MedShift/MedShiftLib/errors.py", "MedShift/MedShiftLib/settings.py",
                 "MedShift/MedShiftLib/simulator/__init__.py", "MedShift/MedShiftLib/simulator/domains.py"]:
        ast.parse((ROOT / path).read_text(), filename=path, feature_version=(3, 9))


def _widget(medshift, monkeypatch, domains=("sim-low", "sim-high", "clinical-low", "clinical-normal")):
    widget = medshift.MedShiftWidget()
    monkeypatch.setattr(widget, "addObserver", lambda *a: None, raising=False)
    monkeypatch.setattr(widget, "removeObserver", lambda *a: None, raising=False)
    label = lambda: types.SimpleNamespace(text="", toolTip="", enabled=True)  # noqa: E731
    widget.ui = types.SimpleNamespace(
        sourceDomainComboBox=Combo(), targetDomainComboBox=Combo(), modelPathLineEdit=types.SimpleNamespace(
            currentPath=""), modelInfoLabel=label(), deviceComboBox=Combo(["auto", "cpu", "cuda"], "auto"),
        deviceInfoLabel=label(), frameIndexSpinBox=label(), translateButton=label(), inputInfoLabel=label(),
        projectButton=label(), statusLabel=label(), progressBar=Bar())
    widget.logic = types.SimpleNamespace(isRunning=False, isProjecting=False, modelDomains=lambda path: list(domains),
                                         deviceDescription=lambda device: f"device {device}")
    return widget


def _parameters(**values):
    from MedShiftLib.settings import DEFAULTS
    from MedShiftSlicer.parameters import PARAMETER_OF_SETTING

    defaults = {parameter: DEFAULTS[name] for name, parameter in PARAMETER_OF_SETTING.items() if name in DEFAULTS}
    defaults |= dict(modelPath="", sourceDomain="sim-low", targetDomain="clinical-normal", device="auto",
                     frames=FrameChoice.single, frameIndex=0, inputVolume=None, outputVolume=None, ctVolume=None,
                     showSideBySide=False)
    return ParameterNode(**(defaults | values))


def test_the_domain_lists_show_the_parameter_node_they_are_given(medshift, monkeypatch):
    widget = _widget(medshift, monkeypatch)
    widget.setParameterNode(_parameters())
    assert (widget.ui.sourceDomainComboBox.currentText, widget.ui.targetDomainComboBox.currentText) == (
        "sim-low", "clinical-normal")
    saved = _parameters(sourceDomain="clinical-low", targetDomain="sim-high")  # a scene loaded with other choices
    widget.setParameterNode(saved)
    assert (widget.ui.sourceDomainComboBox.currentText, widget.ui.targetDomainComboBox.currentText) == (
        "clinical-low", "sim-high")
    assert (saved.sourceDomain, saved.targetDomain) == ("clinical-low", "sim-high")  # what Translate uses
    saved.targetDomain = "sim-low"  # changed from the console: the node's Modified event reaches _checkCanApply
    widget._checkCanApply()
    assert widget.ui.targetDomainComboBox.currentText == "sim-low"


def test_the_device_label_names_the_device_just_chosen(medshift, monkeypatch):
    widget = _widget(medshift, monkeypatch)
    widget.setParameterNode(_parameters())
    widget.ui.deviceComboBox.currentIndex = 1  # the user picks "cpu"; the connector has not stored it yet
    widget.updateDeviceInfo(1)
    assert widget.ui.deviceInfoLabel.text == "device cpu"


def test_side_by_side_turns_each_view_to_its_volumes_plane(medshift, monkeypatch, scene):
    calls = []

    class SliceWidget:
        def __init__(self, view):
            self.view = view

        def mrmlSliceCompositeNode(self):
            return types.SimpleNamespace(SetBackgroundVolumeID=lambda i: calls.append((self.view, "volume", i)),
                                         SetForegroundVolumeID=lambda i: None, SetLinkedControl=lambda on: None)

        def mrmlSliceNode(self):
            return types.SimpleNamespace(
                RotateToVolumePlane=lambda node: calls.append((self.view, "plane", node.GetName())),
                SetOrientation=lambda name: calls.append((self.view, "orientation", name)))

        def sliceLogic(self):
            return types.SimpleNamespace(FitSliceToAll=lambda: None)

    layout = types.SimpleNamespace(setLayout=lambda value: None, sliceWidget=SliceWidget)
    monkeypatch.setattr(slicer.app, "layoutManager", lambda: layout, raising=False)
    source, result = _radiograph("in"), _radiograph("out")
    medshift.MedShiftLogic().showSideBySide(source, result)
    assert ("Red", "plane", "in") in calls and ("Yellow", "plane", "out") in calls
    assert not [c for c in calls if c[1] == "orientation"]


def test_one_confirmation_installs_torch_through_its_extension_and_the_rest_through_pip(medshift, monkeypatch):
    from MedShiftSlicer import requirements

    versions = {"torch": None, "pydicom": "2.4.4"}  # no torch yet, Slicer 5.10's pydicom
    monkeypatch.setattr(requirements, "installed_version", lambda name: versions.get(name, "99"))
    asked, torch_installs, pip_installs = [], [], []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, title=None: asked.append(text) or True)
    monkeypatch.setattr(slicer.util, "pip_install", pip_installs.append)
    torch_utils = types.ModuleType("PyTorchUtils")
    torch_utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(
        installTorch=lambda **options: torch_installs.append(options) or object())
    monkeypatch.setitem(sys.modules, "PyTorchUtils", torch_utils)
    monkeypatch.delitem(sys.modules, "pydicom", raising=False)  # not loaded yet: no restart needed
    logic = medshift.MedShiftLogic()
    assert logic.missingPythonRequirements() == ["torch>=2.1", "pydicom>=3.0"]
    assert logic.setupPythonRequirements() is True
    assert len(asked) == 1 and "torch>=2.1 (through the PyTorch extension)" in asked[0] and "pydicom>=3.0" in asked[0]
    assert torch_installs == [{"askConfirmation": False, "torchVersionRequirement": ">=2.1"}]
    assert pip_installs == [["pydicom>=3.0"]]


def test_declining_installs_nothing_and_only_a_package_slicer_itself_needs_asks_for_a_restart(medshift,
                                                                                                monkeypatch):
    from MedShiftSlicer import requirements

    versions = {"pydicom": "2.4.4", "torchdiffeq": "0.2.0"}
    monkeypatch.setattr(requirements, "installed_version", lambda name: versions.get(name, "99"))
    pip_installs, restarts, asked = [], [], []
    monkeypatch.setattr(slicer.util, "pip_install", pip_installs.append)
    monkeypatch.setattr(slicer.util, "restart", lambda: restarts.append(True), raising=False)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, title=None: False)
    assert medshift.MedShiftLogic().setupPythonRequirements() is False and pip_installs == []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, title=None: asked.append(text) or True)
    # Slicer's DICOM module loaded its pydicom 2.4: only the worker needs pydicom 3, so no restart for it
    monkeypatch.setitem(sys.modules, "pydicom", types.ModuleType("pydicom"))
    monkeypatch.delitem(sys.modules, "torchdiffeq", raising=False)
    assert medshift.MedShiftLogic().setupPythonRequirements() is True and restarts == []
    assert medshift.MedShiftLogic().setupPythonRequirements(askConfirmation=False) is True  # the self-test's call
    # a package Slicer's own process has loaded and uses: the restart is offered, not an error
    monkeypatch.setitem(sys.modules, "torchdiffeq", types.ModuleType("torchdiffeq"))
    assert medshift.MedShiftLogic().setupPythonRequirements() is False
    assert restarts == [True] and "Restart Slicer now?" in asked[-1] and "torchdiffeq>=0.2.3" in asked[-1]
    with pytest.raises(MedShiftError, match="must restart"):
        medshift.MedShiftLogic().setupPythonRequirements(askConfirmation=False)


def test_anything_that_goes_wrong_reading_a_model_shows_in_its_label(medshift, monkeypatch):
    widget = _widget(medshift, monkeypatch)

    def broken(path):
        raise OSError("[WinError 126] The specified module could not be found")  # e.g. a DLL that fails to load

    widget.logic.modelDomains = broken
    widget.setParameterNode(_parameters())
    assert "WinError 126" in widget.ui.modelInfoLabel.text


def test_the_device_label_needs_no_torch_and_names_the_device_the_worker_reported(medshift, monkeypatch):
    logic = medshift.MedShiftLogic()
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert "CUDA GPU" in logic.deviceDescription("auto") and logic.deviceDescription("cpu") == "the CPU"
    logic.usedDevices["auto"] = "CUDA: NVIDIA RTX A4000"
    assert logic.deviceDescription("auto") == "last run: CUDA: NVIDIA RTX A4000"
    widget = _widget(medshift, monkeypatch)

    def broken(device):
        raise RuntimeError("no label today")

    widget.logic.deviceDescription = broken
    widget.setParameterNode(_parameters())
    assert widget.ui.deviceInfoLabel.text == "no label today"


def test_requirements_are_checked_by_version_not_by_presence():
    from packaging.requirements import Requirement

    from MedShiftSlicer.requirements import already_loaded, import_name, unmet

    wanted = [Requirement("pydicom>=3.0"), Requirement("pillow>=9.0"), Requirement("tqdm>=4.60")]
    installed = {"pydicom": "2.4.4", "pillow": "12.0.0"}.get
    assert unmet(wanted, installed) == ["pydicom>=3.0", "tqdm>=4.60"]  # too old, and missing
    assert import_name("pillow") == "PIL" and import_name("tqdm") == "tqdm"
    assert already_loaded(["pillow>=9.0", "tqdm>=4.60"], {"PIL": object()}) == ["pillow>=9.0"]
