"""Redraw the gallery (docs/figures/) from the full preset sweeps under outputs/reproduce/; write its page.

    scripts/reproduce.sh all                # every full sweep (about 1½ hours on 2 cores)
    python scripts/gallery.py               # every gallery figure from them, then docs/gallery.md
    python scripts/gallery.py he_deep_relu  # only one preset's figures (and the page)
    python scripts/gallery.py --page        # only the page, from the committed figures

Each figure is drawn by the same code as ``initlab plot`` (through :mod:`initlab.plots.drawing`), from the
jobs of the sweep that match a filter on the sweep index (e.g. ``act == 'tanh'`` for Glorot & Bengio's
Figs. 6-8, which show tanh). The page (``docs/gallery.md``) shows every figure under what it shows, with the
commands that make it: the preset's sweep, and the ``initlab plot`` call that draws the same figure from it.
The numbers in the texts were read from those sweeps (``initlab check`` prints most of them).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "outputs" / "reproduce"
OUT = ROOT / "docs" / "figures"
PAGE = ROOT / "docs" / "gallery.md"


@dataclass(frozen=True)
class Figure:
    """One file under docs/figures/PRESET/: the figure of ``initlab plot`` and its options, on the jobs
    of the sweep that match ``where`` (a ``DataFrame.query`` on the sweep index; None: every job)."""

    file: str
    figure: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str | None = None


@dataclass(frozen=True)
class Entry:
    """One gallery entry: a preset's sweep, its figures, and what they show (numbers from the sweep)."""

    preset: str
    title: str
    text: str
    figures: tuple[Figure, ...]


# the options of initlab.draw -> initlab plot's flags (the command printed beside each figure)
FLAGS: dict[str, Any] = {
    "step": lambda v: f"--steps {v}",
    "ref_ratio": lambda v: f"--ref-ratio {v}",
    "color_by": lambda v: f"--color-by {v}",
    "logy": lambda v: "--logy" if v else "",
    "quantity": lambda v: "",  # hist draws every quantity; the gallery keeps one file per quantity
}

TANH = "act == 'tanh'"
SIGMOID_STANDARD = "act == 'sigmoid' and init == 'standard'"
FIG3_FIG10 = "act == 'tanh' or (act == 'softsign' and init == 'standard')"
FIG4 = "act in ['tanh', 'softsign'] and init == 'standard'"
RELU_10 = "act == 'relu' and `model.depth` == 10"
DROPOUT = {"color_by": "dropout_regime", "logy": True}

