"""The run directory's contract: every file name, the summary as one typed record, and the three rules.

Every writer (:class:`initlab.runs.write.RunWriter`) and every reader (:mod:`initlab.runs`, the sweep
index, resume, ``initlab plot``/``check``/``export-tb``) takes its names and rules from here.

* :func:`is_run` -- a directory a run writer wrote into: it holds ``summary.json`` (written the moment the
  run claims its directory), ``metrics.parquet`` (finished or still in parts; runs of older versions) or
  a run's lock ``.initlab.lock``.
* :func:`is_job` -- a run, or a directory Hydra set up for one (``.hydra/overrides.yaml``) whose process
  ended before it wrote anything: what a sweep's index lists (the latter as ``missing``).
* :func:`is_occupied` / :func:`occupant` -- whether, and by what, a directory is taken: a live run, a run
  killed hard, a finished run, runs in its subdirectories. A run that stopped before its first step
  (``failed`` or ``interrupted``, ``steps_done`` 0) leaves a directory that is *not* taken: the next run
  clears it and starts there.

:class:`Summary` is ``summary.json``: the same typed fields for ``initlab run``, :func:`initlab.run`, sweep
jobs and :func:`initlab.probe`, plus ``extra``, the fields one stage adds (the training run's mean-field
depth scales, the class-prior entropy, LSUV's variances), written flat beside them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

# --- the files of a run directory --------------------------------------------------------------------
METRICS_FILE = "metrics.parquet"  # one row per (step, split)
LAYERS_FILE = "layers.parquet"  # probe statistics: one row per (step, layer, quantity)
HISTS_FILE = "hists.parquet"  # histogram counts: one row per (step, layer, quantity)
HIST_EDGES_FILE = "hist_edges.parquet"  # bin edges: one row per (layer, quantity)
SUMMARY_FILE = "summary.json"  # the Summary record
THEORY_FILE = "theory.parquet"  # the mean-field prediction at step 0
MODEL_FILE = "model.pt"  # train.save_model=true: the final state_dict
MC_DROPOUT_FILE = "mc_dropout.parquet"  # train.mc_masks=K: Monte-Carlo dropout averages
# Every file a run writes (Hydra's .hydra/ aside): what is removed before a directory is used again (a
# directory left by a run that stopped before its first step, a sweep job rerun by resume, overwrite=True).
RUN_FILES = (
    METRICS_FILE,
    LAYERS_FILE,
    HISTS_FILE,
    HIST_EDGES_FILE,
    SUMMARY_FILE,
    THEORY_FILE,
    MODEL_FILE,
    MC_DROPOUT_FILE,
)
HYDRA_DIR = ".hydra"
CONFIG_FILE = Path(HYDRA_DIR) / "config.yaml"  # the composed config
OVERRIDES_FILE = Path(HYDRA_DIR) / "overrides.yaml"  # the command-line overrides
HYDRA_FILE = Path(HYDRA_DIR) / "hydra.yaml"  # Hydra's own config (job number, output directory)
LOCK_FILE = ".initlab.lock"  # the process id of the run that holds the directory

# --- the files of a sweep directory -----------------------------------------------------------------------
INDEX_FILE = "sweep.parquet"  # one row per job (initlab.sweep.index)
RESUME_FILE = ".initlab-resume.json"  # the jobs' earlier configs and statuses (initlab.sweep.resume)
SUBMITIT_DIR = ".submitit"  # submitit's job logs


def parts_dir(path: Path) -> Path:
    """Where a Parquet log keeps its flushed parts until the run closes it: ``<name>.parts/``."""
    path = Path(path)
    return path.with_name(path.name + ".parts")


# --- the summary record -------------------------------------------------------------------------------
# empty: an initlab.probe that ran to its end and recorded nothing (the reason in ``error``)
STATUSES = ("running", "completed", "diverged", "interrupted", "failed", "empty")
FINISHED = ("completed", "diverged")  # ran to their end: results
STOPPED = ("interrupted", "failed")  # stopped early; with steps_done 0 they leave a free directory
KINDS = ("train", "probe")  # train: initlab run, initlab.run, sweep jobs; probe: initlab.probe


@functools.cache
def versions() -> dict[str, str]:
    """The versions of initlab and what it runs on (from the installed packages' metadata)."""
    found = {"python": platform.python_version()}
    for key, package in (
        ("initlab", "initlab"),
        ("torch", "torch"),
        ("numpy", "numpy"),
        ("pandas", "pandas"),
        ("hydra", "hydra-core"),
    ):
        with contextlib.suppress(PackageNotFoundError):
            found[key] = version(package)
    return found


INDEXED = {"index": True}  # a Summary field that is a column of the sweep index (sweep.parquet)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Summary:
    """``summary.json``: one record, the same fields whichever writer made the run.

    ``status`` is ``running`` from the moment the run claims its directory until it closes. ``pid`` and
    ``host`` tell a run still training from one killed hard (its status stays ``running``). ``extra``
    holds the fields of one stage; they are written flat, beside the others, and read back into it.
    Fields marked :data:`INDEXED` are columns of a sweep's index, in this order.
    """

    status: str = field(default="running", metadata=INDEXED)  # running|completed|diverged|interrupted|failed
    error: str | None = field(default=None, metadata=INDEXED)  # why a failed run failed
    steps_done: int = field(default=0, metadata=INDEXED)  # updates done (initlab.probe: last step seen + 1)
    diverged_at: int | None = field(default=None, metadata=INDEXED)  # the step whose loss became NaN or inf
    final_train_loss: float | None = field(default=None, metadata=INDEXED)  # the last evaluation's
    final_train_accuracy: float | None = field(default=None, metadata=INDEXED)
    final_test_loss: float | None = field(default=None, metadata=INDEXED)
    final_test_accuracy: float | None = field(default=None, metadata=INDEXED)
    wall_seconds: float | None = field(default=None, metadata=INDEXED)  # from the claim to the close
    startup_seconds: float | None = field(default=None, metadata=INDEXED)  # from the claim to the first step
    kind: str = "train"  # train | probe
    seed: int | None = None
    started: str = field(default_factory=_now)  # when the run claimed its directory (UTC, ISO 8601)
    threads: int | None = None  # torch threads used
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=platform.node)
    versions: dict[str, str] = field(default_factory=versions)
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, fields: Mapping[str, Any] = (), /, **more: Any) -> None:
        """Set fields by name; names that are no field of the record go to ``extra``."""
        for name, value in {**dict(fields), **more}.items():
            if name in _FIELDS:
                setattr(self, name, value)
            else:
                self.extra[name] = value

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``summary.json``: every field, then ``extra``'s, flat."""
        out = {f: getattr(self, f) for f in _FIELDS}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """The record of a ``summary.json`` object (fields it lacks keep their defaults)."""
        record = cls(pid=0, host="", versions={}, started="")
        record.update(data)
        return record

    def alive(self) -> bool:
        """Whether the process that wrote this ``running`` record still runs (another host: assumed)."""
        if self.host != platform.node() or not self.pid:
            return True
        return process_alive(self.pid)


