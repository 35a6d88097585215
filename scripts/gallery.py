"""Redraw the README gallery (docs/figures/) from the full preset sweeps under outputs/reproduce/.

    scripts/reproduce.sh all                # every full sweep (about 1½ hours on 2 cores)
    python scripts/gallery.py               # every gallery figure from them
    python scripts/gallery.py he_deep_relu  # only one preset's figures

Each figure is drawn by the same code as ``initlab plot`` (through :mod:`initlab.plots.drawing`), from the
jobs of the sweep that match a filter on the sweep index (e.g. ``act == 'tanh'`` for Glorot & Bengio's
Figs. 6-8, which show tanh).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import initlab
from initlab import plots as P
from initlab.plots.drawing import as_runs
from initlab.plots.style import DPI

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "outputs" / "reproduce"
OUT = ROOT / "docs" / "figures"

TANH = "act == 'tanh'"
SIGMOID_STANDARD = "act == 'sigmoid' and init == 'standard'"
FIG3_FIG10 = "act == 'tanh' or (act == 'softsign' and init == 'standard')"
FIG4 = "act in ['tanh', 'softsign'] and init == 'standard'"
DROPOUT = {"color_by": "dropout_regime", "logy": True}

# (preset, filter on its sweep index or None, figure, options, file under docs/figures/PRESET/)
GALLERY: list[tuple[str, str | None, str, dict[str, Any], str]] = [
    ("glorot_init", TANH, "hist", {"quantity": "act"}, "fig6_activations_step0.png"),
    ("glorot_init", TANH, "hist", {"quantity": "grad_preact"}, "fig7_backprop_gradients_step0.png"),
    ("glorot_init", TANH, "hist", {"quantity": "grad_weight"}, "fig8_weight_gradients_step0.png"),
    ("glorot_saturation", SIGMOID_STANDARD, "stats", {}, "fig2_sigmoid_activations.png"),
    ("glorot_saturation", FIG3_FIG10, "stats", {}, "fig3_fig10_tanh_softsign_activations.png"),
    ("glorot_saturation", FIG4, "hist", {"quantity": "act", "step": "last"}, "fig4_activations_end.png"),
    ("glorot_table1", None, "curves", {}, "fig11_test_error_curves.png"),
    ("he_deep_relu", None, "depth", {"ref_ratio": 0.5}, "variance_across_depth_step0.png"),
    ("he_deep_relu", None, "curves", {}, "fig3_learning_curves.png"),
    ("bn_sigmoid", None, "curves", {}, "fig1a_learning_curves.png"),
    ("bn_sigmoid", None, "percentiles", {}, "fig1bc_sigmoid_input_percentiles.png"),
    ("dropout", None, "curves", DROPOUT, "fig4_learning_curves.png"),
    ("dropout", None, "table", {}, "fig4_final_test_error.md"),
    ("dropout_mc", None, "mc_dropout", {}, "fig11_mc_averaging.png"),
    ("symmetry", None, "curves", {}, "learning_curves_zeros_constant_xavier.png"),
    ("regularizers", None, "curves", {}, "learning_curves.png"),
    ("regularizers", None, "table", {}, "final_test_error.md"),
    ("self_normalizing", None, "depth", {}, "variance_across_depth_step0.png"),
    ("lsuv", None, "depth", {}, "variance_across_depth_step0.png"),
    ("lsuv", None, "curves", {}, "learning_curves.png"),
    ("l1_sparsity", None, "weights", {}, "final_weight_magnitudes.png"),
]


def main(only: list[str]) -> int:
    missing = 0
    for preset, where, figure, options, name in GALLERY:
        if only and preset not in only:
            continue
        sweep = SWEEPS / preset
        if not sweep.is_dir():
            print(f"gallery: {sweep} missing: run scripts/reproduce.sh {preset} first", file=sys.stderr)
            missing += 1
            continue
        jobs = initlab.load_sweep(sweep)
        if where:
            jobs = jobs.query(where)
        path = OUT / preset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if figure == "table":
            text = dict(P.fig_table(as_runs(jobs), P.Options()))["table.md"]
            path.write_text(text)
        else:
            initlab.draw(figure, jobs, **options).savefig(path, dpi=DPI)
        print(path.relative_to(ROOT))
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
