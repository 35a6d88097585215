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

from initlab.errors import UserError
from initlab.plots.common import Options, Skip
from initlab.plots.figures import FIGURES
from initlab.plots.options import (
    Parser,
    check_color_by,
    existing_layers,
    format_list,
    layers_option,
    ratio,
    reachable_steps,
    split,
    steps_option,
    unwritable,
)
from initlab.plots.style import DPI, group_runs, setup_title
from initlab.runs import Run, collect_runs
from initlab.runs.grouping import label

STEP_FIGURES = ("hist", "depth")  # the figures drawn at --steps


def _figure_names(text: str) -> list[str] | None:
    """``--figures``: comma-separated names of :data:`FIGURES`, or ``all`` (None: every one that applies)."""
    if text.strip() == "all":
        return None
    names = split(text)
    unknown = [n for n in names if n not in FIGURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown figure {', '.join(map(repr, unknown)) or '(none)'}: "
            f"expected a comma-separated list of {', '.join(FIGURES)} (or all)"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, FIGURES))
    epilog = "figures:\n" + "\n".join(
        f"  {n:<{width}}  {f.description}\n  {'':<{width}}  needs: {f.needs}" for n, f in FIGURES.items()
    )
    epilog += (
        "\n\nWrites PATH/figures/NAME.png (or --out DIR), table.md, table.csv, index.md; prints each path."
        "\nFigures that do not apply to these runs are listed in index.md; those named in --figures that"
        "\ncannot be drawn are reported."
        "\nExit status: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line."
    )
    parser = Parser(
        prog="initlab plot",
        description="Draw the figures of run and sweep directories from their logs (nothing is retrained).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run directory, sweep directory or glob")
    parser.add_argument(
        "--figures", type=_figure_names, help="comma-separated figure names (default: all that apply)"
    )
    parser.add_argument("--out", metavar="DIR", help="output directory (default: PATH/figures)")
    parser.add_argument(
        "--format", type=format_list, default="png", help="comma-separated: png, pdf, svg (default: png)"
    )
    parser.add_argument(
        "--steps",
        type=steps_option,
        default="0",
        help="probe steps of hist and depth, e.g. 0,100,last (default: 0)",
    )
    parser.add_argument(
        "--layers",
        type=layers_option,
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
        type=ratio,
        metavar="R",
        help="depth: dotted reference line whose variance changes by R > 0 per layer (e.g. 0.5 = 2^-L)",
    )
    return parser


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
        lines += ["", "## Not drawn", "", "(They do not apply to these runs, or could not be drawn.)", ""]
        lines += [f"- {s}" for s in skipped]
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
    """``initlab plot``: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line.

    A figure that does not apply to these runs (no probes, no saved model, ...) is not drawn and only listed
    in ``index.md``; one the user named in ``--figures`` and could not get is reported on stderr.
    """
    matplotlib.use("Agg")  # never a window, whatever backend the environment asks for
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UserError as exc:
        return _fail(str(exc))
    asked = args.figures is not None
    names = args.figures or list(FIGURES)

    notes: list[str] = []
    runs = collect_runs(args.paths, notes)
    for note in notes:
        print(f"initlab plot: {note}", file=sys.stderr)
    reported: set[str] = set()
    _warn_new_problems(runs, reported)
    if not runs:
        print("initlab plot: nothing drawn: no runs found", file=sys.stderr)
        return 1
    try:
        check_color_by(args.color_by, runs)
    except UserError as exc:
        return _fail(str(exc))
    training = [r for r in runs if r.summary.get("status") == "running"]
    if training:
        print(
            f"initlab plot: note: {len(training)} of {len(runs)} runs still training "
            f"({', '.join(str(r.path) for r in training[:3])}{', ...' if len(training) > 3 else ''}): "
            "the figures show what they have logged so far",
            file=sys.stderr,
        )
    layers, missing = existing_layers(args.layers, runs)
    if missing and not layers:
        return _fail(missing)
    if missing:
        print(f"initlab plot: {missing}", file=sys.stderr)
    steps, unreachable = reachable_steps(args.steps, runs)
    for message in unreachable:
        print(f"initlab plot: {message}", file=sys.stderr)
    out = Path(args.out) if args.out else _default_out(args.paths, runs)
    if problem := unwritable(out):
        return _fail(problem)

    written: list[tuple[str, str, list[Path]]] = []
    not_drawn: list[str] = []
    unsaid: list[str] = []  # figures that do not apply, listed in index.md only
    for name in names:
        opts = Options(
            steps=steps,
            layers=layers,
            xscale=args.xscale,
            logy=args.logy,
            color_by=args.color_by,
            ref_ratio=args.ref_ratio,
        )
        if name in STEP_FIGURES and not steps:
            problem, inapplicable = f"{name}: no probe step to draw (see --steps)", False
        else:
            problem, inapplicable = _draw(name, runs, opts, out, args.format, written)
        _warn_new_problems(runs, reported)  # files are read lazily, by the first figure that needs them
        if problem and training and inapplicable:
            problem += f" ({len(training)} runs still training: their files are written as they go)"
        if problem and (asked or not inapplicable):
            print(f"initlab plot: not drawn: {problem}", file=sys.stderr, flush=True)
        elif problem:
            unsaid.append(problem)
        for line in opts.notes:  # parts of a drawn figure left out
            print(f"initlab plot: note: {line}", file=sys.stderr, flush=True)
        not_drawn += [problem] * bool(problem) + opts.notes
    if not written:
        for line in unsaid:  # nothing applied: now say why each figure was not drawn
            print(f"initlab plot: not drawn: {line}", file=sys.stderr)
        print("initlab plot: nothing drawn", file=sys.stderr)
        return 1
    try:
        print(write_figure_index(out, runs, written, not_drawn))
    except OSError as exc:
        print(f"initlab plot: warning: index.md not written ({exc})", file=sys.stderr)
    return 0


def _draw(
    name: str,
    runs: list[Run],
    opts: Options,
    out: Path,
    formats: Sequence[str],
    written: list[tuple[str, str, list[Path]]],
) -> tuple[str, bool]:
    """Draw one figure and write its files (appended to ``written``, each path printed).

    Returns ``(problem, inapplicable)``: why it was not drawn ("" if it was), and whether that is because
    it does not apply to these runs (:class:`Skip`) rather than a failure.
    """
    function, description = FIGURES[name].make, FIGURES[name].description
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
        return f"{name}: {skip}", True
    except OSError as exc:
        return f"{name}: cannot write to {out} ({exc.strerror or exc})", False
    except Exception as exc:  # noqa: BLE001 - one odd run must not end the command with a traceback
        return f"{name}: could not be drawn ({type(exc).__name__}: {exc})", False
    return "", False


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
