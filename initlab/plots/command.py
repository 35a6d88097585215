"""The ``initlab plot`` command: argument parsing, writing files and ``index.md`` (the figures: the rows of
:data:`initlab.plots.figures.FIGURES`)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from initlab.plots.common import Options, Skip
from initlab.plots.figures import FIGURES
from initlab.plots.style import DPI, FORMATS, group_runs, setup_title
from initlab.runs import Run, collect_runs
from initlab.runs.grouping import label


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, FIGURES))
    epilog = "figures:\n" + "\n".join(
        f"  {n:<{width}}  {f.description}\n  {'':<{width}}  needs: {f.needs}" for n, f in FIGURES.items()
    )
    epilog += (
        "\n\nWrites PATH/figures/NAME.png (or --out DIR), table.md, table.csv, index.md; prints each path."
        "\nExit status: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line."
    )
    parser = argparse.ArgumentParser(
        prog="initlab plot",
        description="Draw the figures of run and sweep directories from their logs (nothing is retrained).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run directory, sweep directory or glob")
    parser.add_argument("--figures", default="all", help="comma-separated figure names (default: all)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: PATH/figures)")
    parser.add_argument("--format", default="png", help="comma-separated: png, pdf, svg (default: png)")
    parser.add_argument(
        "--steps", default="0", help="probe steps of hist and depth, e.g. 0,100,last (default: 0)"
    )
    parser.add_argument(
        "--layers",
        help="layer indices, e.g. 1,3 (hist/stats/depth: these layers instead of all hidden ones; "
        "percentiles/heatmap: one figure per layer instead of the last hidden layer)",
    )
    parser.add_argument(
        "--xscale",
        choices=("auto", "linear", "log"),
        default="auto",
        help="step axes: auto = symlog when probes are log-spaced (default), linear, log (symlog)",
    )
    parser.add_argument("--logy", action="store_true", help="log-scale loss and error axes in curves")
    parser.add_argument(
        "--color-by", metavar="KEY", help="swept key that picks the line colors (default: init, else act)"
    )
    parser.add_argument(
        "--ref-ratio",
        type=float,
        metavar="R",
        help="depth: dashed reference line whose variance changes by R per layer (e.g. 0.5 = 2^-L)",
    )
    return parser


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fail(message: str) -> int:
    print(f"initlab plot: error: {message}", file=sys.stderr)
    return 2


def _default_out(paths: Sequence[str], runs: Sequence[Run]) -> Path:
    """``PATH/figures`` for one directory; else ``figures/`` in the deepest folder holding every run."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return Path(paths[0]) / "figures"
    if len(runs) == 1:
        return runs[0].path / "figures"
    try:
        return Path(os.path.commonpath([str(r.path) for r in runs])) / "figures"
    except ValueError:  # relative and absolute paths mixed
        return Path(os.path.commonpath([str(r.path.resolve()) for r in runs])) / "figures"


