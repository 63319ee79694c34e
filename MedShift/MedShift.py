"""MedShift: translate X-ray radiographs between imaging domains with a class-conditional flow-matching model.

Module, widget, logic and self-test in one file, as Slicer's scripted-module template has them. The
widget only wires MedShift.ui to the parameter node; the logic takes nodes and a TranslationSettings, so
every panel action also runs from the Python console:

    from MedShiftLib.settings import TranslationSettings
    logic = slicer.util.getModuleLogic("MedShift")
    out = logic.translateVolume(getNode("XR"), TranslationSettings("sim-low", "clinical-normal", tau=0.6))

The Slicer-side helpers (nodes <-> radiographs, the background job, CT projection, the panel's
parameters) live in the MedShiftSlicer package beside this file; the engine in MedShiftLib. Nothing
here imports pydicom, torch or safetensors when Slicer starts (Testing/test_slicer_startup.py blocks them and
imports this file): what Slicer's process loads stays loaded, so importing Slicer's bundled pydicom 2.4 here
would make the pydicom 3 the worker needs a restart away. The panel reads the model's header without torch
and runs every translation in a PythonSlicer worker. In a Slicer older than 5.10 the import stops with a
message saying so (MedShiftSlicer/__init__.py). docs/slicer.md lists the Slicer, CTK and PythonQt behaviour
this file relies on, with the source lines that show it.
"""
import logging
import os
import shutil
import time
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from MedShiftLib.errors import MedShiftError
from MedShiftLib.settings import RECOMMENDED, SCHEDULES, SETTING_RANGES, SOLVERS, TranslationSettings
from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS
from MedShiftSlicer import background_job, ct_projection, model_cache, node_translation, requirements, volume_nodes
from MedShiftSlicer.parameters import (
    PRESET_BUTTONS,
    FrameChoice,
    apply_preset,
    frame_selection,
    panel_device_choices,
    settings_from_parameters,
)

README_URL = "https://github.com/medshift/SlicerMedShift#readme"
SAMPLE_DATA = [
    # (sample name, file in Resources/SampleData, node name): a simulated sim-low skull radiograph, and the
    # head phantom CT for CT projection
    ("MedShiftRadiograph", "MedShiftSkullSimLow.nrrd", "MedShiftSkullSimLow"),
    ("MedShiftHeadPhantomCT", "MedShiftHeadPhantomCT.nrrd", "MedShiftHeadPhantomCT"),
]


#
# MedShift
#

class MedShift(ScriptedLoadableModule):
    """Module description shown in Slicer's help and acknowledgement panels."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedShift")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedShift contributors"]
        self.parent.helpText = _("""
Translates X-ray radiographs between imaging domains (simulated and clinical radiographs, dose levels)
with one class-conditional flow-matching model: the image is taken back to time tau under its source
domain and regenerated under the target domain. tau 0.6 keeps structure, 0.3 gives more realism.
A CT volume can be projected into a simulated radiograph first (CT projection).
See the <a href="{url}">MedShift documentation</a>.
""").format(url=README_URL)
        self.parent.acknowledgementText = _("""
MedShift follows <i>MedShift: Implicit Conditional Transport for X-Ray Domain Adaptation</i>,
Caetano, Viviers et al., ICCV 2025 workshops (<a href="https://arxiv.org/abs/2508.21435">arXiv 2508.21435</a>).
Please cite it when you use this extension in your work.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the shipped sample radiograph and head phantom CT to the Sample Data module (offline, file:// URIs)."""
    import SampleData

    moduleDir = os.path.dirname(__file__)
    iconPath = os.path.join(moduleDir, "Resources", "Icons", "MedShift.png")
    for sampleName, fileName, nodeName in SAMPLE_DATA:
        path = os.path.join(moduleDir, "Resources", "SampleData", fileName)
        if not os.path.isfile(path):
            logging.warning(f"MedShift sample data {path} is missing; not registered")
            continue
        # Only the parameters registerCustomSampleDataSource has (Slicer 5.10-5.13): no description.
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="MedShift",
            sampleName=sampleName,
            thumbnailFileName=iconPath,
            uris=qt.QUrl.fromLocalFile(path).toString(),
            fileNames=fileName,
            nodeNames=nodeName,
            checksums="SHA256:" + slicer.util.computeChecksum("SHA256", path),
        )


#
# MedShiftParameterNode
#