_FIELDS = tuple(f.name for f in dataclasses.fields(Summary) if f.name != "extra")
SUMMARY_FIELDS = _FIELDS  # the typed fields of summary.json, in file order
INDEX_FIELDS = tuple(f.name for f in dataclasses.fields(Summary) if f.metadata.get("index"))  # sweep.parquet


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run's summary.json as a dict; ``{"status": "missing", "error": ...}`` when absent or unreadable."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return {"status": "missing", "error": f"no {SUMMARY_FILE}"}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {"status": "missing", "error": f"{SUMMARY_FILE} unreadable: {exc}"}
    return data if isinstance(data, dict) else {"status": "missing", "error": f"{SUMMARY_FILE} is no object"}


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a process that exited but was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    with contextlib.suppress(OSError):
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115  (Linux only; elsewhere trust os.kill)
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


# --- the three rules ------------------------------------------------------------------------------------


def is_run(path: str | Path) -> bool:
    """A run directory: it holds ``summary.json``, ``metrics.parquet`` (or that log's parts) or the lock
    of a run that claimed it."""
    return has_run_files(path) or (Path(path) / LOCK_FILE).exists()


def has_run_files(path: str | Path) -> bool:
    """Whether ``path`` holds ``summary.json`` or ``metrics.parquet`` (or that log's parts)."""
    path = Path(path)
    metrics = path / METRICS_FILE
    return any(p.exists() for p in (path / SUMMARY_FILE, metrics, parts_dir(metrics)))


def is_job(path: str | Path) -> bool:
    """A sweep's job directory: a run, or a directory Hydra set up for one (``.hydra/overrides.yaml``)."""
    return is_run(path) or (Path(path) / OVERRIDES_FILE).is_file()


