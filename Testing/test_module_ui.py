"""MedShift.ui against MedShift.py: widget names, parameter-node bindings, and the panel's settings."""
import ast
import os
import re
import typing
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from MedShiftSlicer.parameters import (
    PARAMETER_OF_SETTING,
    PRESET_BUTTONS,
    apply_preset,
    panel_device_choices,
    settings_from_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
UI_FILE = ROOT / "MedShift" / "Resources" / "UI" / "MedShift.ui"
MODULE_FILE = ROOT / "MedShift" / "MedShift.py"
NODE_TYPES = {"vtkMRMLScalarVolumeNode"}
ENUM_TYPES = {"FrameChoice"}


def ui_widgets() -> dict[str, ET.Element]:
    """Every widget of the .ui by object name."""
    tree = ET.parse(UI_FILE)
    return {w.get("name"): w for w in tree.iter("widget")}


def parameter_name(widget: ET.Element) -> str | None:
    """The widget's SlicerParameterName dynamic property, if any."""
    for prop in widget.findall("property"):
        if prop.get("name") == "SlicerParameterName":
            return prop.findtext("string")
    return None


def wrapper_fields() -> dict[str, ast.expr]:
    """Fields of the @parameterNodeWrapper class in MedShift.py with their annotations."""
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id: s.annotation for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in MedShift.py")


def evaluated_wrapper_fields() -> dict[str, dict]:
    """The wrapper's fields as Slicer would see them: {name: {"default": value, "choices": list or None}}.

    The class body is executed with MedShift.py's own MedShiftLib imports and stand-ins for Slicer's
    Choice and WithinRange markers, so values the panel derives from MedShiftLib.settings are evaluated.
    """
    tree = ast.parse(MODULE_FILE.read_text())
    namespace = {"Annotated": typing.Annotated, "vtkMRMLScalarVolumeNode": object,
                 "Choice": lambda choices: ("choices", list(choices)), "WithinRange": lambda *limits: ("range", limits)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("MedShiftLib", "MedShiftSlicer")):
            exec(compile(ast.Module([node], []), str(MODULE_FILE), "exec"), namespace)
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and any(
        getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list))
    wrapper.decorator_list = []
    exec(compile(ast.Module([wrapper], []), str(MODULE_FILE), "exec"), namespace)
    cls = namespace[wrapper.name]
    fields = {}
    for name, annotation in cls.__annotations__.items():
        markers = dict(getattr(annotation, "__metadata__", ()))
        fields[name] = {"default": getattr(cls, name, None), "choices": markers.get("choices")}
    return fields


def annotation_kind(annotation: ast.expr) -> tuple[str, set[str]]:
    """(base type name, names of the Annotated[...] markers) of a field annotation."""
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) == "Annotated":
        base, *markers = annotation.slice.elts
        return base.id, {m.func.id for m in markers if isinstance(m, ast.Call)}
    return annotation.id, set()


def module_constant(name: str):
    """A literal module-level constant of MedShift.py."""
    for node in ast.parse(MODULE_FILE.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"MedShift.py has no constant {name}")


def test_ui_is_valid_qt_designer_xml_rooted_in_a_mrml_widget():
    root = ET.parse(UI_FILE).getroot()
    assert root.tag == "ui" and root.findtext("class") == "MedShift"
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "MedShift"
    custom = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if c.startswith(("ctk", "qMRML"))} <= custom
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    combos = {name for name, w in ui_widgets().items() if w.get("class") == "qMRMLNodeComboBox"}
    assert combos and combos == receivers  # every node selector gets the scene


def test_every_widget_the_module_uses_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    missing = sorted(used - set(ui_widgets()))
    assert used and not missing, f"MedShift.py uses widgets missing from MedShift.ui: {missing}"


def test_every_bound_widget_names_a_wrapper_field_of_a_type_it_can_show():
    fields = wrapper_fields()
    bound = {name: (w.get("class"), parameter_name(w)) for name, w in ui_widgets().items() if parameter_name(w)}
    assert len(bound) >= 10
    for name, (cls, field) in bound.items():
        assert field in fields, f"{name} is bound to '{field}', which MedShiftParameterNode lacks"
        base, markers = annotation_kind(fields[field])
        # the connector each widget class gets in slicer.parameterNodeWrapper.guiConnectors
        if cls == "QComboBox":  # QComboBoxToStringableConnector needs a Choice, QComboBoxToEnumConnector an Enum
            assert "Choice" in markers or base in ENUM_TYPES, f"{name}: a QComboBox needs a Choice or an Enum field"
        elif cls == "ctkSliderWidget":
            assert base == "float" and "WithinRange" in markers, f"{name}: ctkSliderWidget needs a bounded float"
        elif cls == "QSpinBox":
            assert base == "int", f"{name}: QSpinBox shows an int"
        elif cls == "QDoubleSpinBox":
            assert base == "float", f"{name}: QDoubleSpinBox shows a float"
        elif cls == "QCheckBox":
            assert base == "bool", f"{name}: QCheckBox shows a bool"
        elif cls == "qMRMLNodeComboBox":
            assert base in NODE_TYPES, f"{name}: qMRMLNodeComboBox shows a node field"
        else:
            pytest.fail(f"{name}: no parameter-node connector for {cls}")
    assert len({field for _, field in bound.values()}) == len(bound), "two widgets bound to one field"


