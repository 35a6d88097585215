"""The ``initlab`` command: ``run`` (a Hydra application), ``list``, ``plot``, ``sweep-index``, ``check``.

``initlab run [-m] [overrides...]`` hands its arguments to Hydra unchanged, so everything Hydra offers
(``--help``, ``--cfg job``, ``-m`` sweeps, launchers) works. The other sub-commands are plain argparse
programs that only read what runs left on disk.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from initlab import completion
from initlab.config import config_dir, group_options, groups
from initlab.errors import AbortRun, UserError, hydra_error_line, one_line_warnings

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def error(message: str) -> None:
    print(f"initlab: error: {message}", file=sys.stderr)


def _task(cfg: DictConfig) -> None:
    """Hydra's task function: one job of ``initlab run``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from initlab.sweep.callback import configure_job, lifeline

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun:
        configure_job(cfg, hc)  # torch threads and progress bar for parallel launchers
    with lifeline.training():  # a job whose launcher dies records its status and indexes its sweep
        _run_job(cfg, hc, multirun)


def _run_job(cfg: DictConfig, hc: DictConfig, multirun: bool) -> None:
    from initlab.config import validate
    from initlab.sweep import lifeline
    from initlab.sweep.callback import index_orphaned_job, job_label
    from initlab.sweep.session import SESSION

    run_dir = Path(hc.runtime.output_dir)
    where = f"job {hc.job.num} ({' '.join(hc.overrides.task)}): " if multirun else ""
    label = job_label(hc) if multirun else None
    claimed = None if multirun else SESSION.take_claim()  # a sweep's job claims its directory in train()
    try:
        if not multirun:  # refused before torch is even imported (a sweep's train() records the failure)
            validate(cfg)
            if note := single_run_note(hc):
                print(f"initlab: note: {note}", file=sys.stderr, flush=True)
        from initlab.lab.train import train
        from initlab.runs.write import RunWriter

        run = RunWriter(claimed, seed=cfg.get("seed")) if claimed is not None else run_dir
        summary = train(cfg, run, label)  # writes summary.json, also the record of a failed run
    except UserError as exc:
        if not multirun:  # rejected before training: leave no run directory
            if claimed is not None:
                claimed.discard()
            raise AbortRun(str(exc)) from None
        error(where + str(exc))  # a sweep's job keeps its `failed` record for the index
        return
    except OSError as exc:  # a full disk, a folder gone read-only: one line; summary.json says "failed"
        if not multirun:
            raise AbortRun(f"{os_error_line(exc)}; what was logged is kept in {run_dir}") from None
        error(f"{where}failed: {os_error_line(exc)}")
        return
    except Exception as exc:
        if not multirun:
            raise
        error(f"{where}failed: {type(exc).__name__}: {exc}")  # recorded in summary.json by train()
        return
    finally:
        if claimed is not None:
            claimed.release()
    if summary["status"] == "interrupted":
        if multirun and lifeline.orphaned(wait=1.0):  # (a signal to the whole group reaches the job first)
            index_orphaned_job(Path(hc.sweep.dir))  # ends this process: it takes no further job
        if multirun:
            raise KeyboardInterrupt
        sys.exit(EXIT_INTERRUPTED)
    if not multirun:
        print(
            f"initlab: {summary['status']} after {summary['steps_done']} steps: "
            f"test accuracy {summary.get('final_test_accuracy', float('nan')):.4f}; run directory {run_dir}"
        )