def write_figure_index(
    out: Path, runs: Sequence[Run], written: list[tuple[str, str, list[Path]]], skipped: list[str]
) -> Path:
    """``index.md``: the runs, then each figure embedded with its sentence, then what was skipped."""
    lines = [
        f"# Figures: {setup_title(runs) or 'runs'}",
        "",
        "| label | run directory | status | steps |",
        "|---|---|---|---:|",
    ]
    for _, members in group_runs(runs):
        for run in members:
            where = os.path.relpath(run.path, out)
            status = run.summary.get("status", "unknown")
            steps = run.summary.get("steps_done", "")
            text = label(run, runs).replace("|", "\\|")
            lines.append(f"| {text} | [{where}]({where}) | {status} | {steps} |")
    for figure, caption, files in written:
        lines += [
            "",
            f"## {figure}",
            "",
            caption[0].upper() + caption[1:] + ("" if caption.endswith(".") else "."),
        ]
        shown = next((f for f in files if f.suffix in (".png", ".svg", ".md")), None)
        if shown is not None and shown.suffix == ".md":
            lines += ["", shown.read_text().rstrip()]
        elif shown is not None:
            lines += ["", f"![{figure}]({shown.name})"]
        others = [f for f in files if f is not shown or f.suffix == ".md"]
        if others:
            lines += ["", "Files: " + ", ".join(f"[{f.name}]({f.name})" for f in others) + "."]
    if skipped:
        lines += ["", "## Not drawn", ""] + [f"- {s}" for s in skipped]
    path = out / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _warn_new_problems(runs: list[Run], reported: set[str]) -> None:
    """One warning line per log file that exists but could not be read, the first time it is met."""
    for run in runs:
        for problem in run.problems:
            if problem not in reported:
                reported.add(problem)
                print(f"initlab plot: warning: {problem}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """``initlab plot``: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line."""
    matplotlib.use("Agg")  # never a window, whatever backend the environment asks for
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed by argparse)
        return int(exc.code or 0)
    names = list(FIGURES) if args.figures.strip() == "all" else _split(args.figures)
    unknown = [n for n in names if n not in FIGURES]
    if unknown or not names:
        return _fail(
            f"unknown figure {', '.join(map(repr, unknown)) or '(none)'}: "
            f"expected a comma-separated list of {', '.join(FIGURES)} (or all)"
        )
    formats = _split(args.format.lower())
    if not formats or any(f not in FORMATS for f in formats):
        return _fail(
            f"--format {args.format!r} is not allowed: expected a comma-separated list of "
            f"{', '.join(FORMATS)}"
        )
    steps: list[int | str] = []
    for part in _split(args.steps):
        if part in ("last", "final", "end"):
            steps.append("last")
        elif part.isdigit():
            steps.append(int(part))
        else:
            return _fail(
                f"--steps {args.steps!r} is not allowed: expected integers >= 0 or 'last', e.g. 0,last"
            )
    layers = None
    if args.layers:
        parts = _split(args.layers)
        if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
            return _fail(f"--layers {args.layers!r} is not allowed: expected integers >= 1, e.g. 1,5")
        layers = [int(p) for p in parts]

    notes: list[str] = []
    runs = collect_runs(args.paths, notes)
    for note in notes:
        print(f"initlab plot: {note}", file=sys.stderr)
    reported: set[str] = set()
    _warn_new_problems(runs, reported)
    if not runs:
        print("initlab plot: nothing drawn: no runs found", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else _default_out(args.paths, runs)

    written: list[tuple[str, str, list[Path]]] = []
    skipped: list[str] = []
    for name in names:
        function, description = FIGURES[name].make, FIGURES[name].description
        opts = Options(
            steps=steps or [0],
            layers=layers,
            xscale=args.xscale,
            logy=args.logy,
            color_by=args.color_by,
            ref_ratio=args.ref_ratio,
        )
        problems = []
        try:
            with warnings.catch_warnings():  # Matplotlib's complaints about odd data are not the user's news
                warnings.simplefilter("ignore")
                outputs = function(runs, opts)
                out.mkdir(parents=True, exist_ok=True)
                texts = []
                for stem, item in outputs:
                    if isinstance(item, str):
                        texts += _save(out, stem, item, formats)
                        continue
                    files = _save(out, stem, item, formats)
                    written.append((stem, item.get_label() or description, files))
                    print(*files, sep="\n", flush=True)
                if texts:
                    written.append((name, description, texts))
                    print(*texts, sep="\n", flush=True)
        except Skip as skip:
            problems.append(f"{name}: {skip}")
        except OSError as exc:
            problems.append(f"{name}: cannot write to {out} ({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001 - one odd run must not end the command with a traceback
            problems.append(f"{name}: could not be drawn ({type(exc).__name__}: {exc})")
        _warn_new_problems(runs, reported)  # files are read lazily, by the first figure that needs them
        for line in problems + opts.notes:
            print(f"initlab plot: skipped {line}", file=sys.stderr, flush=True)
        skipped += problems + opts.notes
    if not written:
        print("initlab plot: nothing drawn", file=sys.stderr)
        return 1
    try:
        print(write_figure_index(out, runs, written, skipped))
    except OSError as exc:
        print(f"initlab plot: warning: index.md not written ({exc})", file=sys.stderr)
    return 0


def _save(out: Path, stem: str, item: Figure | str, formats: Sequence[str]) -> list[Path]:
    """Write a figure in every format (or a text output as is); returns the files written."""
    if isinstance(item, str):
        path = out / stem
        path.write_text(item)
        return [path]
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        item.savefig(path, dpi=DPI, metadata={"Title": stem})
        paths.append(path)
    return paths
