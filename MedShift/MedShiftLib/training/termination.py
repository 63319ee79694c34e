"""Stopping a training run on SIGTERM at a consistent step, so the caller can save it before exiting.

`timeout` (scripts/train_bundled_gpu.sh) and job schedulers end a run with SIGTERM. Within `stop_on_terminate()`
SIGTERM raises `StopTraining` at once, abandoning the step in progress, except while the weights, optimiser, EMA
and step counter are being updated (between `hold()` and `release()`): then the update finishes first. The run
then saves its last finished step and calls `resend()`, which restores the previous handler and sends SIGTERM
again, so the process ends as it would have (`medshift train` exits with status 143). Only in the main thread of
a single process: elsewhere (or under torchrun, where ranks must agree when to stop) nothing changes.

Why not block SIGTERM around the update with `signal.pthread_sigmask` and catch `cli_errors.Terminated`: the mask
is per thread, and torch's worker threads (and the data's) leave SIGTERM unblocked, so the kernel hands the signal
to one of them and Python runs the handler in the main thread at once, in the middle of the update (tried with
torch's intra-op threads). The flag here defers it whichever thread receives it.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopTraining(BaseException):
    """SIGTERM arrived: the run stops at its last finished step."""


class TerminationGuard:
    """SIGTERM handler that defers the stop while an update is held (see the module docstring)."""

    def __init__(self) -> None:
        self.requested = False
        self.active = False
        self._held = 0
        self._previous = None

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if self._held == 0:
            raise StopTraining()

    def hold(self) -> None:
        """The update of the training state starts: SIGTERM waits until `release()`."""
        self._held += 1

    def release(self, stop_now: bool = True) -> None:
        """The update is complete: a SIGTERM that arrived meanwhile stops the run now (unless not `stop_now`)."""
        self._held -= 1
        if stop_now and self._held == 0 and self.requested:
            raise StopTraining()

    def resend(self) -> None:
        """Restore the previous handler and send SIGTERM again (its handler ends the process)."""
        if self.active:
            signal.signal(signal.SIGTERM, self._previous)
            self.active = False
            signal.raise_signal(signal.SIGTERM)


@contextmanager
def stop_on_terminate(enabled: bool = True) -> Iterator[TerminationGuard]:
    """Within the block SIGTERM raises StopTraining outside held updates (main thread, when `enabled`)."""
    guard = TerminationGuard()
    if enabled and threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, guard._handle)
            guard._previous = signal.SIG_DFL if previous is None else previous  # None: set outside Python
            guard.active = True
    try:
        yield guard
    finally:
        if guard.active:
            signal.signal(signal.SIGTERM, guard._previous)
            guard.active = False