@parameterNodeWrapper
class MedShiftParameterNode:
    """Everything the panel shows; saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    frames: FrameChoice = FrameChoice.single  # saved by name: "single", "all", "one"
    frameIndex: Annotated[int, WithinRange(0, 100000)] = 0
    modelPath: str = ""  # "" = the bundled model
    sourceDomain: str = "sim-low"
    targetDomain: str = "clinical-normal"
    # translation settings: choices and defaults from MedShiftLib.settings (MedShiftSlicer.parameters pairs the names)
    tau: Annotated[float, WithinRange(0.0, 0.95)] = RECOMMENDED["tau"]
    guidanceScale: Annotated[float, WithinRange(*SETTING_RANGES["guidance_scale"])] = RECOMMENDED["guidance_scale"]
    solver: Annotated[str, Choice(list(SOLVERS))] = RECOMMENDED["solver"]
    steps: Annotated[int, WithinRange(*SETTING_RANGES["steps"])] = RECOMMENDED["steps"]
    schedule: Annotated[str, Choice(list(SCHEDULES))] = RECOMMENDED["schedule"]
    noiseRenewal: Annotated[float, WithinRange(*SETTING_RANGES["noise_renewal"])] = RECOMMENDED["noise_renewal"]
    contrastTransfer: bool = RECOMMENDED["contrast_transfer"]
    noiseMatching: bool = RECOMMENDED["noise_matching"]
    seed: Annotated[int, WithinRange(*SETTING_RANGES["seed"])] = RECOMMENDED["seed"]
    device: Annotated[str, Choice(panel_device_choices())] = "auto"  # "mps" on Apple-silicon Macs only
    tileSize: Annotated[int, WithinRange(*SETTING_RANGES["tile_size"])] = RECOMMENDED["tile_size"]
    outputVolume: vtkMRMLScalarVolumeNode
    showSideBySide: bool = False  # switch the layout after a run only when asked
    ctVolume: vtkMRMLScalarVolumeNode
    primaryAngleDeg: Annotated[float, WithinRange(-40.0, 40.0)] = 0.0
    secondaryAngleDeg: Annotated[float, WithinRange(-40.0, 40.0)] = 0.0
    sourceDetectorDistanceMm: Annotated[float, WithinRange(850.0, 1500.0)] = 1200.0
    detectorPixels: Annotated[int, WithinRange(64, 2048)] = 256
    projectionDomain: Annotated[str, Choice(list(SIMULATOR_DOMAINS))] = SIMULATOR_DOMAINS[0]


def frameSelection(parameterNode):
    """The logic's frame argument for the panel's Frames choice: None, 'all' or a frame number."""
    return frame_selection(parameterNode.frames, parameterNode.frameIndex)


#
# MedShiftWidget
#

class MedShiftWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds MedShift.ui to the parameter node and forwards buttons to the logic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._showingModel = False
        self._runInput = None  # the input of the running translation, whatever the selector shows meanwhile

    def setup(self) -> None:
        """Load the .ui, create the logic, connect signals."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedShift.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MedShiftLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.modelPathLineEdit.filters = ctkPathLineEditFiles()
        self.ui.modelPathLineEdit.nameFilters = ["MedShift checkpoint (*.safetensors)"]
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        # ctkPathLineEdit emits nothing for an emptied field (only for text its validator accepts): going back
        # to the bundled model needs a button
        self.ui.bundledModelButton.connect("clicked()", self.onBundledModel)
        self.ui.sourceDomainComboBox.connect("currentTextChanged(QString)", self.onDomainsChanged)
        self.ui.targetDomainComboBox.connect("currentTextChanged(QString)", self.onDomainsChanged)
        self.ui.tauRealismButton.connect("clicked()", lambda: self._setTau(0.3))
        self.ui.tauBalancedButton.connect("clicked()", lambda: self._setTau(0.45))
        self.ui.tauStructureButton.connect("clicked()", lambda: self._setTau(0.6))
        for buttonName, preset in PRESET_BUTTONS.items():
            getattr(self.ui, buttonName).connect("clicked()", lambda preset=preset: self._applyPreset(preset))
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.updateDeviceInfo)
        self.ui.translateButton.connect("clicked(bool)", self.onTranslateButton)
        self.ui.projectButton.connect("clicked(bool)", self.onProjectButton)
        self.ui.progressBar.hide()

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed: no worker may outlive Slicer."""
        self.logic.cancelBackgroundTranslation(killNow=True)
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: the running translation's input goes, so it stops now."""
        self.logic.cancelBackgroundTranslation(killNow=True)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure the parameter node exists and is observed; pick a first radiograph."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        """Bind the GUI to a parameter node and observe it."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a SlicerParameterName property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            # The model path and the domain lists are filled from the model, so they cannot be bound (the
            # wrapper binds a combo box only to a fixed Choice): show this node's model and domains by hand.
            self.onModelPathChanged(self._parameterNode.modelPath)
            self._checkCanApply()

    def _setTau(self, value: float) -> None:
        self._parameterNode.tau = value

    def _applyPreset(self, name: str) -> None:
        apply_preset(self._parameterNode, name)

    def onBundledModel(self) -> None:
        """Go back to the bundled model."""
        self.onModelPathChanged("")

    def onModelPathChanged(self, path: str) -> None:
        """Show the model's domains in the source/target lists (read from its header, no torch needed).

        A path that is no usable checkpoint (e.g. still being typed) is kept in the field but changes neither
        the model nor the chosen domains; the label says what is wrong with it."""
        if self._parameterNode is None:
            return
        path = path or ""
        try:
            domains = self.logic.modelDomains(path or None)
            self.ui.modelInfoLabel.text = _("Domains: {domains}").format(domains=", ".join(domains))
        except Exception as exc:  # a UI boundary: whatever happens, the panel keeps working
            if path != self._parameterNode.modelPath:  # a path being typed or a wrong file: nothing changes
                self.ui.modelInfoLabel.text = _("{problem} (still using: {model})").format(
                    problem=exc, model=self._parameterNode.modelPath or _("the bundled model"))
                return
            self.ui.modelInfoLabel.text = str(exc)
            domains = []  # the node's own model is unusable (moved or damaged): no domains to offer
        self._parameterNode.modelPath = path
        if self.ui.modelPathLineEdit.currentPath != path:
            self.ui.modelPathLineEdit.currentPath = path
        for comboBox, current in ((self.ui.sourceDomainComboBox, self._parameterNode.sourceDomain),
                                  (self.ui.targetDomainComboBox, self._parameterNode.targetDomain)):
            wasBlocked = comboBox.blockSignals(True)
            comboBox.clear()
            comboBox.addItems(list(domains))
            comboBox.currentIndex = comboBox.findText(current)
            comboBox.blockSignals(wasBlocked)
        if domains:  # an empty list must not wipe the domains the node has chosen
            self.onDomainsChanged()
        self.updateDeviceInfo()

    def onDomainsChanged(self, text: str = "") -> None:
        """Store the chosen source and target domains."""
        if self._parameterNode is None:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.sourceDomain = self.ui.sourceDomainComboBox.currentText
            self._parameterNode.targetDomain = self.ui.targetDomainComboBox.currentText
        self._checkCanApply()

    def updateDeviceInfo(self, index: int = 0) -> None:
        """Say what the device the combo box shows means (the device a run used, once one has reported it).

        Read from the combo box itself: this handler may run before the parameter-node connector has stored
        the new choice (PythonQt calls a signal's handlers in the order they were connected)."""
        if self._parameterNode is None:
            return
        try:
            self.ui.deviceInfoLabel.text = self.logic.deviceDescription(self.ui.deviceComboBox.currentText)
        except Exception as exc:  # a UI boundary: a label must never break the panel
            self.ui.deviceInfoLabel.text = str(exc)

    def _showDomains(self) -> None:
        """Select the parameter node's source and target in the domain lists (after a scene load, a console change)."""
        p = self._parameterNode
        if self.ui.modelPathLineEdit.currentPath != p.modelPath and not self._showingModel:
            self._showingModel = True  # onModelPathChanged modifies the node, which calls back here
            try:
                self.onModelPathChanged(p.modelPath)
            finally:
                self._showingModel = False
            return
        for comboBox, value in ((self.ui.sourceDomainComboBox, p.sourceDomain),
                                (self.ui.targetDomainComboBox, p.targetDomain)):
            if comboBox.currentText != value:
                wasBlocked = comboBox.blockSignals(True)
                comboBox.currentIndex = comboBox.findText(value)
                comboBox.blockSignals(wasBlocked)

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Enable Translate only when the inputs are complete; the tooltip says what is missing."""
        if self._parameterNode is None:
            return
        p = self._parameterNode
        self._showDomains()
        self.ui.frameIndexSpinBox.enabled = p.frames == FrameChoice.one
        self._checkCanProject()
        if self.logic.isRunning:
            self.ui.translateButton.text = _("Cancel")
            self.ui.translateButton.toolTip = _("Stop the running translation; nothing is added to the scene")
            self.ui.translateButton.enabled = True
            return
        self.ui.translateButton.text = _("Translate")
        problem = node_translation.translation_input_problem(p.inputVolume, frameSelection(p), p.sourceDomain,
                                                             p.targetDomain)
        node = p.inputVolume
        if node is not None and node.GetImageData() is not None:
            count = volume_nodes.frame_count(node)
            dims = node.GetImageData().GetDimensions()
            self.ui.inputInfoLabel.text = _("{cols} x {rows} pixels, {count} frame(s)").format(
                cols=dims[0], rows=dims[1], count=count)
        else:
            self.ui.inputInfoLabel.text = ""
        self.ui.translateButton.enabled = problem is None
        self.ui.translateButton.toolTip = problem or _("Translate {source} -> {target} at tau {tau:g}").format(
            source=p.sourceDomain, target=p.targetDomain, tau=p.tau)

    def onTranslateButton(self) -> None:
        """Start the translation in the background, or cancel the running one."""
        if self.logic.isRunning:
            self.logic.cancelBackgroundTranslation()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("MedShift could not start the translation."), waitCursor=True):
                if not self.logic.setupPythonRequirements():
                    return
                self.ui.statusLabel.text = _("Starting...")
                self.ui.progressBar.value = 0
                self.ui.progressBar.show()
                self._runInput = p.inputVolume
                self.logic.startBackgroundTranslation(
                    p.inputVolume, settings_from_parameters(p), device=p.device, modelPath=p.modelPath or None,
                    frame=frameSelection(p), outputNode=p.outputVolume, onProgress=self.onProgress,
                    onFinished=self.onFinished)
        finally:  # also when the start failed (tryWithErrorDisplay shows the error and raises it again)
            if not self.logic.isRunning:
                self.ui.progressBar.hide()
                if self.ui.statusLabel.text == _("Starting..."):
                    self.ui.statusLabel.text = ""
            self._checkCanApply()

    def onProgress(self, done: int, total: int, message: str) -> None:
        """Show solver steps done and the time left."""
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done
        self.ui.statusLabel.text = message

    def onFinished(self, outputNode, errorMessage: str, outOfMemory: bool) -> None:
        """Show the result (beside the input it was translated from, when asked), or say why there is none."""
        inputNode, self._runInput = self._runInput, None
        self.ui.progressBar.hide()
        self.updateDeviceInfo()
        if self._parameterNode is None:  # the scene was closed meanwhile
            return
        if outputNode is not None and self._parameterNode.outputVolume is None:
            self._parameterNode.outputVolume = outputNode  # a new volume goes into the output selector
        self._checkCanApply()
        if outputNode is not None:
            self.ui.statusLabel.text = _("Done: {name}").format(name=outputNode.GetName())
            if self.logic.lastWarnings:
                self.ui.statusLabel.text += "\n" + _("Warning: {text}").format(text="\n".join(self.logic.lastWarnings))
            if self._parameterNode.showSideBySide:
                self.logic.showSideBySide(inputNode, outputNode)
            else:
                slicer.util.setSliceViewerLayers(background=outputNode, fit=True)
        elif outOfMemory and self._parameterNode.device != "cpu":
            self.ui.statusLabel.text = errorMessage
            if slicer.util.confirmOkCancelDisplay(
                    _("The GPU ran out of memory. Switch to the CPU and halve the tile size? "
                      "Then click Translate again."), _("MedShift")):
                self._parameterNode.device = "cpu"
                self._parameterNode.tileSize = max(64, self._parameterNode.tileSize // 2)
        else:
            self.ui.statusLabel.text = errorMessage
            if errorMessage and errorMessage != self.logic.CANCELLED_MESSAGE:
                slicer.util.errorDisplay(errorMessage, windowTitle=_("MedShift"))

    def _checkCanProject(self) -> None:
        """Enable Project CT only when a CT is chosen and no projection runs (on every parameter-node change)."""
        chosen = self._parameterNode is not None and self._parameterNode.ctVolume is not None
        running = self.logic.isProjecting
        self.ui.projectButton.enabled = chosen and not running
        self.ui.projectButton.text = _("Projecting...") if running else _("Project CT")
        self.ui.projectButton.toolTip = (_("Make a radiograph from the CT and select it as the translation input")
                                         if chosen else _("Choose a CT volume first"))

    def onProjectButton(self) -> None:
        """Project the CT into a simulated radiograph in a worker process (Slicer stays responsive)."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("MedShift could not project the CT."), waitCursor=True):
            if not self.logic.setupPythonRequirements():
                return
            self.logic.startBackgroundProjection(p.ctVolume, p.primaryAngleDeg, p.secondaryAngleDeg,
                                                 p.sourceDetectorDistanceMm, p.detectorPixels,
                                                 domain=p.projectionDomain, onFinished=self.onProjectionFinished)
            self.ui.statusLabel.text = _("Projecting the CT...")
        self._checkCanProject()

    def onProjectionFinished(self, node, errorMessage: str) -> None:
        """Make the projected radiograph the translation input, or say why there is none."""
        if self._parameterNode is None:
            return
        self._checkCanProject()
        if node is None:
            self.ui.statusLabel.text = errorMessage
            slicer.util.errorDisplay(errorMessage, windowTitle=_("MedShift"))
            return
        p = self._parameterNode
        self.ui.statusLabel.text = _("Projected: {name}").format(name=node.GetName())
        with slicer.util.NodeModify(p):
            p.inputVolume = node
            p.frames = FrameChoice.single
            if self.ui.sourceDomainComboBox.findText(p.projectionDomain) >= 0:
                p.sourceDomain = p.projectionDomain
                self.ui.sourceDomainComboBox.currentIndex = self.ui.sourceDomainComboBox.findText(p.projectionDomain)
        slicer.util.setSliceViewerLayers(background=node, fit=True)


