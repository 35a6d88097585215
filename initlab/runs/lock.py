"""A run directory belongs to one run: :func:`claim` takes it, :class:`Claim` gives it back.

A run claims its directory before anything is written into it: it creates the directory and, inside it,
the lock file ``.initlab.lock``, takes an exclusive ``flock`` on it (of any number of processes racing for
one directory exactly one gets it; the kernel drops it when the process dies, however it dies) and writes
its process id into it. :meth:`Claim.release` removes the lock when the run ends; a run killed hard
leaves it behind, and its directory stays taken.

* A directory given explicitly that is taken (:func:`~initlab.runs.layout.occupant`: a live run, a run
  killed hard, a finished run) is refused with one line naming it and the way out, before anything in it
  is touched; with ``overwrite=True`` a taken directory whose run is not live has its run files removed
  first (never a live one's).
* A directory whose run stopped before its first step is free: its run files are removed and it is used.
* A timestamped directory (``outputs/runs/DATE/TIME``) that is taken -- two runs started in the same
  second -- is replaced by ``TIME_1`` (then ``_2``, ...).
* A run refused before training leaves no directory: :meth:`Claim.discard` removes what the run created.

:func:`claim_sweep` is the same for a sweep's directory (``hydra.sweep.dir``), whose jobs claim their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from initlab.errors import UserError
from initlab.runs.layout import (
    LOCK_FILE,
    RUN_FILES,
    Occupant,
    has_run_files,
    is_job,
    lock_held,
    occupant,
    parts_dir,
    recorded_occupant,
    sweep_occupant,
)

MAX_SUFFIX = 1000


class DirectoryTaken(UserError):
    """A run or sweep directory that holds a run: the message names it and the way out."""


@dataclass
class Claim:
    """A claimed run directory: the lock, the directories created for it, and what was there before."""

    path: Path
    created: list[Path]  # created for this run, outermost first
    before: set[str] = field(default_factory=set)
    fd: int | None = None  # the open lock file holding the flock

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    def release(self) -> None:
        """The run ended (whatever its status): remove the lock (a second call does nothing)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(self.lock).st_ino:
                self.lock.unlink()
        os.close(fd)

    def discard(self) -> None:
        """The run was refused before training: remove everything it created (its directory if it made it)."""
        self.release()
        if not self.path.is_dir():
            return
        if self.created:  # the directory, then the parents made for it while they are empty (another run
            shutil.rmtree(self.path, ignore_errors=True)  # started at the same time may share them)
            for parent in reversed(self.created[:-1]):
                try:
                    parent.rmdir()
                except OSError:
                    break
            return
        for name in set(os.listdir(self.path)) - self.before:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def clear_run_files(run_dir: Path, stale_lock: bool = False) -> None:
    """Remove the run files (:data:`~initlab.runs.layout.RUN_FILES`, their parts) an earlier run left in
    ``run_dir``; with ``stale_lock`` also its lock if no live process holds it."""
    for name in RUN_FILES:
        path = run_dir / name
        path.unlink(missing_ok=True)
        shutil.rmtree(parts_dir(path), ignore_errors=True)
    if stale_lock and not lock_held(run_dir):
        (run_dir / LOCK_FILE).unlink(missing_ok=True)


def _make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; returns the ones created, outermost first."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    path.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _flock(path: Path) -> int | None:
    """An open lock file of ``path`` under an exclusive flock, or None when a live process holds it."""
    import fcntl

    lock = path / LOCK_FILE
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:  # not a lock its holder removed meanwhile
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _try_claim(path: Path, overwrite: bool) -> Claim | Occupant:
    """Claim ``path``, or say what holds it."""
    if path.is_dir() and (why := occupant(path)) is not None and (why.live or not overwrite):
        return why
    created = _make_dirs(path)
    before = set(os.listdir(path)) - {LOCK_FILE}
    fd = _flock(path)
    if fd is None:
        return occupant(path) or Occupant("a run starting at the same moment", live=True)
    previous = os.read(fd, 64).decode(errors="replace").strip()
    why = Occupant(f"a run that was killed (process {previous})") if previous else recorded_occupant(path)
    if why is not None and not overwrite:
        if not previous:  # the lock file is this call's: leave nothing
            (path / LOCK_FILE).unlink(missing_ok=True)
        os.close(fd)
        return why
    if has_run_files(path):  # a run that stopped before its first step, or overwrite=True
        clear_run_files(path)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Claim(path, created, before, fd)


def candidates(path: Path, timestamped: bool) -> list[Path]:
    """``path``, then for a timestamped one ``path_1``, ``path_2``, ..."""
    if not timestamped:
        return [path]
    return [path] + [path.with_name(f"{path.name}_{n}") for n in range(1, MAX_SUFFIX)]


def is_timestamped(raw: str) -> bool:
    """Whether a directory setting, as written (unresolved), is Hydra's ``${now:...}`` kind."""
    return "${now:" in str(raw)


def claim(
    path: str | Path,
    key: str = "run_dir",
    timestamped: bool = False,
    overwrite: bool = False,
    way_out: str | None = None,
) -> Claim:
    """Claim the run directory ``path`` (the value of the setting ``key``).

    :class:`DirectoryTaken` (a :class:`~initlab.errors.UserError`) if it is taken, naming it, what holds it
    and ``way_out`` (default: choose another ``key``); UserError if it cannot be created.
    """
    path = Path(path)
    way_out = way_out or f"choose another {key}"
    for candidate in candidates(path, timestamped):
        try:
            got = _try_claim(candidate, overwrite)
        except OSError as exc:
            why = f"cannot create or write into it ({exc.strerror})"
            raise UserError(f"{key}={path} is not allowed: {why}") from None
        if isinstance(got, Claim):
            return got
        if not timestamped:
            raise DirectoryTaken(f"{key}={path} is not allowed: the directory holds {got}; {way_out}")
    raise DirectoryTaken(f"{key}={path} is not allowed: {MAX_SUFFIX} runs started in the same second")


def claim_sweep(path: str | Path, key: str, timestamped: bool, resume: bool) -> Path:
    """Make the directory of a sweep; returns it (for a timestamped one maybe ``path_N``).

    A directory given explicitly that holds an earlier sweep is refused unless ``resume`` (which continues
    it); one whose sweep still runs is refused always.
    """
    path = Path(path)
    for candidate in candidates(path, timestamped):
        try:
            candidate.mkdir(parents=True, exist_ok=not timestamped)
        except FileExistsError:  # another sweep started in the same second
            continue
        except OSError as exc:
            why = f"cannot create or write into it ({exc.strerror})"
            raise UserError(f"{key}={path} is not allowed: {why}") from None
        why = sweep_occupant(candidate) if not timestamped else None
        single = why is not None and is_job(candidate)
        if why is not None and (why.live or single or not resume):
            another = f"choose another {key}"
            way_out = f"wait for it, or {another}" if why.live else another
            if not why.live and not single:
                way_out = f"add resume=true to continue it, or {another}"
            raise DirectoryTaken(f"{key}={path} is not allowed: the directory holds {why}; {way_out}")
        return candidate
    raise DirectoryTaken(f"{key}={path} is not allowed: {MAX_SUFFIX} sweeps started in the same second")
