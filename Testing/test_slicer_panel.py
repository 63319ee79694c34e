"""The MedShift panel driven as a user would (issue 26): a failed start, an early cancel, editing the model path,
where the result goes, and the training module's panel.

MedShift.py's own widget and logic run against slicer-core's MRML scene; Qt's widgets, QProcess and QTimer
are the stand-ins of slicer_stand_ins.py (what cannot run here is Slicer's GUI itself: these tests call the
handlers Qt would call, in the order Slicer's and CTK's sources show, see docs/slicer.md).
"""
from __future__ import annotations

import gc
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

from MedShiftLib.settings import DEFAULTS  # noqa: E402
from MedShiftSlicer.parameters import PARAMETER_OF_SETTING, FrameChoice, panel_device_choices  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Label(types.SimpleNamespace):
    def __init__(self):
        super().__init__(text="", toolTip="", enabled=True)


class Panel:
    """MedShiftWidget with the real MedShiftLogic and stand-ins for the widgets of MedShift.ui."""

    def __init__(self, medshift, monkeypatch, model_path, node):
        self.widget = widget = medshift.MedShiftWidget()
        monkeypatch.setattr(widget, "addObserver", lambda *a: None, raising=False)
        monkeypatch.setattr(widget, "removeObserver", lambda *a: None, raising=False)
        widget.ui = types.SimpleNamespace(
            sourceDomainComboBox=Combo(), targetDomainComboBox=Combo(), modelInfoLabel=Label(),
            modelPathLineEdit=types.SimpleNamespace(currentPath=""),
            deviceComboBox=Combo(panel_device_choices(), "cpu"),
            deviceInfoLabel=Label(), frameIndexSpinBox=Label(), translateButton=Label(), inputInfoLabel=Label(),
            projectButton=Label(), statusLabel=Label(), progressBar=Bar())
        widget.logic = medshift.MedShiftLogic()
        widget.logic.setupPythonRequirements = lambda: True
        self.errors, self.shown = [], []
        monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: self.errors.append(text))
        monkeypatch.setattr(widget.logic, "showSideBySide", lambda a, b: self.shown.append(("side by side", a, b)))
        monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kw: self.shown.append(("views", kw)),
                            raising=False)
        defaults = {parameter: DEFAULTS[name] for name, parameter in PARAMETER_OF_SETTING.items() if name in DEFAULTS}
        self.p = ParameterNode(**defaults | dict(
            modelPath=str(model_path), sourceDomain="a", targetDomain="c", device="cpu", frames=FrameChoice.single,
            frameIndex=0, inputVolume=node, outputVolume=None, ctVolume=None, showSideBySide=False,
            contrastTransfer=False, noiseMatching=False, steps=2, primaryAngleDeg=0.0, secondaryAngleDeg=0.0,
            sourceDetectorDistanceMm=1200.0, detectorPixels=64, projectionDomain="sim-low"))
        widget.setParameterNode(self.p)

    def click_translate(self):
        self.widget.onTranslateButton()


def _radiograph(name="xr"):
    pixels = (1000 + 400 * np.random.default_rng(2).random((1, 24, 32))).astype(np.uint16)
    return slicer.util.addVolumeFromArray(pixels, name=name)


def _finish_as_identity(logic, process):
    """What a worker that copies its inputs would leave, then the launcher's end."""
    job = logic._run["job"]
    job.out_dir.mkdir(parents=True, exist_ok=True)
    for name in job.names:
        shutil.copy(job.in_dir / name, job.out_dir / name)
    process.output("PID 4242\nDEVICE CPU (1 threads)\n")
    process.finish(0, FakeProcess.NormalExit)


