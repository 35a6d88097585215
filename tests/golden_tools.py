"""What ``initlab plot``, ``check`` and ``sweep-index`` make of a fixed set of run directories, as text.

Used by ``tests/test_golden.py`` and ``tests/golden/regenerate.py``. Figures are not compared as images
(pixels change with fonts and Matplotlib versions) but as a signature of what they draw: per axes its
titles, labels, scales, legend texts, and every line's label, color, style and data.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

GOLDEN = Path(__file__).resolve().parent / "golden"
RUNS = GOLDEN / "runs"
OUTPUTS = GOLDEN / "outputs"
SWEEPS = ("he", "dropout", "bn")


def _num(x: Any) -> Any:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.6g}")


def _nums(values: Any) -> list[Any]:
    return [_num(v) for v in np.ma.filled(np.ma.asarray(values, dtype=float), np.nan).ravel()]


def figure_signature(fig: Figure) -> dict[str, Any]:
    """What a figure draws, as plain data (see the module docstring)."""
    axes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        legend = ax.get_legend()
        axes.append(
            {
                "title": ax.get_title(),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "xscale": ax.get_xscale(),
                "yscale": ax.get_yscale(),
                "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                "lines": [
                    {
                        "label": line.get_label(),
                        "color": to_hex(line.get_color()),
                        "linestyle": line.get_linestyle(),
                        "marker": str(line.get_marker()),
                        "x": _nums(line.get_xdata()),
                        "y": _nums(line.get_ydata()),
                    }
                    for line in ax.get_lines()
                ],
                "collections": [
                    {
                        "type": type(c).__name__,
                        "array": _nums(c.get_array()) if c.get_array() is not None else [],
                    }
                    for c in ax.collections
                ],
            }
        )
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    legends = [[t.get_text() for t in leg.get_texts()] for leg in fig.legends]
    return {"label": fig.get_label(), "suptitle": suptitle, "legends": legends, "axes": axes}


@contextlib.contextmanager
def figures_as_signatures():
    """While active, ``Figure.savefig(path)`` writes the figure's signature as JSON to ``path.json``."""
    original = Figure.savefig

    def savefig(self: Figure, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(str(path) + ".json").write_text(json.dumps(figure_signature(self), indent=1, ensure_ascii=False))

    Figure.savefig = savefig
    try:
        yield
    finally:
        Figure.savefig = original


def _call(argv: list[str]) -> tuple[int, str]:
    from initlab import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue() + err.getvalue()


def run_commands(tmp: Path, name: str) -> dict[str, str]:
    """Copy the golden runs of sweep ``name`` to ``tmp`` and return every output as text, paths neutral."""
    sweep = tmp / name
    shutil.rmtree(sweep, ignore_errors=True)
    shutil.copytree(RUNS / name, sweep)
    produced: dict[str, str] = {}
    code, text = _call(["sweep-index", str(sweep)])
    produced["sweep-index.txt"] = f"exit {code}\n{text}"
    index = pd.read_parquet(sweep / "sweep.parquet")
    index["dir"] = index["dir"].map(lambda d: str(Path(d).relative_to(sweep.resolve())))
    produced["sweep.csv"] = index.drop(columns=["wall_seconds", "startup_seconds"]).to_csv(index=False)
    produced["dtypes.txt"] = "\n".join(f"{c}: {t}" for c, t in index.dtypes.astype(str).items()) + "\n"
    with figures_as_signatures():
        code, text = _call(["plot", str(sweep), "--steps", "0,last"])
    produced["plot.txt"] = f"exit {code}\n{text}"
    for f in sorted((sweep / "figures").iterdir()):
        produced[f"figures/{f.name}"] = f.read_text()
    code, text = _call(["check", str(sweep)])
    produced["check.txt"] = f"exit {code}\n{text}"
    produced["claims.md"] = (sweep / "claims.md").read_text()
    root = str(tmp)
    return {
        k: v.replace(str(Path(root).resolve()), "<ROOT>").replace(root, "<ROOT>") for k, v in produced.items()
    }


if __name__ == "__main__":
    sys.exit("use tests/golden/regenerate.py")