GALLERY: tuple[Entry, ...] = (
    Entry(
        "glorot_init",
        "Glorot & Bengio 2010, Figs. 6–8",
        """
        At initialization (tanh, 5×1000, Shapeset, 300 fixed examples), standard init shrinks the
        back-propagated gradients going down (std ratio layer 1 / layer 5 = 0.09), while the weight
        gradients keep their size in every layer (ratio 1.01); the Jacobian's average singular value is
        0.48 (standard) vs 0.74 (normalized), the paper's ≈0.5 / 0.8.
        """,
        (
            Figure("fig6_activations_step0.png", "hist", {"quantity": "act"}, TANH),
            Figure("fig7_backprop_gradients_step0.png", "hist", {"quantity": "grad_preact"}, TANH),
            Figure("fig8_weight_gradients_step0.png", "hist", {"quantity": "grad_weight"}, TANH),
        ),
    ),
    Entry(
        "glorot_saturation",
        "Glorot & Bengio 2010, Fig. 2",
        """
        Sigmoid with standard init: the top hidden layer's mean activation sinks from 0.5 to 0.04 while
        the lower layers stay at or above 0.5.
        """,
        (Figure("fig2_sigmoid_activations.png", "stats", {}, SIGMOID_STANDARD),),
    ),
    Entry(
        "glorot_saturation",
        "Glorot & Bengio 2010, Figs. 3 and 10",
        """
        Tanh with standard init saturates layer 1 first (98th percentile 0.86 → 0.99) while softsign
        stays below (0.88).
        """,
        (Figure("fig3_fig10_tanh_softsign_activations.png", "stats", {}, FIG3_FIG10),),
    ),
    Entry(
        "glorot_saturation",
        "Glorot & Bengio 2010, Fig. 4",
        """
        Layer 1's activations after the 5000 updates (standard init, 300 fixed test examples): under
        tanh the most populated 0.1-wide bin of |a| is [0.9, 1] in all 3 seeds (19–23 % of the values,
        with 9–10 % in [0, 0.1): a U), under softsign it is [0.7, 0.8) in all 3 seeds (32–33 % in [0.6,
        0.8), 2–3 % in [0.9, 1]): the paper's peaks at ±1 and at ±(0.6–0.8). The softsign claim asks for
        the knee as a whole, |a| in [0.5, 0.9) (|s| from 1 to 9, slope from 1/4 to 1/100), since the
        peak moves out through training, and layers 2–4 still peak near 0 (see [what does not
        reproduce](reproducing.md#what-does-not-reproduce-at-cpu-scale)). The figure shows seed 0 of
        each.
        """,
        (Figure("fig4_activations_end.png", "hist", {"quantity": "act", "step": "last"}, FIG4),),
    ),
    Entry(
        "glorot_table1",
        "Glorot & Bengio 2010, Table 1 and Fig. 11",
        """
        Shapeset test error after 4000 updates (3 seeds): Sigmoid 83.7 % (chance), Tanh 83.3 %, Tanh N
        74.4 %, Softsign 73.7 %, Softsign N 72.2 %: the paper's ordering, not its values.
        """,
        (Figure("fig11_test_error_curves.png", "curves"),),
    ),
    Entry(
        "he_deep_relu",
        "He et al. 2015, variance across depth",
        """
        30 ReLU layers at step 0: Xavier (n·Var[W] = 1) halves the variance at every layer (measured
        0.48 per layer, theory 0.5: the dotted 2^−L line), Kaiming holds it (0.97).
        """,
        (Figure("variance_across_depth_step0.png", "depth", {"ref_ratio": 0.5}),),
    ),
    Entry(
        "he_deep_relu",
        "He et al. 2015, Figs. 2–3",
        """
        On digits the 30-layer Xavier net sits at chance (92 % error) while Kaiming's reaches 15 % in
        100 updates; at 12 layers both converge (≤ 3 %), Kaiming's sooner. Measured over the whole run,
        the Xavier net's test error averages 92 % in the quick preset (600 updates, 2 seeds: 0.921,
        0.923) and 87 % in the full one (1500 updates, seed 0: at 92.4 % until update 700, then 82–84 %,
        80 % at the end).
        """,
        (Figure("fig3_learning_curves.png", "curves"),),
    ),
    Entry(
        "he_conv",
        "He et al. 2015 on conv nets",
        """
        Plain 10-layer 3×3 conv nets (16 channels, ReLU, 8×8 digits, 3 seeds): every Xavier net (gain 1)
        sits at chance for at least 250 updates while every Kaiming net leaves it by update 100–200, but
        two of the three Kaiming ReLU nets then fall back to chance (the PReLU nets of the same init all
        reach ≤ 4 % error); at step 0 the second moment per conv layer changes by 0.42–0.54 under Xavier
        (theory ½) and 0.84–1.08 under Kaiming (theory 1).
        """,
        (Figure("fig3_conv_learning_curves.png", "curves", {}, RELU_10),),
    ),
    Entry(
        "bn_sigmoid",
        "Ioffe & Szegedy 2015, Fig. 1(a)",
        """
        A 3×100 sigmoid net from small Gaussian weights (std 0.1) reaches 90 % test accuracy in 100
        updates with batch norm and 1600 without.
        """,
        (Figure("fig1a_learning_curves.png", "curves"),),
    ),
    Entry(
        "bn_sigmoid",
        "Ioffe & Szegedy 2015, Fig. 1(b, c)",
        """
        The input to the last hidden layer's sigmoids (15/50/85th percentiles) spreads to three times
        its initial width without BN; with BN it moves a quarter as much.
        """,
        (Figure("fig1bc_sigmoid_input_percentiles.png", "percentiles"),),
    ),
    Entry(
        "dropout",
        "Srivastava et al. 2014, Fig. 4",
        """
        Four digit MLPs trained on 300 examples: every net with dropout ends below every net without
        (2.3–3.7 % vs 4.6–6.5 % test error, table below); dropout cuts each architecture's error by 38 %
        on average (paper: 22–35 %).
        """,
        (
            Figure("fig4_learning_curves.png", "curves", DROPOUT),
            Figure("fig4_final_test_error.md", "table"),
        ),
    ),
    Entry(
        "dropout_retention",
        "Srivastava et al. 2014, Fig. 9",
        """
        Test error (late mean, %) against the retention probability p of the hidden units, seed 0 of the
        full preset: (a) n = 256 fixed: 81.4 (p = 0.1), 3.9, 3.3, 4.0, 5.6 (p = 0.3, 0.5, 0.8, 1); (b)
        p·n = 128 fixed: 6.5, 3.6, 3.3, 4.6, 6.1. As in the paper, small p underfits with n fixed, the
        curve is flat for 0.3 ≤ p ≤ 0.8, and widening the layers by 1/p removes most of the underfitting
        (quick preset, 2 seeds: p = 0.1 is 69 and 77 points worse than p = 0.5; p·n fixed lowers it by
        44 and 50 points).
        """,
        (
            Figure("fig9_learning_curves.png", "curves", {"logy": True}),
            Figure("fig9_final_test_error.md", "table"),
        ),
    ),
    Entry(
        "dropout_mc",
        "Srivastava et al. 2014, Fig. 11 and §7.5 (theory, linear case)",
        """
        The test error of averaging k sampled dropout nets (digits, 2×256, retain 0.8 input / 0.5
        hidden, 3 seeds) falls, as in the paper, from 8.6–9.7 % at k = 1 (ReLU) to within 0.6 points of
        the weight-scaling rule's by k = 50 (1.78, 1.45, 1.67 % against 1.78, 1.22, 1.11 %) and stays
        there. The claim is the theory behind weight scaling (§7.5, linear case), not Fig. 11 itself:
        for the linear net the mean logits over 1000 masks scatter about the eval-mode logits exactly as
        sampling predicts: mean t² over the test logits 0.996, 1.005, 0.976 against ν/(ν − 2) = 1.002
        (standard errors 0.019, 0.018, 0.017), i.e. −0.31, +0.15, −1.53 standard errors (seeds 0/1/2;
        the rule: within ±2 in every seed; rms z 0.998, 1.002, 0.988). The ReLU and tanh nets' mask
        averages are biased: mean t² 40–42 and 354–371 at k = 1000 (40–45 and 111–139 standard errors
        above 1.002; rms z 6.4 and 19, growing as √k): weight scaling is exact only for the linear net.
        Unlike the paper, Monte-Carlo averaging does not end below weight scaling (see [what does not
        reproduce](reproducing.md#what-does-not-reproduce-at-cpu-scale)).
        """,
        (Figure("fig11_mc_averaging.png", "mc_dropout"),),
    ),
    Entry(
        "symmetry",
        "Symmetry (approach №0)",
        """
        Zero init only learns the class prior: its loss settles at the label entropy H(p) = 2.098 (not
        ln 9 = 2.197) and goes no lower; constant init keeps every hidden unit identical (the largest
        distance between two units' weights stays exactly 0), while a random init learns.
        """,
        (Figure("learning_curves_zeros_constant_xavier.png", "curves"),),
    ),
    Entry(
        "regularizers",
        "Regularizers (handbook §5.4)",
        """
        The learning curves of the seven regimes on 300 digits (the figure: 3 seeds; the preset now runs
        6); no claim holds in every seed here (see [what does not
        reproduce](reproducing.md#what-does-not-reproduce-at-cpu-scale)).
        """,
        (
            Figure("learning_curves.png", "curves"),
            Figure("final_test_error.md", "table"),
        ),
    ),
    Entry(
        "weight_decay",
        "Weight decay (handbook §5.4; Loshchilov & Hutter 2019)",
        """
        With plain SGD the L2 penalty λ‖W‖² and weight decay 2λ give the same run: the red curves (L2)
        lie exactly under the green ones (decay), largest relative difference of the test loss 3.1e-7 (3
        seeds: 3.3e-7, 3.2e-7, 2.9e-7, float32 rounding). Under Adam the penalty and AdamW's decoupled
        decay part: 0.116 (0.117, 0.113, 0.118).
        """,
        (Figure("learning_curves.png", "curves", {"logy": True}),),
    ),
    Entry(
        "l1_sparsity",
        "L1 vs L2: sparsity (handbook §5.4; Goodfellow et al. 2016 §7.1.2)",
        """
        A 2×128 ReLU net on digits, plain SGD (lr 0.05, 2000 updates), L1 strength chosen so that
        lr·λ₁·T equals the init std (λ₁ = 1.25e-3) and L2 with the same penalty at init (λ₂ = 6.85e-3;
        both 3.5–3.6 nats at step 0). Final weights within 1 % of their layer's init std (5 seeds): L1
        57.3–58.3 %, L2 2.4–2.6 % (what its decay (1 − 2·lr·λ₂)^T = 0.25 alone would give the init
        Gaussian: 3.1 %; measured / that = 0.75–0.83), none 0.68–0.85 % (a Gaussian: 0.80 %). L1's
        weights pile up in a peak at about lr·λ₁ = 6.3e-5, the band where the subgradient step
        λ₁·sign(w) makes them hop across 0 (none is exactly 0); L2 only shifts the whole distribution
        left. Test error: none 1.8–2.0 %, L1 2.2–2.7 %, L2 2.5–3.1 %.
        """,
        (Figure("final_weight_magnitudes.png", "weights"),),
    ),
    Entry(
        "self_normalizing",
        "Self-normalizing nets (Klambauer et al. 2017)",
        """
        With LeCun normal init, SELU keeps every layer's mean within 0.02 of 0 and its variance in
        [0.94, 1.07] through 32 layers; with the same init ReLU halves the variance at every layer
        (0.503 per layer, theory ½, to about 1e-10 at layer 32) and tanh's falls to 0.017, as the
        mean-field recurrence q_(l+1) = E[tanh(√q_l·z)²] predicts from layer 1 (measured / predicted at
        layer 32: 1.05 and 0.85 in two seeds).
        """,
        (Figure("variance_across_depth_step0.png", "depth"),),
    ),
    Entry(
        "lsuv",
        "LSUV (Mishkin & Matas 2016)",
        """
        After LSUV every layer's variance is within 0.015 of 1 even on held-out examples, while the
        orthonormal start alone loses about half the variance per ReLU layer (0.476); the orthonormal
        ReLU net stalls for about 100 steps, the LSUV net learns at once (mean test error over steps
        1–100: 52 points lower, quick preset, 2 seeds: −61 and −43).
        """,
        (
            Figure("variance_across_depth_step0.png", "depth"),
            Figure("learning_curves.png", "curves"),
        ),
    ),
    Entry(
        "edge_of_chaos",
        "Schoenholz et al. 2017, Fig. 5: the edge of chaos",
        """
        Final training accuracy of tanh nets over σ_w² × depth (width 64, digits, 1000 updates), with
        mean-field theory's trainable depth 6·ξ_c and the critical σ_w² ≈ 1.76: the deepest nets that
        train (60 layers) sit at σ_w² = 1.3 and 1.76; "deeper than 6·ξ_c does not train" fails for 2 of
        the 10 nets beyond that depth, and no net of 100 layers trains in 1000 updates (see [Mean-field
        theory](theory.md)).
        """,
        (Figure("phase.png", "phase"),),
    ),
)