def test_a_failed_start_resets_the_progress_bar_and_the_status(medshift, scene, model_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no PythonSlicer anywhere: the start fails
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    with pytest.raises(Exception, match="cannot find PythonSlicer"):  # tryWithErrorDisplay shows it, raises it
        panel.click_translate()
    ui = panel.widget.ui
    assert not ui.progressBar.visible and ui.statusLabel.text == ""
    assert ui.translateButton.text == "Translate" and ui.translateButton.enabled
    assert not panel.widget.logic.isRunning


def test_a_process_that_cannot_start_is_released_only_after_its_handler(medshift, scene, model_path, python_slicer,
                                                                       monkeypatch):
    """PythonQt deletes a parentless QObject with its last Python reference; Qt goes on using the sender after
    the handler returns, so the QProcess needs a parent and a deferred release."""
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    panel.click_translate()
    process = FakeProcess.last()
    assert process.parent is slicer.app and process in slicer.app.children
    failed = process.signals["errorOccurred(QProcess::ProcessError)"]
    del process
    gc.collect()
    failed.emit(FakeProcess.FailedToStart)  # raises if the handler let the process be deleted
    assert FakeProcess.last().deleted  # deleteLater: Qt deletes it back in the event loop
    ui = panel.widget.ui
    assert not ui.progressBar.visible and "could not start" in ui.statusLabel.text and panel.errors
    assert ui.translateButton.text == "Translate"


def test_an_early_cancel_from_the_panel_stops_the_worker_once_it_is_known(medshift, scene, model_path,
                                                                         python_slicer, monkeypatch, tmp_path):
    killed = []
    monkeypatch.setattr(medshift.background_job, "kill_process", killed.append)
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    panel.click_translate()
    process = FakeProcess.last()
    process.pid = 4100
    assert panel.widget.ui.translateButton.text == "Cancel"
    job = panel.widget.logic._run["job"]
    panel.click_translate()  # Cancel, half a second after Translate: the worker is still importing torch
    assert panel.widget.ui.statusLabel.text == "Cancelling..."
    for _delay, shot in FakeTimer.shots:
        shot()
    assert killed == [] and job.cancel_file.exists()  # the launcher alone is not killed: it would orphan the worker
    process.output("PID 4242\n")
    assert killed == [4242, 4100]
    process.finish(9, FakeProcess.CrashExit)
    ui = panel.widget.ui
    assert ui.statusLabel.text == medshift.MedShiftLogic.CANCELLED_MESSAGE and panel.errors == []
    assert ui.translateButton.text == "Translate" and not ui.progressBar.visible
    assert not list((tmp_path / "slicer_temp").glob("MedShift-*"))


def test_editing_the_model_path_keeps_the_domains_and_the_bundled_model_is_one_click_away(
        medshift, scene, model_path, monkeypatch, tmp_path):
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    ui, p = panel.widget.ui, panel.p
    assert ui.sourceDomainComboBox.items == ["a", "b", "c"] and (p.sourceDomain, p.targetDomain) == ("a", "c")
    # ctkPathLineEdit emits currentPathChanged for any text its *.safetensors validator accepts, e.g. while typing
    panel.widget.onModelPathChanged(str(tmp_path / "mod.safetensors"))
    assert (p.modelPath, p.sourceDomain, p.targetDomain) == (str(model_path), "a", "c")
    assert ui.sourceDomainComboBox.items == ["a", "b", "c"] and "does not exist" in ui.modelInfoLabel.text
    assert "still using" in ui.modelInfoLabel.text
    # clearing the field emits nothing (the validator refuses ""): the Bundled model button goes back
    panel.widget.onBundledModel()
    bundled = panel.widget.logic.modelDomains(None)
    assert p.modelPath == "" and ui.modelPathLineEdit.currentPath == ""
    assert ui.sourceDomainComboBox.items == list(bundled) and ui.modelInfoLabel.text.startswith("Domains:")


def test_the_result_goes_beside_the_translated_input_and_into_the_output_selector(medshift, scene, model_path,
                                                                                  python_slicer, monkeypatch):
    first, second = _radiograph("first"), _radiograph("second")
    panel = Panel(medshift, monkeypatch, model_path, first)
    panel.p.showSideBySide = True
    panel.click_translate()
    panel.p.inputVolume = second  # the user looks at another radiograph while it runs
    _finish_as_identity(panel.widget.logic, FakeProcess.last())
    output = panel.p.outputVolume  # a new volume is put into the output selector
    assert output is not None and output.GetName().startswith("first ")
    assert panel.shown == [("side by side", first, output)]
    assert panel.widget.logic.deviceDescription("cpu") == "last run: CPU (1 threads)"  # from the DEVICE line
    panel.p.showSideBySide = False  # the layout is the user's: without the option only the views show the result
    panel.click_translate()
    _finish_as_identity(panel.widget.logic, FakeProcess.last())
    assert panel.shown[-1][0] == "views" and panel.p.outputVolume is output


def test_project_ct_is_enabled_only_with_a_ct(medshift, scene, model_path, monkeypatch):
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    assert not panel.widget.ui.projectButton.enabled and "CT volume first" in panel.widget.ui.projectButton.toolTip
    panel.p.ctVolume = _radiograph("ct")
    panel.widget._checkCanApply()  # what the parameter node's Modified event calls
    assert panel.widget.ui.projectButton.enabled


def test_frames_read_as_words_and_scenes_keep_their_saved_names():
    assert [c.name for c in FrameChoice] == ["single", "all", "one"]  # what a saved scene holds
    labels = [c.label() for c in FrameChoice]
    assert labels == ["One radiograph", "Every frame (cine)", "One frame:"]


@pytest.mark.parametrize("system, machine, has_mps", [("Darwin", "arm64", True), ("Darwin", "x86_64", False),
                                                      ("Linux", "x86_64", False), ("Windows", "AMD64", False)])
def test_mps_is_offered_on_apple_silicon_only(system, machine, has_mps):
    choices = panel_device_choices(system, machine)
    assert ("mps" in choices) is has_mps and choices[:3] == ["auto", "cpu", "cuda"]


def test_a_worker_asked_for_mps_without_it_says_so():
    import torch

    from MedShiftLib.engine.devices import resolve_device
    from MedShiftLib.errors import MedShiftError

    if torch.backends.mps.is_available():
        assert resolve_device("mps").type == "mps"
    else:
        with pytest.raises(MedShiftError, match="sees no Apple GPU"):
            resolve_device("mps")


def test_the_training_module_has_a_panel_whose_logic_get_module_logic_finds(monkeypatch, tmp_path):
    training = load_module(ROOT / "MedShiftTraining" / "MedShiftTraining.py", monkeypatch, tmp_path)
    parent = types.SimpleNamespace()
    training.MedShiftTraining(parent)
    assert not getattr(parent, "hidden", False) and getattr(parent, "widgetRepresentationCreationEnabled", True)
    assert parent.dependencies == ["MedShift"]
    widget = training.MedShiftTrainingWidget(parent=types.SimpleNamespace(layout=lambda: None))
    # slicer.util.getModuleLogic (Slicer 5.10 util.py) returns getModuleGui(module).logic for a scripted module
    assert isinstance(widget.logic, training.MedShiftTrainingLogic)
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(
        medshifttraining=types.SimpleNamespace(path="/opt/Slicer/ext/MedShiftTraining.py")), raising=False)
    usage = training.usageText()
    assert "--python-script /opt/Slicer/ext/MedShiftTraining.py --" in usage and "xvfb-run" in usage


