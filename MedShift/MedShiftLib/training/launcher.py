"""`medshift train --processes N`: start N training processes on this machine, as torchrun does, quietly.

torchrun itself answers any worker's non-zero exit with its own 40-line report and exit status 1, even
for a usage error every rank printed (only rank 0 prints it: cli_errors.py). This launcher runs the same
processes through PyTorch's own elastic launcher (`--standalone` rendezvous on localhost, no restarts),
keeps the launcher's log quiet, and exits with rank 0's status, so a usage error is one line and status 2.
"""
from __future__ import annotations

import logging
import os
import sys
import uuid

from ..errors import MedShiftError

MAX_PROCESSES = 256
TERMINATED = 143


def without_processes_option(argv: list[str]) -> list[str]:
    """`argv` with `--processes N` (or `--processes=N`) taken out: the command each process runs."""
    result, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--processes":
            skip = True
        elif not item.startswith("--processes="):
            result.append(item)
    return result


def launch_training_processes(argv: list[str], processes: int) -> int:
    """Run `python -m MedShiftLib.cli ARGV` in `processes` processes; returns the exit status of the process that
    stopped on its own (rank 0's when several did)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not 1 <= processes <= MAX_PROCESSES:
        raise MedShiftError(f"--processes must be 1..{MAX_PROCESSES}, got {processes}")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: one thread per process unless told otherwise
    try:
        elastic_launch(config, sys.executable)("-m", "MedShiftLib.cli", *argv)
    except ChildFailedError as exc:
        # the first process to stop says why; the launcher then terminates the others (143, or killed: < 0)
        own = [exc.failures[rank].exitcode for rank in sorted(exc.failures)
               if exc.failures[rank].exitcode > 0 and exc.failures[rank].exitcode != TERMINATED]
        return own[0] if own else 1
    return 0
