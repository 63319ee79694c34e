"""Stand-ins for the parts of a running 3D Slicer that PyPI's slicer-core lacks, to import the modules in tests.

slicer-core gives the real MRML scene and `slicer.util`; Qt (`qt`), `slicer.app`, the scripted-module
base classes, the parameter-node wrapper and `slicer.i18n` exist only inside the Slicer application.
`load_module(path, monkeypatch)` imports MedShift.py or MedShiftTraining.py with small stand-ins for
those, so the module logic's own code (the background run's handlers, sample-data registration,
headless training's exit) runs against the real scene. `FakeProcess` records what the logic asks of
a QProcess; the tests emit its signals themselves.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import weakref
from pathlib import Path

import slicer


class Signal:
    """What PythonQt's `object.connect("signal(args)", slot)` registers, callable by the test.

    Like Qt, which goes on using the sender after its slots return, emitting fails when a slot has let the
    sender be deleted (PythonQt deletes a parentless object with its last Python reference)."""

    def __init__(self, sender=None) -> None:
        self.slots = []
        self.sender = weakref.ref(sender) if sender is not None else None

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            slot(*args)
        if self.sender is not None and self.sender() is None:
            raise RuntimeError("the QObject was deleted inside its own signal handler")


class FakeProcess:
    """A QProcess stand-in: records start(), lets the test emit output, errors and the end."""

    NormalExit, CrashExit = 0, 1
    FailedToStart, Crashed = 0, 1
    MergedChannels = 1
    instances: list = []

    def __init__(self, parent=None) -> None:
        names = ("readyReadStandardOutput()", "finished(int,QProcess::ExitStatus)",
                 "errorOccurred(QProcess::ProcessError)")
        self.signals = {name: Signal(self) for name in names}
        self.program_, self.arguments, self.cwd, self.pending, self.deleted = None, None, None, b"", False
        self.pid = 0
        self.parent = parent
        if parent is not None:  # Qt's parent owns its children: Python's references do not decide their life
            parent.children.append(self)
        FakeProcess.instances.append(weakref.ref(self))

    def connect(self, signal: str, slot) -> None:
        self.signals[signal].slots.append(slot)

    def setWorkingDirectory(self, path: str) -> None:
        self.cwd = path

    def setProcessChannelMode(self, mode) -> None:
        pass

    def start(self, program: str, arguments) -> None:
        self.program_, self.arguments = program, list(arguments)

    def program(self) -> str:
        return self.program_

    def errorString(self) -> str:
        return "No such file or directory"

    def processId(self) -> int:
        return self.pid

    def readAllStandardOutput(self):
        data, self.pending = self.pending, b""
        return types.SimpleNamespace(data=lambda: data)

    def deleteLater(self) -> None:
        self.deleted = True  # Qt deletes it once control is back in the event loop

    @staticmethod
    def last() -> FakeProcess:
        """The process created last (FakeProcess.instances holds weak references, as PythonQt's wrappers do)."""
        return FakeProcess.instances[-1]()

    # what the test does to it
    def output(self, text: str) -> None:
        self.pending += text.encode()
        self.signals["readyReadStandardOutput()"].emit()

    def finish(self, code: int, status: int = 0) -> None:
        self.signals["finished(int,QProcess::ExitStatus)"].emit(code, status)

    def fail_to_start(self) -> None:
        self.signals["errorOccurred(QProcess::ProcessError)"].emit(FakeProcess.FailedToStart)


class FakeTimer:
    """qt.QTimer stand-in: singleShot calls are recorded, the test runs them."""

    shots: list = []

    @staticmethod
    def singleShot(msec: int, callback) -> None:
        FakeTimer.shots.append((msec, callback))


class Combo:
    """A QComboBox stand-in (the calls MedShift.py makes)."""

    def __init__(self, items=(), text=""):
        self.items, self.currentIndex, self.blocked = list(items), -1, False
        if text in self.items:
            self.currentIndex = self.items.index(text)

    @property
    def currentText(self):
        return self.items[self.currentIndex] if 0 <= self.currentIndex < len(self.items) else ""

    def findText(self, text):
        return self.items.index(text) if text in self.items else -1

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItems(self, items):
        self.items += list(items)

    def blockSignals(self, block):
        previous, self.blocked = self.blocked, block
        return previous


class Bar(types.SimpleNamespace):
    """A QProgressBar stand-in."""

    def __init__(self):
        super().__init__(value=0, maximum=100, visible=False)

    def show(self):
        self.visible = True

    def hide(self):
        self.visible = False


class ParameterNode(types.SimpleNamespace):
    """What the widget asks of the wrapped parameter node."""

    def connectGui(self, ui):
        return "tag"

    def disconnectGui(self, tag):
        pass

    def StartModify(self):
        return 0

    def EndModify(self, previous):
        return 0



def _qt_module() -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.QProcess, qt.QTimer = FakeProcess, FakeTimer
    qt.Qt = types.SimpleNamespace(WaitCursor=3)
    qt.QUrl = types.SimpleNamespace(fromLocalFile=lambda path: types.SimpleNamespace(toString=lambda: f"file://{path}"))
    return qt


def _scripted_module_base() -> types.ModuleType:
    base = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent) -> None:
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None) -> None:
            pass

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    class ScriptedLoadableModuleTest:
        pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
                ScriptedLoadableModuleTest):
        setattr(base, cls.__name__, cls)
    return base


def _parameter_wrapper_module() -> types.ModuleType:
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.Choice = lambda choices: ("choices", list(choices))
    wrapper.WithinRange = lambda low, high: ("range", (low, high))
    wrapper.parameterNodeWrapper = lambda cls: cls
    return wrapper


def _i18n_module() -> types.ModuleType:
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    return i18n


class FakeApp:
    """slicer.app stand-in: a temporary folder, a Slicer home, and signal connections that are recorded."""

    def __init__(self, temporary_path: Path, slicer_home: Path) -> None:
        self.temporaryPath, self.slicerHome = str(temporary_path), str(slicer_home)
        self.connections = []
        self.children = []  # QObjects created with this parent
        self.majorVersion, self.minorVersion = 5, 10

    def connect(self, signal: str, slot) -> None:
        self.connections.append((signal, slot))

    def setOverrideCursor(self, cursor) -> None:
        pass

    def restoreOverrideCursor(self) -> None:
        pass

    def testingEnabled(self) -> bool:
        return True  # slicer.util.tryWithErrorDisplay then re-raises instead of opening a dialog


def load_module(path: Path, monkeypatch, tmp_path: Path, name: str | None = None,
                keep_app: bool = False) -> types.ModuleType:
    """Import a Slicer module file with the stand-ins installed (undone after the test by monkeypatch).

    `keep_app`: leave the slicer.app the test set (e.g. one of another version) instead of the stand-in."""
    monkeypatch.setitem(sys.modules, "qt", _qt_module())
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _scripted_module_base())
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", _parameter_wrapper_module())
    monkeypatch.setitem(sys.modules, "slicer.i18n", _i18n_module())
    (tmp_path / "slicer_temp").mkdir(exist_ok=True)
    (tmp_path / "slicer_home" / "bin").mkdir(parents=True, exist_ok=True)
    if not keep_app:
        monkeypatch.setattr(slicer, "app", FakeApp(tmp_path / "slicer_temp", tmp_path / "slicer_home"),
                            raising=False)
    FakeProcess.instances.clear()
    FakeTimer.shots.clear()
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