def test_the_training_panel_runs_medshift_train_in_a_worker_and_stop_ends_the_worker(monkeypatch, tmp_path):
    training = load_module(ROOT / "MedShiftTraining" / "MedShiftTraining.py", monkeypatch, tmp_path)
    (tmp_path / "slicer_home" / "bin" / "PythonSlicer").write_text("")
    data = tmp_path / "data"
    data.mkdir()
    killed, lines, ends = [], [], []
    from MedShiftSlicer import background_job

    monkeypatch.setattr(background_job, "kill_process", killed.append)
    logic = training.MedShiftTrainingLogic()
    logic.startBackgroundTraining(str(data), str(tmp_path / "run"), 7, onOutput=lines.append, onFinished=ends.append)
    process = FakeProcess.last()
    assert process.parent is slicer.app and logic.isTraining
    # the worker's command: run it here as PythonSlicer would, on an empty data folder (a one-line error)
    proc = subprocess.run([sys.executable, *process.arguments], cwd=process.cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.stdout.startswith("PID ") and proc.returncode == 2 and "medshift: error:" in proc.stderr
    logic.stopBackgroundTraining()  # before the PID line: nothing is killed yet
    assert killed == []
    process.output("PID 5151\nstep 1/7 loss 0.9\n")
    assert killed == [5151] and lines == ["step 1/7 loss 0.9"]
    process.finish(-9, FakeProcess.CrashExit)
    assert not logic.isTraining and ends == ["Stopped; Train with Resume continues from the last save."]
    assert process.deleted


def _ct_phantom(name="phantom"):
    n = 32
    zz, yy, xx = np.mgrid[:n, :n, :n] - (n - 1) / 2
    hu = np.where(xx ** 2 + yy ** 2 + zz ** 2 < 11 ** 2, 0.0, -1000.0)
    hu[(np.abs(xx) < 3) & (np.abs(yy) < 3)] = 1500.0
    return slicer.util.addVolumeFromArray(hu.astype(np.int16), ijkToRAS=np.diag([-3.0, -3.0, 3.0, 1.0]), name=name)


def test_project_ct_runs_in_a_worker_and_gives_what_the_console_gives(medshift, scene, model_path, python_slicer,
                                                                     monkeypatch):
    """The panel's projection leaves Slicer's event loop free: it runs in a worker, and its result is the console's."""
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    panel.p.ctVolume, panel.p.detectorPixels, panel.p.projectionDomain = _ct_phantom(), 64, "sim-high"
    panel.p.primaryAngleDeg, panel.p.secondaryAngleDeg, panel.p.sourceDetectorDistanceMm = 10.0, 0.0, 1200.0
    panel.p.frames = FrameChoice.all

    def blocking(*args, **kwargs):
        raise AssertionError("the panel must not project in Slicer's process")

    monkeypatch.setattr(panel.widget.logic, "projectCT", blocking)
    panel.widget.onProjectButton()
    process = FakeProcess.last()
    assert process.parent is slicer.app and panel.widget.logic.isProjecting
    assert not panel.widget.ui.projectButton.enabled and panel.widget.ui.projectButton.text == "Projecting..."
    worker = subprocess.run([sys.executable, *process.arguments], cwd=process.cwd, capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert worker.returncode == 0, worker.stderr[-2000:]
    process.output(worker.stdout)
    process.finish(0, FakeProcess.NormalExit)
    node = panel.p.inputVolume
    assert node.GetName() == "phantom sim-high LAO+10 CRA+0" and panel.p.frames == FrameChoice.single
    assert panel.widget.ui.projectButton.enabled and not panel.widget.logic.isProjecting and process.deleted
    from MedShiftSlicer.ct_projection import project_ct_node

    console = project_ct_node(panel.p.ctVolume, 10.0, 0.0, 1200.0, 64, domain="sim-high")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), slicer.util.arrayFromVolume(console))
    assert node.GetSpacing() == pytest.approx(console.GetSpacing())


