"""initlab: a command-line laboratory for initialization, normalization and regularization in training.

Python API (for notebooks and scripts):

* :func:`run` trains one network in-process from Hydra overrides and returns the finished :class:`Run`;
* :func:`load_run` opens a run directory as a :class:`Run`, whose files read as pandas objects
  (``run.hist_bins()``: the histograms with one row per bin);
* :func:`load_sweep` gives one row per run of a sweep directory;
* :func:`doctor` diagnoses any ``nn.Module`` in a short probed training and reports what is wrong inside
  it, why, and what fixes it (:mod:`initlab.diagnosis`);
* :func:`probe` attaches the probes to any ``nn.Module`` in your own training loop and writes a run
  directory;
* :func:`draw` (:mod:`initlab.plots.figures`) and the ``draw_*`` functions of :mod:`initlab.plots.drawing`
  draw each figure of ``initlab plot`` into a Matplotlib Figure or Axes.

Training and plotting are imported on first use, so ``import initlab`` stays light.
"""

from importlib import import_module
from importlib.metadata import version
from typing import Any

from initlab.runs import Run, RunData, load_run

__version__ = version("initlab")

# name -> module that defines it (imported on first access: torch and Matplotlib are slow to import)
_LAZY = {
    "run": "initlab.api",
    "load_sweep": "initlab.api",
    "probe": "initlab.probing.loop",
    "doctor": "initlab.diagnosis.session",
    "draw": "initlab.plots.figures",
    "draw_hist": "initlab.plots.drawing",
    "draw_stats": "initlab.plots.drawing",
    "draw_percentiles": "initlab.plots.drawing",
    "draw_curves": "initlab.plots.drawing",
    "draw_depth": "initlab.plots.drawing",
    "draw_heatmap": "initlab.plots.drawing",
    "draw_weights": "initlab.plots.drawing",
    "draw_mc_dropout": "initlab.plots.drawing",
    "draw_phase": "initlab.plots.drawing",
}

__all__ = ["Run", "RunData", "load_run", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