def plot_command(preset: str, figure: Figure) -> str:
    """The ``initlab plot`` call that draws this figure (every job of the sweep) from the preset's sweep."""
    flags = [FLAGS[key](value) for key, value in figure.options.items()]
    return " ".join(
        ["initlab plot", f"outputs/reproduce/{preset}", "--figures", figure.figure, *flags]
    ).strip()


def _figure_markdown(entry: Entry, figure: Figure) -> list[str]:
    path = OUT / entry.preset / figure.file
    if figure.figure == "table":
        return [path.read_text().strip(), ""]
    return [f"![{entry.title}](figures/{entry.preset}/{figure.file})", ""]


def _commands(entry: Entry) -> list[str]:
    plots = dict.fromkeys(plot_command(entry.preset, f) for f in entry.figures if f.figure != "table")
    lines = ["```text", f"scripts/reproduce.sh {entry.preset}", *plots, "```", ""]
    filters = dict.fromkeys(f.where for f in entry.figures if f.where)
    if filters:
        lines += ["The gallery draws only the jobs where " + " / ".join(f"`{w}`" for w in filters) + ".", ""]
    return lines


def page() -> str:
    """The Markdown of docs/gallery.md: every entry's text, figures and commands."""
    lines = [
        "# Gallery",
        "",
        "The figures below come from the full sweeps: `scripts/reproduce.sh all`, then "
        "`python scripts/gallery.py`, which draws each one from the matching jobs of its sweep with the same "
        "code as `initlab plot`, into `docs/figures/`, and writes this page. Beside each: the command that "
        "runs the preset's sweep (and checks its claims), and the `initlab plot` call that draws the figure "
        "from it. What the claims are and how they are checked: [Reproducing the papers](reproducing.md).",
        "",
        "Two presets let `initlab doctor` explain a paper figure instead of drawing it: `doctor_he_xavier` "
        "(He et al.'s 30-layer Xavier ReLU net, Fig. 3) and `doctor_glorot_sigmoid` (Glorot & Bengio's "
        "saturating sigmoid net, Fig. 2); their reports and figure are on the [doctor's page](doctor.md).",
        "",
    ]
    for entry in GALLERY:
        lines += [f"## {entry.title}", "", " ".join(entry.text.split()), ""]
        for figure in entry.figures:
            lines += _figure_markdown(entry, figure)
        lines += _commands(entry)
    return "\n".join(lines).rstrip() + "\n"


