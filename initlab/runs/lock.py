"""A run directory belongs to one run.

Before Hydra writes anything into a single run's directory (``hydra.run.dir``), :class:`RunDirCallback`
claims it: it creates the directory and, inside it, the lock file ``.initlab.lock`` with ``O_CREAT|O_EXCL``
(atomic: of two runs into one directory exactly one gets it) holding the run's process id. The lock goes
when the run ends; a run killed hard leaves it behind, and its directory stays taken.

* A directory given explicitly (``hydra.run.dir=DIR``) that holds a run -- live (a lock), killed (a lock
  whose process is gone) or finished (``summary.json`` or ``.hydra/``) -- is refused with one line naming
  it, before anything in it is touched.
* The default timestamped directory (``outputs/runs/DATE/TIME``) of two runs started in the same second
  would collide: the second run takes ``TIME_1`` (then ``_2``, ...) instead.
* A run rejected before training (a bad value, a model too large, options torch refuses) leaves no
  directory: :func:`discard` removes what the run created.

The same goes for a sweep's directory (``hydra.sweep.dir``): a timestamped one that exists already is
replaced by ``TIME_1`` ..., and one that cannot be created is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.errors import AbortRun
from initlab.sweep.lifeline import process_alive

LOCK_FILE = ".initlab.lock"
RUN_MARKERS = ("summary.json", ".hydra")  # what a finished run leaves
MAX_SUFFIX = 1000


@dataclass
class Claim:
    """A claimed run directory: the lock, the directories created for it, and what was there before."""

    path: Path
    created: list[Path]  # created for this run, outermost first
    before: set[str] = field(default_factory=set)

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE


_claim: Claim | None = None  # this process's single run


def occupant(path: Path) -> str | None:
    """Why ``path`` holds a run (a live, killed or finished one), or None if it holds none."""
    lock = path / LOCK_FILE
    if lock.is_file():
        text = lock.read_text().strip()
        pid = int(text) if text.isdigit() else None
        if pid is not None and process_alive(pid):
            return f"a run still in progress (process {pid})"
        return "a run that was killed" + (f" (process {pid})" if pid else "")
    if any((path / marker).exists() for marker in RUN_MARKERS):
        return "a finished run"
    return None


def _make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; returns the ones created, outermost first."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    path.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _try_claim(path: Path) -> Claim | str:
    """Claim ``path``, or say why it is taken."""
    why = occupant(path) if path.is_dir() else None
    if why:
        return why
    created = _make_dirs(path)
    before = set(os.listdir(path))
    try:
        fd = os.open(path / LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return occupant(path) or "a run starting at the same moment"
    with os.fdopen(fd, "w") as lock:
        lock.write(f"{os.getpid()}\n")
    return Claim(path, created, before)


def _candidates(path: Path, timestamped: bool) -> list[Path]:
    if not timestamped:
        return [path]
    return [path] + [path.with_name(f"{path.name}_{n}") for n in range(1, MAX_SUFFIX)]


def claim(path: Path, key: str, timestamped: bool) -> Claim:
    """Claim the run directory ``path`` (the value of the setting ``key``); AbortRun if it is taken."""
    for candidate in _candidates(path, timestamped):
        try:
            got = _try_claim(candidate)
        except OSError as exc:
            why = f"cannot create or write into it ({exc.strerror})"
            raise AbortRun(f"{key}={path} is not allowed: {why}") from None
        if isinstance(got, Claim):
            return got
        if not timestamped:
            raise AbortRun(f"{key}={path} is not allowed: the directory holds {got}; choose another {key}")
    raise AbortRun(f"{key}={path} is not allowed: {MAX_SUFFIX} runs started in the same second")


def release() -> None:
    """The run ended (whatever its status): remove its lock."""
    global _claim
    if _claim is not None:
        with contextlib.suppress(FileNotFoundError):
            _claim.lock.unlink()
        _claim = None


def discard() -> None:
    """The run was rejected before training: remove everything it created (its directory if it made it)."""
    global _claim
    if _claim is None:
        return
    claimed, _claim = _claim, None
    if claimed.created:  # the directory, then the parents made for it while they are empty (another run
        shutil.rmtree(claimed.path, ignore_errors=True)  # started at the same time may share them)
        for parent in reversed(claimed.created[:-1]):
            try:
                parent.rmdir()
            except OSError:
                break
        return
    for name in set(os.listdir(claimed.path)) - claimed.before:
        target = claimed.path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _timestamped(config: DictConfig, key: str) -> bool:
    """Whether the directory setting ``hydra.<key>.dir`` is Hydra's ``${now:...}`` default kind."""
    raw = OmegaConf.to_container(config.hydra[key], resolve=False)
    return "${now:" in str(raw.get("dir", "")) if isinstance(raw, dict) else False


class RunDirCallback(Callback):
    """Claims a single run's directory before Hydra writes into it; makes sure a sweep's can be created."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _claim
        path = Path(str(config.hydra.run.dir))
        _claim = claim(path, "hydra.run.dir", _timestamped(config, "run"))
        if _claim.path != path:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.run.dir = str(_claim.path)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(str(config.hydra.sweep.dir))
        candidates = _candidates(path, _timestamped(config, "sweep"))
        for candidate in candidates:
            try:
                candidate.mkdir(parents=True, exist_ok=len(candidates) == 1)
                break
            except FileExistsError:  # another sweep started in the same second
                continue
            except OSError as exc:
                why = f"cannot create or write into it ({exc.strerror})"
                raise AbortRun(f"hydra.sweep.dir={path} is not allowed: {why}") from None
        if candidate != path:  # the jobs compose their config anew: they learn the directory from overrides
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.sweep.dir = str(candidate)
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={candidate}")
