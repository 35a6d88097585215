"""Negative controls of the papers' claims: per claim, a small deliberately wrong setup where it must fail.

Two kinds:

* :data:`WRONG_RUNS` -- a small sweep of the claim's quick preset with settings that remove the effect the
  paper explains (dropout in a net whose variance map the claim predicts, a learning rate too small to
  train, LSUV without its rescaling, input noise of std 0, ...). The claim still finds the runs it names
  (same init, gain, activation, depth), so it is evaluated -- and must fail.
* :data:`SWAPPED` -- the quick preset's own runs with the logs of two settings exchanged within each seed
  (e.g. Tanh's errors read as Tanh N's): an ordering claim must fail when the order is reversed.

``tests/test_claim_controls.py`` runs the first kind; the quick-preset tests run the second on their runs.
"""

from __future__ import annotations

from typing import Any

from initlab.claims import select
from initlab.runs import Run

# claim -> (preset, extra overrides of `initlab run -m experiment=<preset>_quick`); one seed unless set.
WRONG_RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    # BN before tanh: each layer's input is renormalized, so ∂C/∂s no longer shrinks with depth
    "glorot_init_gradients_shrink_standard": (
        "glorot_init",
        ("init=standard", "act=tanh", "model.norm=batch"),
    ),
    # biases of 2 saturate tanh (slope 0.07): ∂C/∂s vanishes while the activations stay ≈ 1
    "glorot_init_weight_gradients_flat_standard": (
        "glorot_init",
        ("init=standard", "act=tanh", "init.bias=2"),
    ),
    "glorot_init_jacobian_standard": ("glorot_init", ("init=standard", "act=tanh", "init.bias=2")),
    "glorot_init_jacobian_normalized": ("glorot_init", ("init=xavier", "act=tanh", "init.bias=2")),
    # a learning rate too small to move the sigmoid net's top layer
    "glorot_saturation_sigmoid_top_layer": ("glorot_saturation", ("act=sigmoid", "optim.lr=0.001")),
    # biases of −3 put every sigmoid near 0.05 from the start
    "glorot_saturation_sigmoid_lower_layers": ("glorot_saturation", ("act=sigmoid", "init.bias=-3")),
    "glorot_saturation_tanh_layer1_first": ("glorot_saturation", ("act=tanh", "optim.lr=0.001")),
    # the same untrained nets: their layer-1 activations still peak near 0, as at initialization
    "glorot_saturation_tanh_final_peak_saturated": ("glorot_saturation", ("act=tanh", "optim.lr=0.001")),
    "glorot_saturation_softsign_final_peak_at_knee": (
        "glorot_saturation",
        ("act=softsign", "optim.lr=0.001"),
    ),
    # no 5-layer sigmoid net learned at this size (batch norm: 0.81 error, Adam: 0.83, digits: 0.92), so the
    # sigmoid row is given the logs of a tanh net on digits (SWAPPED_IN_WRONG_RUNS)
    "glorot_table1_sigmoid_at_chance": (
        "glorot_table1",
        ("act=sigmoid,tanh", "init=standard", "data=digits", "data.n_train=null"),
    ),
    # dropout 0.5 (inverted: kept units ×2) doubles E[x²]: the ReLU variance map becomes 2× theory
    "he_xavier_variance_halves": (
        "he_deep_relu",
        ("init=xavier_normal", "model.depth=30", "model.dropout=0.5", "train.steps=1"),
    ),
    "he_kaiming_variance_holds": (
        "he_deep_relu",
        ("init=kaiming_normal", "model.depth=30", "model.dropout=0.5", "train.steps=1"),
    ),
    # a learning rate too small to train in 100 updates
    "he_30_layers_kaiming_converges": (
        "he_deep_relu",
        ("init=kaiming_normal", "model.depth=30", "optim.lr=1e-6", "train.steps=100"),
    ),
    "he_12_layers_both_converge": ("he_deep_relu", ("model.depth=12", "optim.lr=1e-6", "train.steps=100")),
    # batch norm lets the 30-layer Xavier net learn
    "he_30_layers_xavier_stalls": (
        "he_deep_relu",
        ("init=xavier_normal", "model.depth=30", "model.norm=batch"),
    ),
    # bn_momentum 0: the running averages never leave (0, 1), so the BN net is evaluated with wrong statistics
    "bn_reaches_accuracy_sooner": ("bn_sigmoid", ("model.bn_momentum=0", "train.steps=500")),
    "bn_higher_final_accuracy": ("bn_sigmoid", ("model.bn_momentum=0", "train.steps=500")),
    # init std 1: the plain net's sigmoid inputs start wide and move little relative to their spread
    "bn_stabilizes_sigmoid_inputs": ("bn_sigmoid", ("init.std=1.0",)),
    # 100 updates: the dropout nets have not caught up yet
    "dropout_clusters_separate": ("dropout", ("train.steps=100",)),
    "dropout_relative_reduction": ("dropout", ("train.steps=100",)),
    # p·n "fixed" with n not widened: the two p = 0.1 runs are the same net
    "fixed_pn_helps_low_retention": ("dropout_retention", ("retain=p10", "retention.p10.width_fixed_pn=128")),
    # 5 updates: the zero-init net's loss is still near ln 9, not H(p); the random one has not learnt
    "zeros_loss_at_prior_entropy": ("symmetry", ("init=zeros", "train.steps=5")),
    "random_init_beats_prior": ("symmetry", ("init=xavier", "train.steps=5")),
    # dropout draws a different mask per unit: the units' gradients differ and they drift apart
    "constant_units_stay_identical": ("symmetry", ("init=zeros,constant", "model.dropout=0.5")),
    # with biases, SGD's weight decay also decays them and the penalty does not: the trajectories part
    "sgd_l2_is_weight_decay": ("weight_decay", ("optim=sgd", "model.bias=true")),
    # λ = 0 and decay 0: both runs are plain Adam, nothing can differ
    "adam_l2_is_not_weight_decay": (
        "weight_decay",
        ("optim=adamw", "l2_lambda=0", "penalties.decay.weight_decay=0"),
    ),
    "selu_mean_stays_zero": ("self_normalizing", ("act=selu", "init.bias=0.5")),
    "selu_variance_stays_one": ("self_normalizing", ("act=selu", "model.dropout=0.5")),
    "relu_lecun_halves_variance": ("self_normalizing", ("act=relu", "model.dropout=0.5")),
    "tanh_variance_follows_mean_field": ("self_normalizing", ("act=tanh", "model.dropout=0.5")),
    # LSUV without its rescaling (tolerance 100: it stops before the first pass): the orthonormal start
    "lsuv_variance_on_held_out_batch": ("lsuv", ("init=lsuv", "init.tol=100", "train.steps=1")),
    "lsuv_starts_faster": ("lsuv", ("++init.tol=100",)),
    "orthonormal_relu_halves_variance": ("lsuv", ("init=orthogonal", "model.dropout=0.5", "train.steps=1")),
    # lr 100x smaller: lr·λ₁·T = σ₀/100 = τ, so the penalty moves no weight by more than τ
    "l1_piles_weights_at_zero": ("l1_sparsity", ("penalty=l1", "optim.lr=5e-4")),
    # the L2 run gets the L1 penalty too: its weights pile up at 0
    "l2_no_pile_up_at_zero": ("l1_sparsity", ("penalty=l2", "penalties.l2.l1=${l1_lambda}")),
}

