"""MedShift.ui against MedShift.py: widget names, parameter-node bindings, and choices kept in sync."""
import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UI_FILE = ROOT / "MedShift" / "Resources" / "UI" / "MedShift.ui"
MODULE_FILE = ROOT / "MedShift" / "MedShift.py"
NODE_TYPES = {"vtkMRMLScalarVolumeNode"}


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
        if cls == "QComboBox":
            assert "Choice" in markers, f"{name}: a QComboBox needs a Choice-annotated field"
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
    unbound = set(wrapper_fields()) - bound
    # the model path (ctkPathLineEdit, "" = bundled) and the domain lists (filled from the model) are wired in code
    assert unbound == {"modelPath", "sourceDomain", "targetDomain"}
    text = MODULE_FILE.read_text()
    for field in unbound:
        assert f"_parameterNode.{field} =" in text


def test_choices_match_the_engine():
    from MedShiftLib.devices import DEVICE_CHOICES
    from MedShiftLib.domain_rendering import SIMULATOR_DOMAINS
    from MedShiftLib.ode_solvers import SCHEDULES, SOLVERS
    from MedShiftLib.translation import DEFAULT_SCHEDULE, DEFAULT_STEPS, DEFAULT_TAU, DEFAULT_TILE_SIZE

    assert tuple(module_constant("SIMULATOR_DOMAINS")) == SIMULATOR_DOMAINS
    text = MODULE_FILE.read_text()
    assert f'Choice({list(SOLVERS)!r})'.replace("'", '"') in text
    assert f'Choice({list(DEVICE_CHOICES)!r})'.replace("'", '"') in text
    assert f"WithinRange(0.0, 0.95)] = {DEFAULT_TAU}" in text
    assert f"WithinRange(1, 200)] = {DEFAULT_STEPS}" in text
    assert f"WithinRange(64, 8192)] = {DEFAULT_TILE_SIZE}" in text
    assert f'Choice({list(SCHEDULES)!r})'.replace("'", '"') + f'] = "{DEFAULT_SCHEDULE}"' in text


def test_panel_presets_are_the_engine_defaults_noise_synthesis_and_matched_contrast_settings():
    from MedShiftLib.translation import (MATCHED_CONTRAST, MATCHED_CONTRAST_AND_NOISE, NOISE_SYNTHESIS,
                                         TranslationSettings)

    presets = module_constant("TRANSLATION_PRESETS")
    engine_names = {"noiseRenewal": "noise_renewal", "schedule": "schedule", "steps": "steps",
                    "guidanceScale": "guidance_scale", "contrastTransfer": "contrast_transfer",
                    "noiseMatching": "noise_matching"}
    as_engine = {name: {engine_names[k]: v for k, v in values.items()} for name, values in presets.items()}
    assert as_engine["synthesiseNoise"] == NOISE_SYNTHESIS
    assert as_engine["matchedContrast"] == MATCHED_CONTRAST
    assert as_engine["matchedContrastAndNoise"] == MATCHED_CONTRAST_AND_NOISE
    defaults = TranslationSettings("a", "b")
    assert as_engine["deterministic"] == {k: getattr(defaults, k) for k in as_engine["deterministic"]}
    text = MODULE_FILE.read_text()
    assert all(f'_applyPreset("{name}")' in text for name in presets)


def test_first_use_installs_the_pinned_versions_of_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', pyproject))
    pins = {k.lower(): v for k, v in pins.items()}
    for requirement in module_constant("PYTHON_REQUIREMENTS").values():
        package, version = requirement.split("==")
        assert pins.get(package.lower()) == version, f"{requirement} differs from pyproject.toml"


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
