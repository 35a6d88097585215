"""The jobs of a sweep end with the process that launched them.

Parallel launchers run a sweep's jobs in other processes: loky workers (``hydra/launcher=joblib``) or
submitit's job processes (``submitit_local``). When the launching ``initlab run -m`` process dies -- SIGKILL,
SIGTERM, a closed terminal -- those processes are orphaned: they would keep training and even take the next
queued job. Here the launcher records its process id in the environment (:func:`mark_launcher`, inherited
by every process it starts) and each job process watches it from a daemon thread (:func:`watch`). When the
launcher is gone the thread interrupts a job in training (SIGTERM to its own process: the training loop
records status ``interrupted`` and keeps its logs), lets the job index its sweep, and ends the process
within ``GRACE_SECONDS``; a process between jobs ends at once, so no new job starts.

On Linux the watch costs nothing while the launcher lives: the thread blocks on a pidfd (``os.pidfd_open``),
which becomes readable when the process exits, zombie or not. Elsewhere it polls ``os.kill(pid, 0)``.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterator

from initlab.runs.layout import process_alive

ENV_VAR = "INITLAB_LAUNCHER_PID"
EXIT_ORPHANED = 130
GRACE_SECONDS = 20.0  # an interrupted job closes its logs and indexes its sweep within this time
POLL_SECONDS = 0.5  # without pidfd: how often the launcher is checked

_gone = threading.Event()  # the launcher is gone
_busy = threading.Event()  # a job of this process is training
_done = threading.Event()  # the interrupted job recorded its status and indexed its sweep
_watcher: threading.Thread | None = None


# The resource trackers of loky and multiprocessing warn (two lines, with source) about the semaphores and
# folders they clean up after jobs that ended with their launcher: expected, so not shown.
QUIET_TRACKERS = "ignore:resource_tracker:UserWarning"


def mark_launcher() -> None:
    """Record this process as the launcher of the jobs it starts (they inherit the environment)."""
    os.environ[ENV_VAR] = str(os.getpid())
    filters = [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f]
    if QUIET_TRACKERS not in filters:
        os.environ["PYTHONWARNINGS"] = ",".join([*filters, QUIET_TRACKERS])


def launcher_pid() -> int | None:
    """The launcher's process id, or None in the launcher itself and outside sweeps."""
    pid = int(os.environ.get(ENV_VAR) or 0)
    return pid if pid and pid != os.getpid() else None


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # type: ignore[attr-defined]  (Linux >= 5.3)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        while process_alive(pid):
            _gone.wait(POLL_SECONDS)
        return
    try:
        if process_alive(pid):  # the pid might have ended between the environment and pidfd_open
            select.select([fd], [], [])
    finally:
        os.close(fd)


def _watch(pid: int) -> None:
    _wait_for_exit(pid)
    _gone.set()
    if _busy.is_set():
        # As if SIGTERM arrived in the main thread: the training loop's handler turns it into status
        # "interrupted". Unlike a real signal it does nothing where no Python handler is installed: a job
        # already stopping (its own SIGTERM, say, sent to the whole process group) is not killed mid-write.
        _thread.interrupt_main(signal.SIGTERM)
        _done.wait(GRACE_SECONDS)
    os._exit(EXIT_ORPHANED)


def watch() -> None:
    """In a job process of a sweep: end this process when the launcher is gone (once per process)."""
    global _watcher
    pid = launcher_pid()
    if pid is None or _watcher is not None:
        return
    _watcher = threading.Thread(target=_watch, args=(pid,), name="initlab-lifeline", daemon=True)
    _watcher.start()


def orphaned(wait: float = 0.0) -> bool:
    """Whether this job process outlived its launcher; ``wait``: seconds to give the watch to notice."""
    if launcher_pid() is None:
        return False
    return _gone.wait(wait) if wait > 0 else _gone.is_set()


@contextlib.contextmanager
def training() -> Iterator[None]:
    """Mark a job as running: a launcher that dies meanwhile interrupts its training and lets it record its
    status and index its sweep (up to ``GRACE_SECONDS``) instead of ending the process mid-write."""
    if orphaned():
        os._exit(EXIT_ORPHANED)  # the launcher died before this job started: start nothing
    _busy.set()
    try:
        yield
    finally:
        _busy.clear()


def finish_orphan() -> None:
    """Called by an orphaned job once its status and the sweep index are written: end the process."""
    _done.set()
    os._exit(EXIT_ORPHANED)