def ctkPathLineEditFiles():
    """ctkPathLineEdit filter flags for existing readable files."""
    import ctk

    return ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable


#
# MedShiftLogic
#

class MedShiftLogic(ScriptedLoadableModuleLogic):
    """Console API and the panel's background run. Takes nodes, TranslationSettings and plain values, never widgets.

    Blocking (console): translateVolume, translateVolumes, translateFiles, projectCT, modelDomains.
    Background (panel): startBackgroundTranslation runs the same translation as the project's command
    (`PythonSlicer -m MedShiftLib.cli translate ... --machine-progress`) on the node's frames written to a
    temporary folder, reads its PROGRESS lines, and adds the output node only when the whole result is
    there; cancelBackgroundTranslation asks it to stop and kills it (with its launcher) if it does not.
    """

    CANCELLED_MESSAGE = background_job.CANCELLED_MESSAGE

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._run = None  # the running translation the panel waits for
        self._projection = None  # the running CT projection
        self.lastWarnings: list[str] = []  # what the last background run said about its input
        self.usedDevices: dict[str, str] = {}  # device choice -> what the worker said it ran on (its DEVICE line)

    def getParameterNode(self):
        """The module's parameter node, wrapped."""
        return MedShiftParameterNode(super().getParameterNode())

    # ---- dependencies ----------------------------------------------------------------------------

    @staticmethod
    def missingPythonRequirements() -> list:
        """The requirements of Resources/requirements.txt (torch included) not installed, or installed too old."""
        return requirements.unmet(requirements.read_requirements())

    def setupPythonRequirements(self, askConfirmation: bool = True) -> bool:
        """Install what Resources/requirements.txt asks for and this Slicer lacks, after one confirmation.

        torch comes through the PyTorch extension (the build that fits the GPU driver) without a dialog of
        its own, the others through pip. Returns False when the user declines; MedShiftError when the
        PyTorch extension is missing. When a package Slicer's own process has loaded (and needs) was upgraded,
        Slicer must restart: the user is offered the restart (False when declined); without confirmation
        (askConfirmation=False, the self-test) that is a MedShiftError. pydicom only the worker needs: Slicer's
        bundled 2.4 may stay loaded (requirements.WORKER_ONLY).
        """
        torchRequirement, others = requirements.split_torch(requirements.read_requirements())
        torchMissing = requirements.unmet([torchRequirement]) if torchRequirement is not None else []
        packages = requirements.unmet(others)
        if not torchMissing and not packages:
            return True
        if torchMissing:
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                raise MedShiftError(
                    "MedShift needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart "
                    "Slicer and click Translate again: MedShift then installs torch through it (CPU or the CUDA "
                    "build that fits your GPU driver).") from None
        wanted = [f"{torchMissing[0]} (through the PyTorch extension)"] if torchMissing else []
        question = _("MedShift needs these Python packages: {packages}. Install them now?")
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                question.format(packages=", ".join(wanted + packages)), _("MedShift")):
            return False
        if torchMissing:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=str(torchRequirement.specifier))
            if torch is None:
                raise MedShiftError("PyTorch could not be installed; see the Python console for what went wrong")
        if packages:
            slicer.util.pip_install(packages)
            loaded = requirements.restart_needed(packages)
            if loaded:
                message = _("Installed {packages}; Slicer had already loaded an older version, so it must restart "
                            "before MedShift can use it.").format(packages=", ".join(loaded))
                if not askConfirmation:
                    raise MedShiftError(message)
                if slicer.util.confirmOkCancelDisplay(message + "\n\n" + _("Restart Slicer now?"), _("MedShift")):
                    slicer.util.restart()
                return False
        return True

    # ---- models --------------------------------------------------------------------------------------

    def modelDomains(self, modelPath=None) -> list:
        """Domain names of a checkpoint (None: the bundled model), in label order."""
        return list(model_cache.model_domains(modelPath))

    DEVICE_MEANINGS = {
        "auto": _("the CUDA GPU when PyTorch sees one, else the CPU"),
        "cpu": _("the CPU"),
        "cuda": _("the CUDA GPU (needs PyTorch's CUDA build)"),
        "mps": _("the Apple GPU (MPS)"),
    }

    def deviceDescription(self, device: str = "auto") -> str:
        """What `device` means, e.g. 'last run: CUDA: NVIDIA RTX A4000' once a run on it has reported its device.

        Never imports torch: the worker decides and names the device in its DEVICE line (usedDevices)."""
        if device in self.usedDevices:
            return _("last run: {device}").format(device=self.usedDevices[device])
        return self.DEVICE_MEANINGS.get(device, device)

    # ---- console API ---------------------------------------------------------------------------------

    def translateVolume(self, inputNode, settings: TranslationSettings, modelPath=None, device="auto", frame=None,
                        outputNode=None, progressCallback=None, cancelToken=None):
        """Translate a radiograph volume node with `settings` and return the output node (blocking).

        settings: MedShiftLib.settings.TranslationSettings, e.g. TranslationSettings("sim-low", "clinical-normal",
        tau=0.45), or TranslationSettings(...).with_preset("matched-contrast-and-noise") for a panel preset.
        The output lies on the input's grid (same spacing, origin and directions), holds the input's value
        range and type, and is named like 'XR sim-low->clinical-normal tau0.6' unless `outputNode` is given.
        frame: None for a single radiograph, 'all' to translate every frame of a cine into a volume of the
        same shape, or a frame number. progressCallback(done, total) counts solver steps; cancelToken
        (MedShiftLib.engine.ode_solvers.CancelToken) stops the run with TranslationCancelled and adds no node.
        """
        return node_translation.translate_volume_node(inputNode, settings, model_path=modelPath, device=device,
                                                      frame=frame, output_node=outputNode, progress=progressCallback,
                                                      cancel=cancelToken)

    def translateVolumes(self, inputNodes, settings: TranslationSettings, **kwargs):
        """Translate several volume nodes with the same settings; returns the output nodes in order."""
        return [self.translateVolume(node, settings, **kwargs) for node in inputNodes]

    def translateFiles(self, pathsOrFolder, outDir, settings: TranslationSettings, modelPath=None, device="auto",
                       frame=None, overwrite=False):
        """Translate image files (or every image in folders) into outDir, same names and formats; returns paths.

        Every input is tried; when some could not be translated (or their outputs exist and overwrite is
        False) a MedShiftError lists them after the others were written."""
        from MedShiftLib.errors import MedShiftError
        from MedShiftLib.io.radiograph_files import radiograph_format
        from MedShiftLib.pipeline.file_translation import collect_inputs, translate_files
        if isinstance(pathsOrFolder, (str, os.PathLike)):
            pathsOrFolder = [pathsOrFolder]
        files = collect_inputs(pathsOrFolder)
        stale = requirements.loaded_too_old(["pydicom>=3.0"])  # Slicer's DICOM module loads its bundled pydicom
        if stale and any(path.is_file() and radiograph_format(path) == "dicom" for path in files):
            raise MedShiftError(
                f"Slicer's own Python has {stale[0]} loaded, too old to read these DICOM files: restart Slicer "
                "(slicer.util.restart()) after the first Translate has installed pydicom 3, or translate them with "
                "`PythonSlicer -m MedShiftLib.cli translate ...`, which starts a fresh Python")
        report = translate_files(files, outDir, settings, model_path=modelPath,
                                 device=device, frame=frame, overwrite=overwrite)
        if report.failed or report.skipped:
            problems = "; ".join(f"{path}: {why}" for path, why in report.skipped + report.failed)
            raise MedShiftError(f"{report.summary()}: {problems}")
        return report.written

    def projectCT(self, ctNode, primaryAngleDeg=0.0, secondaryAngleDeg=0.0, sourceDetectorDistanceMm=1200.0,
                  detectorPixels=256, domain="sim-low"):
        """A new radiograph node: a C-arm cone-beam projection of a CT (HU) rendered in a simulator domain.

        primaryAngleDeg: LAO (+) / RAO (-); secondaryAngleDeg: cranial (+) / caudal (-); both within +-40.
        """
        return ct_projection.project_ct_node(ctNode, primaryAngleDeg, secondaryAngleDeg, sourceDetectorDistanceMm,
                                             int(detectorPixels), domain=domain)

    @property
    def isProjecting(self) -> bool:
        """True while a background CT projection runs."""
        return self._projection is not None

    def startBackgroundProjection(self, ctNode, primaryAngleDeg=0.0, secondaryAngleDeg=0.0,
                                  sourceDetectorDistanceMm=1200.0, detectorPixels=256, domain="sim-low",
                                  onFinished=None) -> None:
        """projectCT in a PythonSlicer worker, without blocking Slicer; onFinished(node, errorMessage) once at the end.

        The CT is written to a temporary NRRD, the worker (MedShiftSlicer.projection_worker) runs the same
        projection code and writes the radiograph, which is read back into a new node."""
        import tempfile
        from pathlib import Path

        import SimpleITK as sitk

        from MedShiftSlicer import projection_worker

        if self.isProjecting:
            raise MedShiftError("a CT projection is already running; wait for it")
        image = ct_projection.ct_image_of_node(ctNode)
        executable = pythonSlicerExecutable()
        folder = Path(tempfile.mkdtemp(prefix="MedShift-projection-", dir=slicer.app.temporaryPath))
        sitk.WriteImage(image, str(folder / "ct.nrrd"))
        state = dict(folder=folder, out=folder / "radiograph.nrrd", ct=ctNode, text="",
                     name=ct_projection.projection_name(ctNode.GetName(), domain, primaryAngleDeg, secondaryAngleDeg),
                     onFinished=onFinished)
        state["worker"] = worker = background_job.WorkerProcess(
            background_job.MODULE_DIR, lambda text: self._addProjectionOutput(state, text),
            lambda exitCode, exitStatus, startError: self._endProjection(state, exitCode, startError))
        self._projection = state
        worker.start(executable, projection_worker.worker_arguments(
            folder / "ct.nrrd", state["out"], f"'{ctNode.GetName()}'", primaryAngleDeg, secondaryAngleDeg,
            sourceDetectorDistanceMm, detectorPixels, domain))

    def _addProjectionOutput(self, state, text: str) -> None:
        state["text"] += text

    def _endProjection(self, state, exitCode, startError) -> None:
        self._projection = None
        node, error = None, ""
        if startError is not None:
            error = _("The projection process could not start ({reason})").format(reason=startError)
        errors = [value for kind, value in map(background_job.parse_worker_line, state["text"].splitlines())
                  if kind == "error"]
        try:
            if not error and exitCode == 0 and state["out"].is_file():
                from MedShiftLib.io.radiograph_files import read_radiograph

                scene = state["ct"].GetScene()
                if scene is None:
                    raise MedShiftError("the CT volume was removed from the scene during the projection")
                node = volume_nodes.add_radiograph_volume(scene, read_radiograph(state["out"]), state["name"])
            elif not error:
                error = errors[-1] if errors else _("the CT projection stopped unexpectedly (exit code {code}); see "
                                                    "the Python console").format(code=exitCode)
        except Exception as exc:  # anything must still end the projection and say what happened
            logging.exception("MedShift: reading the projection failed")
            error = str(exc)
        shutil.rmtree(state["folder"], ignore_errors=True)
        if state["onFinished"]:
            state["onFinished"](node, error)

    # ---- background run (panel) ------------------------------------------------------------------------

    @property
    def isRunning(self) -> bool:
        """True from the start of a background translation until its worker has ended (a cancelled one too)."""
        return self._run is not None

    def startBackgroundTranslation(self, inputNode, settings: TranslationSettings, device="auto", modelPath=None,
                                   frame=None, outputNode=None, onProgress=None, onFinished=None) -> None:
        """Run translateVolume's translation as `medshift translate` in a PythonSlicer process, without blocking.

        onProgress(done, total, message) gets solver steps and an ETA; onFinished(outputNode, errorMessage,
        outOfMemory) runs exactly once at the end (outputNode None on error or cancel), also when the process
        cannot start. Loads no torch into Slicer's process: the model's domains come from its header."""
        if self.isRunning:
            raise MedShiftError("a translation is already running; wait for it or cancel it")
        volume_nodes.check_output_node(inputNode, outputNode)
        frames = volume_nodes.volume_frames(inputNode, frame)
        model_cache.check_settings_for_model(modelPath, settings)  # domain and option errors before starting
        executable = pythonSlicerExecutable()
        job = background_job.BackgroundTranslation.in_temporary_folder(slicer.app.temporaryPath, frames, settings,
                                                                       modelPath, device)
        run = dict(job=job, input=inputNode, output=outputNode, frame=frame, device=device,
                   onProgress=onProgress, onFinished=onFinished, started=time.monotonic(), killWhenKnown=False)
        run["worker"] = worker = background_job.WorkerProcess(
            job.working_directory, lambda text: self._onProcessOutput(run, text),
            lambda exitCode, exitStatus, startError: self._onProcessEnded(run, exitCode, exitStatus, startError))
        self._run = run
        worker.start(executable, job.arguments())

    def cancelBackgroundTranslation(self, killNow=False) -> None:
        """Ask the running translation to stop (it stops within one solver step); no node is added.

        A worker still running after background_job.KILL_AFTER_SECONDS (or at once with killNow, when the
        scene or Slicer closes) is killed together with its launcher, but never before it has said its PID:
        until then the cancel file, kept until the worker exits, stops it."""
        run = self._run
        if run is None:
            return
        run["job"].request_cancel()
        if killNow:
            self._kill(run)
        else:
            qt.QTimer.singleShot(int(background_job.KILL_AFTER_SECONDS * 1000), lambda: self._kill(run))

    def _kill(self, run) -> None:
        """Kill a run's worker and launcher now, or as soon as the worker has printed its PID."""
        if run["worker"].ended:
            return
        if not run["job"].kill(run["worker"].launcher_pid()):
            run["killWhenKnown"] = True

    def _onProcessOutput(self, run, text: str) -> None:
        for kind, value in run["job"].read(text):
            if kind == "pid" and run["killWhenKnown"]:
                self._kill(run)
            elif kind == "device":
                self.usedDevices[run["device"]] = value
            elif kind == "progress" and run["onProgress"]:
                done, total = value
                eta = background_job.format_eta(
                    background_job.eta_seconds(time.monotonic() - run["started"], done, total))
                device = run["job"].device_description or "device"
                run["onProgress"](done, total, f"step {done}/{total} on {device}  {eta}".strip())
            elif kind == "warning":
                logging.warning(f"MedShift: {value}")
            elif kind == "log":
                logging.info(f"MedShift worker: {value}")

    def _onProcessEnded(self, run, exitCode, exitStatus, startError) -> None:
        if startError is not None:
            message = _("The translation process could not start ({reason}): {program}").format(
                reason=startError, program=run["worker"].process.program())
            self._endBackgroundRun(run, None, message, outOfMemory=False, workerGone=True)
            return
        outputNode, error = None, ""
        job = run["job"]
        try:
            translated = job.result(exitCode, crashed=exitStatus == qt.QProcess.CrashExit)
            outputNode = node_translation.add_translation_result(run["input"], job.frames, translated,
                                                                 run["frame"], job.settings, run["output"])
        except MedShiftError as exc:
            error = str(exc)
        except Exception as exc:  # anything else must still end the run and say what happened
            logging.exception("MedShift: adding the translation failed")
            error = _("The translation could not be added to the scene: {error}").format(error=exc)
        # The launcher ends when its worker does, unless it was killed before the worker's PID was known (by Qt
        # when Slicer quits during a cancel): then the worker may live on, and the cancel file must stay for it.
        workerGone = bool(job.worker_pid) or exitStatus != qt.QProcess.CrashExit or not job.cancel_requested
        self._endBackgroundRun(run, outputNode, error, outOfMemory=job.out_of_memory(exitCode), workerGone=workerGone)

    def _endBackgroundRun(self, run, outputNode, error: str, outOfMemory: bool, workerGone: bool) -> None:
        """Forget the run, delete its job folder (when its worker has exited) and tell the panel (once per run:
        its WorkerProcess ends once)."""
        self._run = None
        self.lastWarnings = list(run["job"].warnings)
        if workerGone:
            run["job"].remove()
        else:
            run["job"].request_cancel()
            logging.warning(f"MedShift: the worker may still be running; {run['job'].cancel_file} tells it to stop")
        if run["onFinished"]:
            run["onFinished"](outputNode, error, outOfMemory)

    # ---- display ---------------------------------------------------------------------------------------

    def showSideBySide(self, inputNode, outputNode) -> None:
        """Input left, translation right, linked views, same window/level."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None or inputNode is None or outputNode is None:
            return
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        views = [("Red", inputNode), ("Yellow", outputNode)]
        for viewName, node in views:
            sliceWidget = layoutManager.sliceWidget(viewName)
            if sliceWidget is None:
                continue
            compositeNode = sliceWidget.mrmlSliceCompositeNode()
            compositeNode.SetBackgroundVolumeID(node.GetID())
            compositeNode.SetForegroundVolumeID(None)
            compositeNode.SetLinkedControl(True)
            sliceWidget.mrmlSliceNode().RotateToVolumePlane(node)  # the radiograph's own plane, whatever it is
            sliceWidget.sliceLogic().FitSliceToAll()
        inputDisplay, outputDisplay = inputNode.GetDisplayNode(), outputNode.GetDisplayNode()
        if inputDisplay and outputDisplay:
            outputDisplay.SetAutoWindowLevel(False)
            outputDisplay.SetWindowLevel(inputDisplay.GetWindow(), inputDisplay.GetLevel())


def pythonSlicerExecutable() -> str:
    """Path of PythonSlicer (Slicer's Python with its packages), for the background worker; MedShiftError if none."""
    app = getattr(slicer, "app", None)
    return background_job.python_slicer_executable(getattr(app, "slicerHome", "") if app is not None else "")


#
# MedShiftTest
#

class MedShiftTest(ScriptedLoadableModuleTest):
    """Self-test: translate the sample radiograph with the model default_model_path finds."""

    def setUp(self):
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests."""
        self.setUp()
        self.test_translateSampleRadiograph()
        self.setUp()
        self.test_errorsAreActionable()

    def test_translateSampleRadiograph(self):
        """The sample radiograph translates into a new node on its grid that differs from it."""
        import numpy as np
        import SampleData

        self.assertTrue(MedShiftLogic().setupPythonRequirements(askConfirmation=False))
        registerSampleData()
        inputNode = SampleData.downloadSample("MedShiftRadiograph")
        self.delayDisplay("Loaded sample radiograph")
        before = slicer.util.arrayFromVolume(inputNode).copy()
        logic = MedShiftLogic()
        domains = logic.modelDomains()
        source, target = ("sim-low", "clinical-normal") if {"sim-low", "clinical-normal"} <= set(domains) \
            else (domains[0], domains[-1])
        steps = []
        outputNode = logic.translateVolume(inputNode, TranslationSettings(source, target, tau=0.6, steps=2),
                                           device="cpu",
                                           progressCallback=lambda done, total: steps.append((done, total)))
        after = slicer.util.arrayFromVolume(outputNode)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(inputNode), before)
        self.assertEqual(after.shape, before.shape)
        self.assertEqual(after.dtype, before.dtype)
        self.assertEqual(outputNode.GetSpacing(), inputNode.GetSpacing())
        self.assertEqual(outputNode.GetOrigin(), inputNode.GetOrigin())
        inputMatrix, outputMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        inputNode.GetIJKToRASMatrix(inputMatrix)
        outputNode.GetIJKToRASMatrix(outputMatrix)
        for r in range(4):
            for c in range(4):
                self.assertAlmostEqual(inputMatrix.GetElement(r, c), outputMatrix.GetElement(r, c))
        self.assertGreater(float(np.mean(np.abs(after.astype(float) - before.astype(float)))), 1.0)
        self.assertEqual(steps[-1], (4, 4))
        self.assertIn(f"{source}->{target} tau0.6", outputNode.GetName())
        logic.showSideBySide(inputNode, outputNode)
        self.delayDisplay("Translation test passed")

    def test_errorsAreActionable(self):
        """A CT-like volume, an unknown domain and a colour volume are refused with a message and no node."""
        import numpy as np

        from MedShiftLib.errors import DomainError, InputImageError

        self.assertTrue(MedShiftLogic().setupPythonRequirements(askConfirmation=False))
        logic = MedShiftLogic()
        stack = np.random.default_rng(0).integers(0, 1000, (8, 32, 32)).astype(np.int16)
        volume = slicer.util.addVolumeFromArray(stack, name="volume")
        radiograph = slicer.util.addVolumeFromArray(np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32),
                                                    name="radiograph")
        colour = slicer.util.addVolumeFromArray(np.zeros((1, 8, 8, 3), np.uint8), name="colour",
                                                nodeClassName="vtkMRMLVectorVolumeNode")
        count = slicer.mrmlScene.GetNumberOfNodes()
        domains = logic.modelDomains()
        with self.assertRaisesRegex(InputImageError, "8 slices"):
            logic.translateVolume(volume, TranslationSettings(domains[0], domains[-1]), device="cpu")
        with self.assertRaisesRegex(DomainError, "this model knows"):
            logic.translateVolume(radiograph, TranslationSettings("no-such-domain", domains[-1]), device="cpu")
        with self.assertRaisesRegex(InputImageError, "Vector to Scalar Volume"):
            logic.translateVolume(colour, TranslationSettings(domains[0], domains[-1]), device="cpu")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("Error test passed")