def test_a_projection_the_worker_refuses_says_why_and_adds_nothing(medshift, scene, model_path, python_slicer,
                                                                  monkeypatch):
    panel = Panel(medshift, monkeypatch, model_path, _radiograph())
    panel.p.ctVolume = _ct_phantom()
    panel.p.primaryAngleDeg = 60.0  # outside the C-arm's range
    count = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    panel.widget.onProjectButton()
    process = FakeProcess.last()
    worker = subprocess.run([sys.executable, *process.arguments], cwd=process.cwd, capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    process.output(worker.stdout)
    process.finish(worker.returncode, FakeProcess.NormalExit)
    assert worker.returncode == 2 and "outside" in panel.widget.ui.statusLabel.text and panel.errors
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == count
    assert panel.widget.ui.projectButton.enabled


def test_console_file_translation_names_slicers_old_pydicom_instead_of_failing_on_it(medshift, monkeypatch, tmp_path):
    """Slicer 5.10's DICOM module loads its pydicom 2.4.4; the console's in-process DICOM reading needs 3."""
    import MedShiftLib.io.radiograph_files  # noqa: F401 (loaded with the real pydicom before the stand-in below)
    from MedShiftLib.errors import MedShiftError
    from MedShiftSlicer.requirements import loaded_too_old

    old = types.ModuleType("pydicom")
    old.__version__ = "2.4.4"
    assert loaded_too_old(["pydicom>=3.0"], {"pydicom": old}) == ["pydicom 2.4.4 (needs >=3.0)"]
    assert loaded_too_old(["pydicom>=3.0"], {}) == []
    monkeypatch.setitem(sys.modules, "pydicom", old)
    dicom = tmp_path / "xr.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM")
    with pytest.raises(MedShiftError, match=r"pydicom 2\.4\.4 \(needs >=3\.0\) loaded.*restart Slicer"):
        medshift.MedShiftLogic().translateFiles(dicom, tmp_path / "out", None)
