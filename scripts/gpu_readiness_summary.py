"""The summary of a scripts/gpu_readiness.sh run: gpu_readiness.md in its folder and a PASS/FAIL table on stdout.

Reads the folder the shell script filled: steps.tsv (one line per step: name, exit status, seconds, time
limit, what it checks, command), each step's NAME.out and NAME.err, and NAME.xml for pytest steps (JUnit).
A step passes when it exited 0; the CUDA test step also fails when any of its tests was skipped on a GPU
(on the CPU, where they all skip, it reads SKIP). The key figures gather the engine's default-setting rows
and the training table from the benchmark outputs. Exit status 1 when any step failed, else 0.

    python scripts/gpu_readiness_summary.py OUT_DIR --mode cuda|cpu
    python scripts/gpu_readiness_summary.py --environment     # the versions and the GPU, as the first step
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.atomic_files import write_bytes_atomically  # noqa: E402

TIMED_OUT = (124, 137)  # `timeout`'s status when it stopped the command (TERM, then KILL)
GOAL_MS = 25.0  # issue 18: <= 25 ms per 512 x 512 image at the default setting in batches of 16 on a GPU


@dataclass
class Step:
    """One line of steps.tsv and what the step left in the folder."""

    name: str
    exit_status: int
    seconds: float
    limit: int
    what: str
    command: str
    out: str = ""
    err: str = ""
    status: str = ""
    note: str = ""


def read_steps(folder: Path) -> list[Step]:
    """The steps in the order they ran, with their outputs."""
    steps = []
    for line in (folder / "steps.tsv").read_text().splitlines():
        name, status, seconds, limit, what, command = line.split("\t", 5)
        step = Step(name, int(status), float(seconds), int(limit), what, command)
        for stream in ("out", "err"):
            path = folder / f"{name}.{stream}"
            setattr(step, stream, path.read_text(errors="replace") if path.exists() else "")
        steps.append(step)
    return steps


def junit_counts(path: Path) -> dict[str, int] | None:
    """tests/failures/errors/skipped of a pytest --junitxml file, None when absent or unreadable."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


def judge(step: Step, folder: Path, gpu: bool) -> None:
    """Set step.status (PASS, FAIL or SKIP) and a short note."""
    if step.exit_status in TIMED_OUT:
        step.status, step.note = "FAIL", f"timed out after {step.limit} s"
        return
    step.status = "PASS" if step.exit_status == 0 else "FAIL"
    step.note = "" if step.exit_status == 0 else f"exit status {step.exit_status}"
    counts = junit_counts(folder / f"{step.name}.xml")
    if counts is None:
        return
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    step.note = f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped"
    if counts["skipped"] and gpu:
        step.status = "FAIL"
        step.note += " (none may skip on a GPU)"
    elif step.status == "PASS" and counts["skipped"] == counts["tests"]:
        step.status = "SKIP"


def table_after(text: str, heading: str) -> list[str]:
    """The Markdown table that follows the first line starting with `heading` (header and rule included)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        return []
    table = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return table


def merged_table(tables: list[list[str]]) -> list[str]:
    """One table from several with the same columns: the first header, every table's data rows."""
    tables = [t for t in tables if len(t) > 2]
    return tables[0][:2] + [row for t in tables for row in t[2:]] if tables else []


def goal_line(default_rows: list[str]) -> str | None:
    """The default setting's fastest 512 x 512 time in batches of 16 against the GPU goal, if measured."""
    times = {}
    for row in default_rows[2:]:
        size, batch, precision, *_, ms = [cell.strip() for cell in row.strip("|").split("|")]
        if size == "512" and batch == "16":
            times[precision] = float(ms)
    if not times:
        return None
    best = min(times, key=times.get)
    verdict = "met" if times[best] <= GOAL_MS else "not met"
    return (f"Goal (issue 18): <= {GOAL_MS:g} ms per 512 x 512 image at the default setting in batches of 16 "
            f"on a GPU. Measured: {times[best]:.1f} ms ({best}) - {verdict}.")


