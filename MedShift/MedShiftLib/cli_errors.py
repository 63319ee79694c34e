"""How the `medshift` command ends: one line per error that says what to do, and an exit status.

    0    done
    1    some inputs of a batch were not translated (each named on its own line), or the system refused
         (disk full, file system gone)
    2    a usage error: an option, input, model or folder that cannot work as given (fix and run again)
    3    the GPU ran out of memory
    130  interrupted (Ctrl-C) or cancelled (--cancel-file); 143 terminated (SIGTERM)
    141  standard output was closed early (`medshift info | head -3`): quiet

Operating-system errors (permissions, read-only or full disks, a file where a folder is needed) become
one line naming the path and the fix, never a traceback (`--debug` shows it). SIGTERM is turned into an
exception so that temporary files are removed on the way out (atomic_files.py). Under torchrun only rank 0
prints; every rank exits with the same status.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from .errors import MedShiftError, TranslationCancelled

EXIT_FAILED, EXIT_USER_ERROR, EXIT_OUT_OF_MEMORY = 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143
_CONTROL = re.compile(r"[\\\x00-\x1f\x7f]")
OUT_OF_MEMORY_MESSAGE = "out of GPU memory; use --device cpu, or a smaller --tile-size"

_ADVICE = {
    errno.EACCES: ("permission denied", "choose a folder you can write to, or ask for write permission"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to, or ask for write permission"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.ENOSPC: ("no space left on the disk", "free some space or choose a folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose a folder on another disk"),
    errno.EFBIG: ("the file is larger than this process may write (ulimit -f)", "raise the limit or write less"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "give a folder, or move that file away"),
    errno.EEXIST: ("a file of that name exists", "give a folder, or move that file away"),
    errno.EISDIR: ("is a folder, not a file", "give a file"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EIO: ("input/output error", "check the disk or network share"),
    errno.ENAMETOOLONG: ("the file name is too long", "choose a shorter path"),
}
USAGE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOENT,
                errno.ENAMETOOLONG)
"""OS errors the user fixes by giving another path: exit status 2, like other usage errors."""


_STOPPED = {"TranslationCancelled": (EXIT_INTERRUPTED, "cancelled; nothing more was written"),
            "KeyboardInterrupt": (EXIT_INTERRUPTED, "interrupted; temporary files were removed"),
            "Terminated": (EXIT_TERMINATED, "terminated; temporary files were removed")}


class Terminated(BaseException):
    """SIGTERM arrived (raised from the signal handler, so `finally` blocks remove temporary files)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated (main thread only; elsewhere nothing changes)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def plain_warnings() -> Iterator[None]:
    """Within the block warnings show as `medshift: warning: text` lines, without the source file and line."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"medshift: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    previous, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = previous


def escape_machine_text(text: str) -> str:
    """`text` on one line (`--machine-progress`): backslash as `\\\\`, control characters (a newline in a file
    name) as `\\xNN`."""
    return _CONTROL.sub(lambda m: "\\\\" if m[0] == "\\" else f"\\x{ord(m[0]):02x}", text)


def unescape_machine_text(text: str) -> str:
    """The text `escape_machine_text` escaped."""
    return re.sub(r"\\(\\|x[0-9a-f]{2})", lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), text)


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    path = exc.filename if exc.filename is not None else None
    what, advice = _ADVICE.get(exc.errno, (exc.strerror or str(exc), "check the path and the disk"))
    where = f"{path}: " if path else ""
    return f"{where}{what}; {advice}"


Voice = Callable[[BaseException], "str | None"]
"""Who this process is in its error lines ("medshift", "medshift (process 1)"), or None to stay silent."""


def is_peer_failure(exc: BaseException) -> bool:
    """True for the error a training process gets when another process of its group stopped."""
    text = str(exc)
    return type(exc).__name__ in ("DistBackendError", "DistNetworkError") or (
        isinstance(exc, RuntimeError) and ("closed by peer" in text or "reset by peer" in text))


def _print_error(message: str, machine: bool, name: str | None) -> None:
    """`medshift: error: ...` on standard error (and `ERROR ...` for --machine-progress) unless `name` is None."""
    if name is None:
        return
    message = " ".join(message.split())
    if machine:
        print(f"ERROR {message}", flush=True)
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """Point standard output at the null device, so Python's own flush at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_guarded(command: Callable[[], int], debug: bool, machine: bool = False, voice: Voice | None = None) -> int:
    """Run a sub-command and turn every error a user can meet into one line and an exit status.

    `voice(exc)` names this process in the line, or silences it (torchrun ranks other than 0, cli.py)."""
    with terminate_as_exception(), plain_warnings() if not debug else nullcontext():
        return _run(command, debug, machine, voice)


def _run(command: Callable[[], int], debug: bool, machine: bool, voice: Voice | None) -> int:
    """run_guarded's body, inside its signal handler and warning format."""
    def name(exc: BaseException) -> str | None:
        return "medshift" if voice is None else voice(exc)

    try:
        status = command()
        sys.stdout.flush()  # a closed pipe shows here, not in Python's own flush at exit
        return status
    except (TranslationCancelled, KeyboardInterrupt, Terminated) as exc:
        status, text = _STOPPED[type(exc).__name__]
        if name(exc):
            print(f"medshift: {text}", file=sys.stderr)
        return status
    except MedShiftError as exc:
        if debug:
            raise
        _print_error(str(exc), machine, name(exc))
        return EXIT_USER_ERROR
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if debug:
            raise
        _print_error(describe_os_error(exc), machine, name(exc))
        return EXIT_USER_ERROR if exc.errno in USAGE_ERRNOS else EXIT_FAILED
    except Exception as exc:
        if is_peer_failure(exc) and not debug:
            _print_error("another training process stopped (its error is above); this one stopped with it", machine,
                         name(exc))
            return EXIT_FAILED
        if type(exc).__name__ != "OutOfMemoryError" or debug:  # torch.cuda.OutOfMemoryError
            raise
        _print_error(OUT_OF_MEMORY_MESSAGE, machine, name(exc))
        return EXIT_OUT_OF_MEMORY
