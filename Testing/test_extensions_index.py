"""Ready for the Slicer Extensions Index: the entry file, the licence file, and the size of a full clone.

The index's own checks (Slicer/ExtensionsIndex scripts/check_description_files.py, read at commit 07f1d1b2,
2026-08-07; docs/slicer.md has the lines): the entry validates against its $schema, its category is a known
one, the file name is the CMake project name, scm_url is https and names a repository starting with "Slicer",
a licence file sits at the repository root, and a full clone (`git clone` then `git checkout scm_revision`),
working tree and .git together, stays within 100 MB (MiB: bytes / 1024 / 1024). We keep a margin: 95 MiB.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "docs" / "extensions_index" / "MedShift.json"
CLONE_LIMIT_MIB = 95.0
# slicer-extension-catalog-entry-schema-v1.0.2.json (Slicer/Slicer main, Schemas/): required keys and every
# property it allows ("additionalProperties": false)
SCHEMA_REQUIRED = {"$schema", "category", "scm_url"}
SCHEMA_PROPERTIES = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                     "dicom_support_rule", "build_subdirectory", "enabled", "tier"}


def cmake_value(name: str) -> str:
    match = re.search(rf'set\({name}\s+"([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text())
    assert match, f"{name} is not set in CMakeLists.txt"
    return match.group(1)


def test_the_index_entry_is_ready_to_submit():
    raw = ENTRY.read_bytes()
    assert b"\r" not in raw  # check_json_file_format: LF line endings only
    entry = json.loads(raw)
    assert SCHEMA_REQUIRED <= set(entry) <= SCHEMA_PROPERTIES
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    project = re.search(r"project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert ENTRY.stem == project  # check_cmakelists_content: the file name is the extension's name
    assert entry["category"] == cmake_value("EXTENSION_CATEGORY") == "Filtering"  # an accepted category
    assert entry["build_dependencies"] == cmake_value("EXTENSION_DEPENDS").split()
    assert entry["scm_url"].startswith("https://") and entry["scm_url"].split("/")[-1].startswith("Slicer")
    assert entry["scm_url"].removesuffix(".git") == cmake_value("EXTENSION_HOMEPAGE")
    assert entry["scm_revision"] and isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5


def test_a_licence_file_is_at_the_root_and_the_gpl_ct_keeps_its_own():
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "MedShift/Resources/ThirdParty/Cranium/COPYING").read_text()


def _git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_fresh_full_clone_stays_under_95_mib(tmp_path):
    """What check_repository_size measures: every file of a full clone, .git included (here of this branch)."""
    top = _git("rev-parse", "--show-toplevel") if shutil.which("git") else None
    if top is None or top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT.resolve():
        pytest.skip("not a git checkout (or no git): the clone size can only be measured in one")
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("this checkout is shallow: the full history a clone would hold is not here to measure "
                    "(fetch it with `git fetch --unshallow`)")
    clone = tmp_path / "clone"
    done = _git("clone", "--quiet", "--no-local", "--single-branch", str(ROOT), str(clone), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sizes = [p.stat().st_size for p in clone.rglob("*") if p.is_file() and not p.is_symlink()]
    git_mib = sum(p.stat().st_size for p in (clone / ".git").rglob("*") if p.is_file()) / 2**20
    total_mib = sum(sizes) / 2**20
    print(f"fresh clone: {total_mib:.1f} MiB ({git_mib:.1f} MiB of it .git)")
    assert total_mib <= CLONE_LIMIT_MIB, (
        f"a full clone is {total_mib:.1f} MiB ({git_mib:.1f} MiB .git), over {CLONE_LIMIT_MIB} MiB (the Extensions "
        "Index refuses 100): move large files out of the history")


PICTURE_LIMIT_KB = 300
PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def test_each_docs_picture_stays_small():
    """Every version of a committed picture stays in the history a clone downloads: each one small."""
    pictures = [p for p in (ROOT / "docs").rglob("*") if p.suffix.lower() in PICTURE_SUFFIXES]
    assert len(pictures) >= 10, "the docs pictures were not found"
    too_large = [f"{p.relative_to(ROOT)} ({p.stat().st_size // 1024} KB)" for p in pictures
                 if p.stat().st_size > PICTURE_LIMIT_KB * 1024]
    assert not too_large, (
        f"docs pictures over {PICTURE_LIMIT_KB} KB: {', '.join(too_large)}; save photographic pictures as JPEG "
        "(Pillow: quality=80, optimize=True), crop or scale them down, and fix the links")
