"""The engine's layout: one sub-package per concern, arrows pointing one way, no Slicer in MedShiftLib.

Every import of every MedShiftLib module (also those inside functions) is read from its source and
resolved to the module it names; the package each lands in must be one its package may use.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ROOT = ROOT / "MedShift" / "MedShiftLib"
GLUE_ROOT = ROOT / "MedShift" / "MedShiftSlicer"
SLICER_ONLY = {"slicer", "qt", "ctk", "vtk", "PythonQt", "mrml", "MRMLCorePython"}
MAX_MODULE_LINES = 420  # "about 400"

BASE = {"errors", "option_bounds", "settings", "atomic_files", "optional_packages"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "option_bounds": {"errors"},
    "optional_packages": {"errors"},
    "settings": {"errors", "option_bounds"},
    "atomic_files": set(),
    "cli_errors": {"errors"},
    "cli_checks": {"errors", "option_bounds", "settings"},
    "engine": BASE,
    "io": BASE | {"engine"},
    "postprocess": BASE | {"engine"},
    "simulator": BASE | {"engine", "io"},
    "pipeline": BASE | {"engine", "io", "postprocess"},
    "training": BASE | {"engine", "io", "postprocess"},
    "evaluation": BASE | {"engine", "io", "postprocess", "pipeline", "training"},
}
"""For each part of MedShiftLib, the parts it may import besides itself; cli.py, demo.py and __init__.py may
import anything. Layers, bottom up: the base modules (errors, settings, atomic_files, optional_packages) < engine < io,
postprocess < simulator, pipeline, training < evaluation < cli, demo; cli_errors (how the command ends)
uses only errors."""


def module_name(path: Path, root: Path = ENGINE_ROOT) -> str:
    """Dotted name of a module file below MedShift/ (packages by their __init__)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ENGINE_ROOT) -> set[str]:
    """Absolute names of every module a file imports anywhere; relative imports resolved, `from p import m` adds p.m."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE_ROOT.rglob("*.py"))}


def part_of(module: str) -> str:
    """'MedShiftLib.engine.loss' -> 'engine'; 'MedShiftLib.errors' -> 'errors'."""
    return module.split(".")[1] if module.count(".") else ""


def internal_graph() -> dict[str, set[str]]:
    modules = engine_modules()
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_medshiftlib_has_one_sub_package_per_concern():
    packages = {p.name for p in ENGINE_ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"engine", "postprocess", "io", "simulator", "training", "evaluation", "pipeline"}
    loose = {p.name for p in ENGINE_ROOT.glob("*.py")}
    assert loose == {"__init__.py", "errors.py", "settings.py", "atomic_files.py", "optional_packages.py", "cli.py",
                     "cli_errors.py", "cli_parser.py", "cli_checks.py", "option_bounds.py", "demo.py"}


def test_nothing_in_medshiftlib_imports_slicer_qt_or_vtk_not_even_inside_a_function():
    for name, path in engine_modules().items():
        found = {m.split(".")[0] for m in imports_of(path)} & SLICER_ONLY
        assert not found, f"{name} imports {found}; Slicer code belongs in MedShift/MedShiftSlicer"


def test_each_part_imports_only_the_parts_below_it():
    for name, targets in internal_graph().items():
        part = part_of(name)
        if part in ("cli", "cli_parser", "demo", ""):
            continue
        for target in targets:
            other = part_of(target)
            if other in ("", part):  # the package itself and its __init__
                continue
            assert other in ALLOWED[part], f"{name} imports {target}: {part} may import only {sorted(ALLOWED[part])}"


def test_the_engine_is_below_everything_but_the_base_modules():
    graph = internal_graph()
    for name, targets in graph.items():
        if part_of(name) == "engine":
            above = {t for t in targets if part_of(t) not in BASE | {"engine", ""}}
            assert not above, f"{name} imports {above}: the engine imports only errors, settings and atomic_files"
    engine_users = {part_of(name) for name, targets in graph.items() if any(part_of(t) == "engine" for t in targets)}
    assert not engine_users & BASE
    assert {"io", "postprocess", "pipeline", "training", "evaluation"} <= engine_users


def test_no_import_cycle():
    graph = internal_graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = trail[trail.index(target):] + [target] if target in trail else [node, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_module_is_longer_than_about_400_lines():
    long = {name: n for name, path in engine_modules().items() if (n := len(path.read_text().splitlines()))
            > MAX_MODULE_LINES}
    long |= {module_name(p, GLUE_ROOT): n for p in GLUE_ROOT.glob("*.py")
             if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules: {long}"


def test_slicer_glue_imports_slicer_and_vtk_only_inside_functions():
    for path in sorted(GLUE_ROOT.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
        assert not {m.split(".")[0] for m in top} & SLICER_ONLY, f"{path.name} imports Slicer at load"


def test_what_the_slicer_modules_load_at_import_needs_no_torch(tmp_path):
    """MedShift.py's and MedShiftTraining.py's own imports of MedShiftLib/MedShiftSlicer run with torch absent."""
    imported = set()
    for module in ("MedShift/MedShift.py", "MedShiftTraining/MedShiftTraining.py"):
        for node in ast.parse((ROOT / module).read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                    "MedShiftLib", "MedShiftSlicer"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.split(".")[0] in ("MedShiftLib", "MedShiftSlicer"))
    glue = {module_name(p, GLUE_ROOT) for p in GLUE_ROOT.glob("*.py")}
    script = ("import sys\n"
              "class NoTorch:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'torch':\n"
              "            raise ImportError('torch imported at load: ' + name)\n"
              "sys.meta_path.insert(0, NoTorch())\n"
              + "".join(f"import {m}\n" for m in sorted(imported | glue)))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "MedShift"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MedShiftLib.settings" in imported  # the panel's choices and defaults come from there