def single_run_note(hc: DictConfig) -> str | None:
    """What a run without ``-m`` of a config that sweeps (an experiment preset's ``hydra.sweeper.params``)
    trains: one configuration, the preset's defaults, not the sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = dict(OmegaConf.select(hc, "sweeper.params", default=None) or {})
    if not params:
        return None
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    jobs = 1
    for override in overrides:
        if override.is_discrete_sweep():
            jobs *= len(list(override.sweep_string_iterator()))
    return (
        f"this config sweeps {', '.join(params)} ({jobs} jobs with -m); without -m this trains one "
        "configuration, the defaults: add -m to run the sweep"
    )


@contextlib.contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let errors out of Hydra's app (which otherwise prints them over many lines and exits with 1)."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def cmd_run(argv: list[str]) -> int:
    """Train one network (or sweep with -m); arguments go to Hydra."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from initlab.sweep.callback import index_interrupted_sweep, lifeline, silence_launcher_schema_warning
    from initlab.sweep.objective import missing_sweeper, returning_objective
    from initlab.sweep.resume import resumable
    from initlab.sweep.session import SESSION

    if completion.requested(argv):  # Hydra's completion, answered for the command `initlab`
        return completion.main(argv, COMMANDS)
    if argv == ["--version"]:  # Hydra's flag would print Hydra's version
        print(version_line())
        return 0
    if problem := missing_sweeper(argv):
        raise UserError(problem)
    silence_launcher_schema_warning()
    one_line_warnings()
    lifeline.mark_launcher()  # the jobs of a sweep end when this process does
    # the job returns the configured objective (for sweepers such as Optuna)
    app = hydra.main(version_base=None, config_path=str(config_dir()), config_name="config")(
        returning_objective(resumable(_task))
    )
    sys.argv = ["initlab run", *argv]
    try:
        with _hydra_raises():
            app()
    except AbortRun as exc:  # refused before training: a bad value, a taken run directory...
        error(str(exc))
        return EXIT_USER_ERROR
    except (HydraException, OmegaConfBaseException) as exc:  # unknown group option or key, bad override
        error(hydra_error_line(exc))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C in a sweep: the job in flight kept its logs; stop the sweep quietly
        index = index_interrupted_sweep()
        error(f"sweep interrupted; what its jobs logged is indexed in {index}" if index else "interrupted")
        return EXIT_INTERRUPTED
    finally:
        code = SESSION.end()  # gives back a run directory that no task took
    return code  # 1 after a multirun in which a job failed (set by SweepCallback)


def _describe(path: Path) -> str:
    """The first paragraph of a config file's header comment, joined into one line (``# @package`` and
    ``#   command`` example lines are not part of it)."""
    lines: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("# @"):
            continue
        text = line[1:].strip() if line.startswith("#") else None
        if not text or line.startswith("#   "):  # end of the paragraph, an example, or the config itself
            if lines or text is None:
                break
            continue
        lines.append(text)
    return " ".join(lines)


def cmd_list(argv: list[str]) -> int:
    """Print every config group with its options (read from conf/)."""
    import argparse
    import shutil
    import textwrap

    parser = argparse.ArgumentParser(prog="initlab list", description=cmd_list.__doc__)
    parser.add_argument(
        "groups", nargs="*", metavar="GROUP", help=f"only these groups: {', '.join(groups())}"
    )
    parser.add_argument(
        "--names",
        action="store_true",
        help="only the option names, one per line (GROUP=NAME when several groups are listed): for scripts",
    )
    args = parser.parse_args(argv)
    if unknown := [g for g in args.groups if g not in groups()]:
        raise UserError(f"unknown group {unknown[0]!r}: expected one of {', '.join(groups())}")
    chosen = args.groups or groups()
    options = {group: group_options(group) for group in chosen}
    if args.names:
        for group in chosen:
            print(*(name if len(chosen) == 1 else f"{group}={name}" for name in options[group]), sep="\n")
        return 0
    column = 2 + max(len(option) for names in options.values() for option in names) + 2
    width = max(column + 30, shutil.get_terminal_size((100, 24)).columns)
    for group in chosen:
        print(f"{group}:")
        for option in options[group]:
            text = _describe(config_dir() / group / f"{option}.yaml")
            first = f"  {option:<{column - 4}}  "
            wrapped = textwrap.fill(text, width, initial_indent=first, subsequent_indent=" " * column)
            print(wrapped or first.rstrip())
    return 0