def test_fields_set_in_code_but_not_bound_are_the_dynamic_ones():
    bound = {parameter_name(w) for w in ui_widgets().values()} - {None}
    # the model path (ctkPathLineEdit, "" = bundled) and the domain lists (filled from the model) are wired in code
    assert set(wrapper_fields()) - bound == {"modelPath", "sourceDomain", "targetDomain"}


def test_panel_fields_take_their_choices_and_defaults_from_the_settings_module():
    from MedShiftLib.settings import DEVICE_CHOICES, RECOMMENDED, SCHEDULES, SOLVERS
    from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS

    fields = evaluated_wrapper_fields()
    for setting, parameter in PARAMETER_OF_SETTING.items():
        assert parameter in fields, f"{parameter} (for {setting}) is not a field of MedShiftParameterNode"
        if setting in RECOMMENDED:
            assert fields[parameter]["default"] == RECOMMENDED[setting], parameter
    assert fields["solver"]["choices"] == list(SOLVERS)
    assert fields["schedule"]["choices"] == list(SCHEDULES)
    assert fields["device"]["choices"] == panel_device_choices()
    assert set(panel_device_choices()) <= set(DEVICE_CHOICES)
    assert fields["projectionDomain"]["choices"] == list(SIMULATOR_DOMAINS)


def test_panel_defaults_and_presets_give_the_engine_settings():
    from MedShiftLib.settings import DEFAULT_PRESET, PRESETS, TranslationSettings

    defaults = SimpleNamespace(**{name: f["default"] for name, f in evaluated_wrapper_fields().items()})
    panel = settings_from_parameters(defaults)
    assert panel == TranslationSettings(defaults.sourceDomain, defaults.targetDomain).with_preset(DEFAULT_PRESET)
    for name in PRESETS:
        parameters = SimpleNamespace(**vars(defaults))
        apply_preset(parameters, name)
        assert settings_from_parameters(parameters) == panel.with_preset(name), name
    assert sorted(PRESET_BUTTONS.values()) == sorted(PRESETS)  # one button per preset
    missing = sorted(set(PRESET_BUTTONS) - set(ui_widgets()))
    assert not missing, f"preset buttons missing from MedShift.ui: {missing}"


def test_slicers_requirements_are_ranges_that_the_tested_pins_satisfy():
    from packaging.specifiers import SpecifierSet

    from MedShiftSlicer.requirements import read_requirements

    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = {k.lower(): v for k, v in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', pyproject)}
    required = read_requirements()
    assert {r.name.lower() for r in required} >= {"torch", "pydicom", "safetensors", "torchdiffeq"}
    for requirement in required:
        assert all(s.operator == ">=" for s in requirement.specifier), f"{requirement}: minimums only, no pins"
        assert requirement.specifier.contains(pins[requirement.name.lower()]), f"{requirement} refuses the tested pin"
    assert "3.0" in SpecifierSet(str(next(r.specifier for r in required if r.name == "pydicom")))
    assert not SpecifierSet(str(next(r.specifier for r in required if r.name == "pydicom"))).contains("2.4.4")


def test_ui_loads_headless_with_names_and_bindings_kept():
    pytest.importorskip("PySide6.QtUiTools")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QFile, QIODevice
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QWidget

    app = QApplication.instance() or QApplication([])
    handle = QFile(str(UI_FILE))
    assert handle.open(QIODevice.ReadOnly)
    widget = QUiLoader().load(handle)
    handle.close()
    assert widget is not None and widget.objectName() == "MedShift"
    loaded = {w.objectName(): w.property("SlicerParameterName") for w in widget.findChildren(QWidget)}
    expected = {name: parameter_name(w) for name, w in ui_widgets().items() if name != "MedShift"}
    assert set(expected) <= set(loaded)
    assert {n: loaded[n] for n in expected if expected[n]} == {n: p for n, p in expected.items() if p}
    widget.deleteLater()
    app.processEvents()