def draw(entry: Entry, figure: Figure) -> Path | None:
    """Draw one figure from the preset's sweep into docs/figures/; None when the sweep is missing."""
    import initlab
    from initlab import plots as P
    from initlab.plots.drawing import as_runs
    from initlab.plots.style import DPI

    sweep = SWEEPS / entry.preset
    if not sweep.is_dir():
        print(f"gallery: {sweep} missing: run scripts/reproduce.sh {entry.preset} first", file=sys.stderr)
        return None
    jobs = initlab.load_sweep(sweep)
    if figure.where:
        jobs = jobs.query(figure.where)
    path = OUT / entry.preset / figure.file
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.figure == "table":
        path.write_text(dict(P.fig_table(as_runs(jobs), P.Options()))["table.md"])
    else:
        options = {k: v for k, v in figure.options.items()}
        initlab.draw(figure.figure, jobs, **options).savefig(path, dpi=DPI)
    return path


def main(argv: list[str]) -> int:
    missing = 0
    if "--page" not in argv:
        for entry in GALLERY:
            if argv and entry.preset not in argv:
                continue
            for figure in entry.figures:
                path = draw(entry, figure)
                missing += path is None
                if path is not None:
                    print(path.relative_to(ROOT))
    PAGE.write_text(page())
    print(PAGE.relative_to(ROOT))
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
