"""The Slicer extension's layout: CMake lists every packaged file, module folders hold only modules."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("MedShift", "MedShiftTraining")


def cmake_set(cmake_file: Path, variable: str) -> list[str]:
    """The items of `set(VARIABLE ...)` in a CMake file, with ${MODULE_NAME} substituted."""
    text = cmake_file.read_text()
    module = re.search(r"set\(MODULE_NAME\s+(\w+)\)", text).group(1)
    block = re.search(rf"set\({variable}\b(.*?)\)", text, re.S)
    assert block, f"{cmake_file} has no set({variable} ...)"
    items = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    return [item.replace("${MODULE_NAME}", module) for item in items if item]


def test_every_engine_file_is_listed_in_the_module_cmake_and_every_listed_file_exists():
    cmake = ROOT / "MedShift" / "CMakeLists.txt"
    scripts = cmake_set(cmake, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_set(cmake, "MODULE_PYTHON_RESOURCES")
    module_dir = ROOT / "MedShift"
    on_disk = {p.relative_to(module_dir).as_posix() for package in ("MedShiftLib", "MedShiftSlicer")
               for p in (module_dir / package).rglob("*.py")}
    missing = sorted(on_disk - set(scripts))
    assert not missing, f"not packaged (add to MODULE_PYTHON_SCRIPTS in {cmake}): {missing}"
    data = {p.relative_to(module_dir).as_posix() for p in (module_dir / "MedShiftLib").rglob("data/*") if p.is_file()}
    missing_data = sorted(data - set(resources))
    assert not missing_data, f"not packaged (add to MODULE_PYTHON_RESOURCES in {cmake}): {missing_data}"
    listed_but_absent = [item for item in scripts + resources if not (ROOT / "MedShift" / item).is_file()]
    assert not listed_but_absent, f"{cmake} lists files that do not exist: {listed_but_absent}"
    assert "MedShift.py" in scripts
    assert len(scripts) == len(set(scripts))


def test_globbed_resources_are_found_again_when_files_change():
    text = (ROOT / "MedShift" / "CMakeLists.txt").read_text()
    globs = re.findall(r"file\(GLOB (\w+)([^)]*)\)", text)
    assert globs and all(options.split()[0] == "CONFIGURE_DEPENDS" for _, options in globs), globs


def test_training_module_cmake_lists_its_files():
    cmake = ROOT / "MedShiftTraining" / "CMakeLists.txt"
    items = cmake_set(cmake, "MODULE_PYTHON_SCRIPTS") + cmake_set(cmake, "MODULE_PYTHON_RESOURCES")
    assert "MedShiftTraining.py" in items
    assert all((ROOT / "MedShiftTraining" / item).is_file() for item in items), items


@pytest.mark.parametrize("module", MODULES)
def test_module_folder_holds_no_python_file_but_its_module(module):
    extra = sorted(p.name for p in (ROOT / module).glob("*.py") if p.name != f"{module}.py")
    assert not extra, f"Slicer takes every .py in {module}/ for a module; move {extra} into a sub-package"
    text = (ROOT / module / "CMakeLists.txt").read_text()
    assert re.search(r"slicerMacroBuildScriptedModule\(.*?NAME \$\{MODULE_NAME\}.*?WITH_GENERIC_TESTS", text, re.S)


def test_top_level_cmake_names_both_modules_and_the_pytorch_dependency():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"^project\(MedShift\)", text, re.M)
    assert re.search(r"^cmake_minimum_required\(VERSION 3\.20\.6\.\.\.3\.28\.0 FATAL_ERROR\)", text, re.M)
    assert re.search(r"^find_package\(Slicer 5\.10 REQUIRED\)", text, re.M)  # the oldest Slicer MedShift runs in
    for module in MODULES:
        assert re.search(rf"^add_subdirectory\({module}\)", text, re.M), module
    depends = re.search(r'set\(EXTENSION_DEPENDS\s+"?([^")]*)"?\)', text).group(1).split()
    assert "PyTorch" in depends
    for key in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf'set\(EXTENSION_{key}\s+"[^"]+"\)', text), key
    order = [text.index(s) for s in ("find_package(Slicer 5.10 REQUIRED)", "include(${Slicer_USE_FILE})",
                                      "add_subdirectory(MedShift)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                                      "include(${Slicer_EXTENSION_CPACK})")]
    assert order == sorted(order)


def test_self_test_is_registered_with_ctest_as_the_template_does():
    text = (ROOT / "MedShift" / "CMakeLists.txt").read_text()
    testing = re.search(r"if\(BUILD_TESTING\)(.*?)endif\(\)", text, re.S).group(1)
    assert re.search(r"^\s*slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", testing, re.M)
    assert "add_subdirectory(Testing)" in testing
    assert "add_subdirectory(Python)" in (ROOT / "MedShift" / "Testing" / "CMakeLists.txt").read_text()
    uncommented = [line.split("#")[0] for line in
                   (ROOT / "MedShift" / "Testing" / "Python" / "CMakeLists.txt").read_text().splitlines()]
    assert "slicer_add_python_unittest" not in "".join(uncommented)  # registered once, not by a relative path
    bases = {node.name: [getattr(b, "id", None) for b in node.bases] for node in classes_of("MedShift/MedShift.py")}
    assert bases.get("MedShiftTest") == ["ScriptedLoadableModuleTest"]


def classes_of(module: str) -> list[ast.ClassDef]:
    return [node for node in ast.parse((ROOT / module).read_text()).body if isinstance(node, ast.ClassDef)]


def parent_settings(module_class: ast.ClassDef) -> dict[str, object]:
    """The literal values a module class assigns to self.parent.<name> in its __init__."""
    settings = {}
    for node in ast.walk(module_class):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "parent"):
                try:
                    settings[target.attr] = ast.literal_eval(node.value)
                except ValueError:
                    settings[target.attr] = None  # not a literal (a translated string)
    return settings


def test_training_module_has_a_panel_that_creates_its_logic_and_depends_on_medshift():
    """slicer.util.getModuleLogic goes through the module's widget (Slicer 5.10 util.py getModuleLogic)."""
    classes = {node.name: node for node in classes_of("MedShiftTraining/MedShiftTraining.py")}
    assert {"MedShiftTraining", "MedShiftTrainingLogic", "MedShiftTrainingWidget"} <= set(classes)
    settings = parent_settings(classes["MedShiftTraining"])
    assert settings["dependencies"] == ["MedShift"] and "hidden" not in settings
    assert "widgetRepresentationCreationEnabled" not in settings
    tree = ast.parse((ROOT / "MedShiftTraining" / "MedShiftTraining.py").read_text())
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "slicer.util.exit" in calls  # --python-script does not quit Slicer by itself


@pytest.mark.parametrize("icon", ["MedShift/Resources/Icons/MedShift.png", "Resources/Icons/MedShift.png",
                                  "MedShiftTraining/Resources/Icons/MedShiftTraining.png"])
def test_icons_are_128_pixel_pngs(icon):
    from PIL import Image

    with Image.open(ROOT / icon) as image:
        assert image.format == "PNG" and image.size == (128, 128)


def test_registered_sample_data_is_shipped_and_small():
    tree = ast.parse((ROOT / "MedShift" / "MedShift.py").read_text())
    samples = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", None) == "SAMPLE_DATA" for t in n.targets))
    assert len(samples) == 2
    for _sample, file_name, _node in samples:
        path = ROOT / "MedShift" / "Resources" / "SampleData" / file_name
        assert path.is_file() and path.stat().st_size < 1_000_000, path
