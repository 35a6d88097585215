"""Claims of He, Zhang, Ren & Sun 2015 on plain deep conv nets (preset ``he_conv``, their Figs. 2-3).

A k x k convolution with C input channels has n = k²·C inputs per output (their Eq. 10: n = k²c). For
ReLU, with zero-mean weights independent of the inputs,

    E[(s^(l+1))²] = n · Var[W] · E[(x^l)²] = ½ · n · Var[W] · E[(s^l)²]           (Eq. 7-10)

and for PReLU with slope a, E[(x^l)²] = ½·(1 + a²)·E[(s^l)²] (Eq. 15). Xavier's n·Var[W] = 1 (gain 1, He et
al.'s reading of Glorot & Bengio; with fan-in = fan-out = k²·C) halves the second moment at every layer;
Kaiming's ½·n·Var[W] = 1 keeps it.

The measured per-layer ratio is the mean, over consecutive conv layers l = 1..depth-1 of both nets of the
init (10 and 5 layers: 13 pairs), of E[(s^(l+1))²] / E[(s^l)²] (E[s²] = std² + mean² of the step-0
``preact`` probe). Unlike the geometric mean
of the whole stack, the mean of the layer-to-layer ratios is unbiased: conditioned on the layers below,
each ratio has exactly the expectation above, whereas log-ratios of a narrow net (16 channels) drift
below it by their variance (about 0.04 per layer at 16 channels). The preset pads circularly so that
every output of an 8x8 map sees its n inputs, as Eq. 10 assumes; with zero padding the border pixels see
4 or 6 of 9 and the ratio falls by a factor 0.84-0.92 (tests/test_cnn.py measures it).

Fig. 3: the 30-layer Xavier net "completely stalls" while Kaiming's converges. At CPU scale the deep net
has 10 layers (at 20 and 30 layers of 16 channels even Kaiming's net stayed at chance for 300-550
updates). Measured as the number of updates by which the deep Xavier net leaves chance (test error ≤ 80 %,
within 10 points of chance, 90 %) later than the deep Kaiming net, counting a net that never leaves chance
as leaving one evaluation after the run ended.

Every measure takes the runs of one seed (one of each setting); the rule is that it passes for every seed.
"""

from __future__ import annotations

from initlab.claims import NotApplicable, claim, layer_stat, one, select
from initlab.runs import Run

STALLED = 0.8  # test error at least this: within 10 points of chance (90 %, 10 balanced classes)
DEEP = 10  # conv layers of the deep nets (the larger model.depth of the preset)


def layer_ratios(run: Run) -> list[float]:
    """E[(s^(l+1))²] / E[(s^l)²] at step 0 for l = 1..depth-1 (conv layers only)."""
    std = layer_stat(run, "preact", "std", step=0)
    mean = layer_stat(run, "preact", "mean", step=0)
    depth = int(run.cfg("model.depth"))
    moment = (std**2 + mean**2).loc[1:depth].to_numpy()
    return (moment[1:] / moment[:-1]).tolist()


def second_moment_ratio(run: Run) -> float:
    """Mean over l = 1..depth-1 of E[(s^(l+1))²] / E[(s^l)²] at step 0 (conv layers only)."""
    ratios = layer_ratios(run)
    return sum(ratios) / len(ratios)


def pooled_ratio(runs: list[Run], init: str) -> float:
    """The mean layer-to-layer ratio over all consecutive conv layers of the ReLU nets of ``init``."""
    ratios = [r for run in select(runs, init__name=init, act__name="relu") for r in layer_ratios(run)]
    if not ratios:
        raise NotApplicable(f"no ReLU run with init {init}")
    return sum(ratios) / len(ratios)


def leaves_chance_at(run: Run) -> float:
    """The first evaluated step with test error ≤ :data:`STALLED`; one evaluation after the end if none."""
    errors = run.errors_by_step("test")
    left = [step for step, error in sorted(errors.items()) if error <= STALLED]
    if left:
        return float(left[0])
    steps = sorted(errors)
    return float(steps[-1] + (steps[-1] - steps[-2] if len(steps) > 1 else 1))


@claim(
    preset="he_conv",
    source="He et al. 2015, §2.2 (Eq. 10, n = k²c)",
    text="3x3 conv layers, ReLU, Xavier init (n·Var[W] = 1): the pre-activation second moment halves at "
    "every conv layer (mean layer-to-layer ratio at step 0, the 10- and 5-layer nets)",
    threshold="within [0.35, 0.65] (theory: 0.5), for every seed",
    passes=lambda v: 0.35 <= v <= 0.65,
)
def he_conv_xavier_variance_halves(runs: list[Run]) -> float:
    return pooled_ratio(runs, "xavier")


@claim(
    preset="he_conv",
    source="He et al. 2015, §2.2 (Eq. 10, n = k²c)",
    text="3x3 conv layers, ReLU, Kaiming init (½·n·Var[W] = 1): the pre-activation second moment holds at "
    "every conv layer (mean layer-to-layer ratio at step 0, the 10- and 5-layer nets)",
    threshold="within [0.8, 1.25] (theory: 1), for every seed",
    passes=lambda v: 0.8 <= v <= 1.25,
)
def he_conv_kaiming_variance_holds(runs: list[Run]) -> float:
    return pooled_ratio(runs, "kaiming")


@claim(
    preset="he_conv",
    source="He et al. 2015, Fig. 3",
    text=f"{DEEP} 3x3 conv layers, ReLU: the Xavier net leaves chance (test error ≤ {STALLED:.0%}) later "
    "than the Kaiming net, or never (updates later; never = one evaluation after the end)",
    threshold="> 0 updates, for every seed",
    passes=lambda v: v > 0,
)
def he_conv_deep_xavier_leaves_chance_later(runs: list[Run]) -> float:
    xavier = one(runs, init__name="xavier", act__name="relu", model__depth=DEEP)
    kaiming = one(runs, init__name="kaiming", act__name="relu", model__depth=DEEP)
    return leaves_chance_at(xavier) - leaves_chance_at(kaiming)
