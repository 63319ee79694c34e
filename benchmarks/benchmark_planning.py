"""Time and memory of planning a large batch's outputs (`medshift translate` before the model loads): a table.

For each input count it makes a folder of N inputs and an --out folder where every output exists already
(the case that used to grow with the square of N), then times, in this process, collecting the inputs
(`collect_inputs`, one folder listing) and planning the outputs (`plan_outputs`: names, collisions, inputs
never overwritten, existing outputs skipped). The files are empty: planning reads names and file system
entries, never pixels. Peak memory is Python's own allocations during those two steps (tracemalloc, in a
second pass, since tracing slows Python down).

    python benchmarks/benchmark_planning.py                  # 1,000 and 10,000 inputs
    python benchmarks/benchmark_planning.py --counts 1000 5000 10000 --format nifti
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))

from MedShiftLib.pipeline.file_translation import collect_inputs  # noqa: E402
from MedShiftLib.pipeline.output_plan import output_name, plan_outputs  # noqa: E402


def make_batch(root: Path, count: int, output_format: str | None) -> tuple[Path, Path]:
    """`count` empty PNG inputs in root/in and every one's output already in root/out."""
    inputs, out = root / "in", root / "out"
    inputs.mkdir()
    out.mkdir()
    for k in range(count):
        source = inputs / f"image_{k:06d}.png"
        source.touch()
        (out / output_name(source, output_format)).touch()
    return inputs, out


def _plan(inputs: Path, out: Path, output_format: str | None) -> int:
    """Collect and plan one batch; the number of outputs skipped as existing."""
    plans = plan_outputs(collect_inputs([inputs]), out, overwrite=False, output_format=output_format)
    return sum(plan.skip_reason is not None for plan in plans)


def measure(count: int, output_format: str | None) -> tuple[float, float, int]:
    """(seconds, peak MiB, outputs skipped) of collecting and planning `count` inputs whose outputs exist.

    Timed untraced; the memory comes from a second, traced pass (tracemalloc slows Python down)."""
    with tempfile.TemporaryDirectory(prefix="medshift-plan-") as folder:
        inputs, out = make_batch(Path(folder), count, output_format)
        started = time.perf_counter()
        skipped = _plan(inputs, out, output_format)
        seconds = time.perf_counter() - started
        tracemalloc.start()
        _plan(inputs, out, output_format)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return seconds, peak, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--format", dest="output_format", default=None, help="--format of the run (default: as input)")
    args = parser.parse_args()
    print("| inputs | seconds | per input (ms) | peak Python memory (MiB) | skipped as existing |")
    print("|---:|---:|---:|---:|---:|")
    for count in args.counts:
        seconds, peak, skipped = measure(count, args.output_format)
        print(f"| {count:,} | {seconds:.2f} | {1000 * seconds / count:.3f} | {peak:.1f} | {skipped:,} |", flush=True)


if __name__ == "__main__":
    main()