def summary_markdown(steps: list[Step], gpu: bool) -> str:
    """The whole gpu_readiness.md."""
    by_name = {s.name: s for s in steps}
    env = by_name.get("environment")
    lines = ["# MedShift GPU readiness", "",
             f"Mode: {'CUDA GPU' if gpu else 'CPU (--allow-cpu, tiny sizes: not GPU results)'}; "
             f"{sum(s.seconds for s in steps):.0f} s in all. Command: `bash scripts/gpu_readiness.sh"
             f"{'' if gpu else ' --allow-cpu'} OUT_DIR`.", ""]
    if env and env.out.strip():
        lines += [f"- {line}" for line in env.out.strip().splitlines() if ":" in line] + [""]
    lines += ["## Steps", "", "| step | status | seconds | limit (s) | checks | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.limit} | {s.what} | {s.note} |" for s in steps]
    default_rows = merged_table([table_after(s.out, "Default setting") for s in steps if s.name.startswith("engine")])
    training = [s for s in steps if s.name.startswith("training")]
    training_rows = merged_table([table_after(s.out, "- preset") for s in training])
    lines += ["", "## Key figures", ""]
    if default_rows:
        lines += ["Engine, default setting (per image; the floor is the GFLOPs over the measured matmul rate "
                  "of that precision):", ""] + default_rows + [""]
        goal = goal_line(default_rows) if gpu else None
        lines += [goal, ""] if goal else []
    if training_rows:
        notes = [line for s in training for line in s.out.splitlines() if line.startswith("- ")]
        lines += ["Training throughput and MFU (MFU = 3 x forward FLOPs x images/s / peak of the row's "
                  "precision):", ""] + list(dict.fromkeys(notes)) + [""] + training_rows + [""]
    if not default_rows and not training_rows:
        lines += ["No benchmark finished: see the step outputs below.", ""]
    lines += ["## Step outputs", ""]
    for s in steps:
        lines += [f"### {s.name}: {s.status}", "", f"`{s.command}` ({s.seconds:.0f} s)", ""]
        if s.name.startswith(("engine", "training")) and s.out.strip():  # Markdown already; headings demoted
            lines += [("###" + line if line.startswith("# ") else line) for line in s.out.strip().splitlines()]
            lines += [""]
        else:
            tail = (s.out + s.err).strip().splitlines()[-15:]
            lines += ["```", *tail, "```", ""] if tail else []
        if s.status == "FAIL" and s.err.strip() and s.name.startswith(("engine", "training")):
            lines += ["```", *s.err.strip().splitlines()[-20:], "```", ""]
    return "\n".join(lines)


def status_table(steps: list[Step]) -> str:
    """The plain-text PASS/FAIL table printed at the end of the run."""
    width = max(len(s.name) for s in steps)
    rows = [f"{'step'.ljust(width)}  status  seconds  note"]
    rows += [f"{s.name.ljust(width)}  {s.status.ljust(6)}  {s.seconds:7.0f}  {s.note}" for s in steps]
    return "\n".join(rows)


def describe_environment() -> str:
    """'key: value' lines on Python, torch, CUDA, the GPU and its default fp32 math."""
    import platform

    import torch

    from MedShiftLib.engine.devices import describe_fp32_math

    lines = [f"python: {platform.python_version()}; torch: {torch.__version__}; CUDA runtime: {torch.version.cuda}"]
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines += [f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
                  f"{torch.cuda.device_count()} visible; cuDNN {torch.backends.cudnn.version()}",
                  f"fp32 math by PyTorch's defaults (what medshift train/translate use): {describe_fp32_math()}"]
    return "\n".join(lines + [f"CPU: {platform.machine()}, {torch.get_num_threads()} threads",
                              f"optional packages: {describe_optional_packages()}"])


OPTIONAL_PACKAGES = {"SimpleITK": "SimpleITK", "pydicom": "pydicom", "POT": "ot", "xraydb": "xraydb",
                     "matplotlib": "matplotlib", "tqdm": "tqdm", "Pillow": "PIL"}
"""Packages the translation path imports only where a format or feature needs them (pip name: import name)."""


def describe_optional_packages() -> str:
    """'SimpleITK 2.5.7, pydicom absent, ...': which optional packages this Python can import (none is imported)."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    found = []
    for package, module in OPTIONAL_PACKAGES.items():
        try:
            present = find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        try:
            found.append(f"{package} {version(package)}" if present else f"{package} absent")
        except PackageNotFoundError:
            found.append(f"{package} (version unknown)")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    """Write gpu_readiness.md, print the table; 1 when a step failed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, nargs="?")
    p.add_argument("--mode", choices=("cuda", "cpu"))
    p.add_argument("--environment", action="store_true", help="print the versions and the GPU, and stop")
    args = p.parse_args(argv)
    if args.environment:
        print(describe_environment())
        return 0
    if args.folder is None or args.mode is None:
        p.error("give OUT_DIR and --mode (or --environment)")
    steps = read_steps(args.folder)
    for step in steps:
        judge(step, args.folder, args.mode == "cuda")
    write_bytes_atomically(args.folder / "gpu_readiness.md", summary_markdown(steps, args.mode == "cuda").encode())
    print(status_table(steps))
    failed = [s.name for s in steps if s.status == "FAIL"]
    print(f"{'FAIL: ' + ', '.join(failed) if failed else 'PASS'} (summary: {args.folder / 'gpu_readiness.md'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