# name -> "module:function" (imported on demand, so `initlab run` does not load matplotlib)
COMMANDS: dict[str, str | Callable[[list[str]], int]] = {
    "run": cmd_run,
    "list": cmd_list,
    "plot": "initlab.plots:main",
    "sweep-index": "initlab.sweep.index:main",
    "check": "initlab.claims:main",
    "theory": "initlab.theory_cli:main",
    "export-tb": "initlab.export_tb:main",
    "doctor": "initlab.diagnosis.command:main",
}
HELP = {
    "run": "train one network (or a sweep with -m) from Hydra configs; `initlab run --help`",
    "list": "print the options of every config group",
    "plot": "draw the figures of run or sweep directories from their logs",
    "sweep-index": "rebuild a sweep directory's sweep.parquet from its job directories",
    "check": "evaluate the papers' claims on a sweep directory, write claims.md (exit 3: incomplete)",
    "theory": "print the mean-field prediction (per-layer variances, chi_1, xi_c, phase) for a config",
    "export-tb": "write TensorBoard event files (scalars, histograms, HParams) of run or sweep directories",
    "doctor": "diagnose a net in a short probed training: findings, thresholds, sources, fixes (--verify)",
}


def usage() -> str:
    lines = ["usage: initlab COMMAND [ARGS...]", "       initlab --version | -sc install=bash"]
    lines += ["", "commands:"]
    lines += [f"  {name:<12} {HELP[name]}" for name in COMMANDS]
    lines += [
        "",
        "Shell completion (bash; zsh via bashcompinit; fish: install=fish, piped to `source`):",
        '  eval "$(initlab -sc install=bash)"',
    ]
    return "\n".join(lines)


def version_line() -> str:
    """``initlab 0.1.0 (torch ..., hydra ...)``: the installed package's version (its metadata)."""
    from importlib.metadata import version

    from initlab import __version__

    return f"initlab {__version__} (torch {version('torch')}, hydra-core {version('hydra-core')})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] in ("--version", "-V"):
        print(version_line())
        return 0
    if completion.requested(argv[:1]):  # `initlab -sc query=bash`: what the completion script calls
        try:
            return completion.main(argv, COMMANDS)
        except UserError as exc:
            error(str(exc))
            return EXIT_USER_ERROR
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        error(f"unknown command {name!r}: expected one of {', '.join(COMMANDS)}")
        return EXIT_USER_ERROR
    command = COMMANDS[name]
    if isinstance(command, str):
        module, func = command.split(":")
        command = getattr(importlib.import_module(module), func)
    try:
        return int(command(rest) or 0)
    except UserError as exc:
        error(str(exc))
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # a read-only folder, a full disk: one line, not a traceback
        error(os_error_line(exc))
        return EXIT_USER_ERROR


# errno -> what to do (the commands write next to the runs unless told otherwise)
OS_ADVICE = {
    errno.EROFS: "a read-only file system: write elsewhere (--out DIR, or copy the runs to a writable place)",
    errno.EACCES: "no permission to write there: write elsewhere (--out DIR) or change its permissions",
    errno.EPERM: "no permission to write there: write elsewhere (--out DIR) or change its permissions",
    errno.ENOSPC: "the disk is full: free some space and run the command again (resume=true for a sweep)",
    errno.EDQUOT: "the disk quota is used up: free some space and run the command again",
}


def os_error_line(exc: OSError) -> str:
    """``PATH: what happened: what to do`` for an operating-system error. pyarrow's errors carry no
    ``filename``: the path is read from their message (and a temporary ``NAME.PID.tmp`` said as ``NAME``)."""
    where = exc.filename
    if where is None and (found := re.search(r"local file '([^']+)'", str(exc))):
        where = re.sub(r"\.\d+\.tmp$", "", found.group(1))
    what = OS_ADVICE.get(exc.errno or 0, exc.strerror or " ".join(str(exc).split()))
    return f"{where}: {what}" if where is not None else what


if __name__ == "__main__":
    raise SystemExit(main())