class Occupant(NamedTuple):
    """What holds a directory, in words (``what``), and whether its process still runs (``live``)."""

    what: str
    live: bool = False

    def __str__(self) -> str:
        return self.what


def lock_holder(path: str | Path) -> int | None:
    """The process id in ``path``'s lock file (0 if it names none), or None without a lock file."""
    try:
        text = (Path(path) / LOCK_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def lock_held(path: str | Path) -> bool:
    """Whether a live process holds ``path``'s lock (an ``flock`` the kernel drops when it dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: trust the process id
        pid = lock_holder(path)
        return bool(pid) and process_alive(pid)  # type: ignore[arg-type]
    try:
        fd = os.open(Path(path) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing drops the shared lock taken for the test)
    return False


def occupant(path: str | Path) -> Occupant | None:
    """Why ``path`` is taken -- a live run, a run killed hard, a finished run -- or None if it is free.

    Free: no directory, an empty one, one with other files only, and one whose run stopped before its
    first step (status ``failed`` or ``interrupted``, ``steps_done`` 0, no lock): nothing of a result.
    """
    pid = lock_holder(path)
    if pid is not None:
        if lock_held(path):
            return Occupant("a run still in progress" + (f" (process {pid})" if pid else ""), live=True)
        return Occupant("a run that was killed" + (f" (process {pid})" if pid else ""))
    return recorded_occupant(path)


def is_occupied(path: str | Path) -> bool:
    """Whether ``path`` is taken (:func:`occupant` names what takes it)."""
    return occupant(path) is not None


def recorded_occupant(path: str | Path) -> Occupant | None:
    """What the run files of ``path`` say holds it (its lock aside); see :func:`occupant`.

    A directory with runs below it is taken too: a run written there would hide them from every reader
    (which never descends into a run).
    """
    if not has_run_files(path):
        below = next(_walk(Path(path), is_job, top=False), None)
        return Occupant(f"runs in its subdirectories ({below})") if below is not None else None
    summary = Summary.from_dict(read_summary(path))
    if summary.status in STOPPED and summary.steps_done == 0:
        return None
    if summary.status == "running":  # without a lock: killed, unless a process of this host still runs it
        if summary.pid and summary.host == platform.node() and process_alive(summary.pid):
            return Occupant(f"a run still in progress (process {summary.pid})", live=True)
        return Occupant("a run that was killed" + (f" (process {summary.pid})" if summary.pid else ""))
    if summary.status not in STATUSES:  # a metrics log without a readable summary.json
        return Occupant("a run without a readable summary.json")
    return Occupant(f"a finished run ({summary.status} after {summary.steps_done} steps)")


def sweep_occupant(path: str | Path) -> Occupant | None:
    """Why the sweep directory ``path`` is taken: a run of its own, a job still running, or any earlier
    job or index (which only ``resume=true`` may continue); None if it holds none of them."""
    path = Path(path)
    if is_job(path):
        return Occupant("a single run, not a sweep")
    jobs = find_jobs(path)
    for job in jobs:
        if (why := occupant(job)) is not None and why.live:
            return Occupant(f"a sweep still running ({job.name}: {why})", live=True)
    if jobs or (path / INDEX_FILE).exists():
        return Occupant(f"an earlier sweep ({len(jobs)} job directories)")
    return None


# --- finding them -------------------------------------------------------------------------------------------


def natural_key(text: str) -> list[Any]:
    """Sort "2" before "10" (job directories are numbered)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _walk(root: Path, rule: Any, top: bool = True) -> Iterator[Path]:
    """``root`` if it satisfies ``rule`` (and ``top``), else every directory below it that does, in natural
    order, never descending into one that does nor into hidden directories (``.hydra``, ``.submitit``)."""
    if top and rule(root):
        yield root
        return
    if not root.is_dir():
        return
    children = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for child in sorted(children, key=lambda p: natural_key(p.name)):
        yield from _walk(child, rule)


def find_runs(root: str | Path) -> list[Path]:
    """Every run directory at or below ``root`` (:func:`is_run`): what figures and claims read."""
    return list(_walk(Path(root), is_run))


def find_jobs(root: str | Path) -> list[Path]:
    """Every job directory at or below ``root`` (:func:`is_job`): what a sweep's index lists."""
    return list(_walk(Path(root), is_job))