# claim -> (settings a, settings b) whose logs are exchanged within each seed of the quick preset's runs
SWAPPED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "glorot_table1_sigmoid_worst": (
        {"act.name": "sigmoid", "init.name": "standard"},
        {"act.name": "softsign", "init.name": "xavier"},
    ),
    "glorot_table1_tanh_normalized_better": (
        {"act.name": "tanh", "init.name": "standard"},
        {"act.name": "tanh", "init.name": "xavier"},
    ),
    "glorot_table1_softsign_better_than_tanh": (
        {"act.name": "tanh", "init.name": "standard"},
        {"act.name": "softsign", "init.name": "standard"},
    ),
    "glorot_saturation_softsign_below_tanh": ({"act.name": "tanh"}, {"act.name": "softsign"}),
    "low_retention_underfits": (
        {"scaling": "fixed_n", "model.dropout": 0.9},
        {"scaling": "fixed_n", "model.dropout": 0.5},
    ),
    # the ReLU net's logits read as the linear net's: its mask average is biased (Jensen), not exact
    "mc_linear_mask_average_is_eval_output": ({"act.name": "linear"}, {"act.name": "relu"}),
}


# claim -> (settings a, settings b) exchanged in the runs of its WRONG_RUNS sweep before it is evaluated
SWAPPED_IN_WRONG_RUNS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "glorot_table1_sigmoid_at_chance": ({"act.name": "sigmoid"}, {"act.name": "tanh"}),
}


def _matches(run: Run, where: dict[str, Any]) -> bool:
    return all(run.cfg(k) == v for k, v in where.items())


def swap_logs(runs: list[Run], a: dict[str, Any], b: dict[str, Any]) -> list[Run]:
    """The runs, with the logs of the ``a`` and ``b`` runs of each seed exchanged (configs unchanged)."""
    out = []
    for run in runs:
        if not (_matches(run, a) or _matches(run, b)):
            out.append(run)
            continue
        other_where = b if _matches(run, a) else a
        (other,) = [r for r in select(runs, seed=run.cfg("seed")) if _matches(r, other_where)]
        out.append(
            Run(
                run.path,
                config=run.config,
                overrides=run.overrides,
                summary=other.summary,
                metrics=other.metrics,
                layers=other.layers,
                hists=other.hists,
                weights=other.weights,
                mc_dropout=other.mc_dropout,
            )
        )
    return out
