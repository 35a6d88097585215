"""Mean-field theory (initlab.theory) against closed forms, and against nets measured at initialization.

Sampling error of a measured layer variance: given the previous layer, the units of a layer are independent,
so the mean over its n units of a unit's second moment has relative standard error at most √(2/n) (equality
when the batch's inputs are perfectly correlated). Each statistical check allows 5 such standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from initlab.lab import prediction as P
from initlab.lab.inits import initialize
from initlab.lab.models import build_model
from initlab.theory import predict as T

N_SE = 5


def phi(name: str, **kw: float) -> T.Activation:
    return P.activation({"name": name, **kw})


@pytest.mark.parametrize("sigma_w2,sigma_b2", [(2.0, 0.0), (1.0, 0.3), (3.0, 0.1)])
def test_relu_recursion_is_half_the_second_moment(sigma_w2: float, sigma_b2: float) -> None:
    relu = phi("relu")
    for q in (0.01, 1.0, 37.0):
        assert T.q_map(relu, sigma_w2, sigma_b2, q) == pytest.approx(sigma_w2 * q / 2 + sigma_b2, rel=1e-12)
    assert T.chi_1(relu, sigma_w2, 1.0) == pytest.approx(sigma_w2 / 2, rel=1e-12)


def test_linear_and_leaky_relu_closed_forms() -> None:
    assert T.q_map(phi("linear"), 1.5, 0.2, 2.0) == pytest.approx(1.5 * 2.0 + 0.2, rel=1e-12)
    a = 0.2  # leaky ReLU: E[φ²] = (1 + a²)/2·q (He et al. Eq. 15)
    assert T.q_map(phi("leaky_relu", negative_slope=a), 2.0, 0.0, 3.0) == pytest.approx((1 + a * a) * 3.0)
    linear = T.depth_scales(phi("linear"), 0.8, 0.0)
    assert linear.chi_1 == pytest.approx(0.8) and linear.q_star == pytest.approx(0.0, abs=1e-12)
    assert linear.xi_c == pytest.approx(-1 / math.log(0.8)) and linear.phase == "ordered"


def test_relu_fixed_point_with_bias() -> None:
    # q* = σ_b²/(1 − σ_w²/2) in the ordered phase
    s = T.depth_scales(phi("relu"), 1.5, 0.1)
    assert s.q_star == pytest.approx(0.1 / (1 - 0.75), rel=1e-9)
    assert s.chi_1 == pytest.approx(0.75) and s.c_star == 1.0 and s.xi_c == pytest.approx(-1 / math.log(0.75))


def test_selu_fixed_point_is_one() -> None:
    """Klambauer et al. 2017: with σ_w² = 1 (LeCun), σ_b² = 0 the SELU map has the fixed point q* = 1."""
    s = T.depth_scales(phi("selu"), 1.0, 0.0, q0=3.0)
    assert s.q_star == pytest.approx(1.0, abs=2e-4)
    assert T.gauss(phi("selu").phi, 1.0) == pytest.approx(0.0, abs=1e-3)  # mean 0 too


def test_tanh_critical_point() -> None:
    """Schoenholz et al. 2017: tanh with σ_b² = 0.05 is critical at σ_w² ≈ 1.76; σ_b² = 0 at σ_w² = 1."""
    tanh = phi("tanh")
    crit = T.critical_sigma_w2(tanh, 0.05)
    assert crit == pytest.approx(1.76, abs=0.01)
    assert T.depth_scales(tanh, crit, 0.05).chi_1 == pytest.approx(1.0, abs=1e-5)
    assert T.depth_scales(tanh, 1.3, 0.05).phase == "ordered"
    chaotic = T.depth_scales(tanh, 3.0, 0.05)
    assert chaotic.phase == "chaotic" and 0.0 < chaotic.c_star < 1.0 and chaotic.chi_c < 1.0
    # ξ_c grows without bound towards the critical point, from both sides
    xi = [T.depth_scales(tanh, s, 0.05).xi_c for s in (1.2, 1.5, 1.7, 1.82, 2.2, 3.0)]
    assert xi[0] < xi[1] < xi[2] and xi[3] > xi[4] > xi[5] and min(xi[2], xi[3]) > 30


def test_correlation_map_fixed_point_matches_iteration() -> None:
    tanh, sw, sb = phi("tanh"), 2.5, 0.05
    s = T.depth_scales(tanh, sw, sb)
    c = 0.5
    for _ in range(400):
        c = T.c_map(tanh, sw, sb, s.q_star, c)
    assert c == pytest.approx(s.c_star, abs=1e-6)
    # χ_c is the slope of the map at c*
    h = 1e-4
    slope = (
        T.c_map(tanh, sw, sb, s.q_star, s.c_star + h) - T.c_map(tanh, sw, sb, s.q_star, s.c_star - h)
    ) / (2 * h)
    assert slope == pytest.approx(s.chi_c, rel=1e-3)


SIGMA_W2_CASES = {  # overrides, expected σ_w² of (first layer 64 -> 32, hidden 32 -> 32, output 32 -> 10)
    "standard": (["init=standard"], [1 / 3, 1 / 3, 1 / 3]),
    "torch_default": (["init=torch_default"], [1 / 3, 1 / 3, 1 / 3]),
    "lecun": (["init=lecun"], [1, 1, 1]),
    "normal": (["init=normal", "init.std=0.1"], [0.01 * 64, 0.01 * 32, 0.01 * 32]),
    "zeros": (["init=zeros"], [0, 0, 0]),
    "xavier": (["init=xavier"], [2 * 64 / 96, 1, 2 * 32 / 42]),  # gain 1 by default
    "xavier_tanh_gain": (
        ["init=xavier", "init.gain=null"],
        [(5 / 3) ** 2 * 2 * 64 / 96, (5 / 3) ** 2, 2 * 32 / 42],
    ),
    "kaiming_relu": (["init=kaiming", "act=relu"], [2, 2, 1]),
    "kaiming_fan_out": (["init=kaiming", "act=relu", "init.mode=fan_out"], [2 * 64 / 32, 2, 32 / 10]),
    "orthogonal": (["init=orthogonal"], [1, 1, 1]),
    "orthogonal_tanh_gain": (["init=orthogonal", "init.gain=null"], [(5 / 3) ** 2, (5 / 3) ** 2, 1]),
    "meanfield": (["init=meanfield", "init.sigma_w2=2.5", "init.sigma_b2=0.1"], [2.5, 2.5, 2.5]),
}


@pytest.mark.parametrize("case", SIGMA_W2_CASES)
def test_sigma_w2_of_every_scheme(case: str, make_cfg) -> None:
    """σ_w² = n_in·Var[W] from each formula, checked against the weights the scheme actually draws."""
    overrides, expected = SIGMA_W2_CASES[case]
    cfg = make_cfg(*overrides, "model.depth=2", "model.width=32")
    specs = P.layer_specs(cfg, 64, 10)
    assert [s.sigma_w2 for s in specs] == pytest.approx(expected)
    torch.manual_seed(0)
    model = build_model(64, 10, cfg.model, cfg.act)
    initialize(model, cfg.init, cfg.act, torch.zeros(4, 64))
    for spec, lin in zip(specs, model.linears(), strict=True):
        measured = float(lin.weight.detach().double().pow(2).mean()) * spec.fan_in
        n = lin.weight.numel()
        assert measured == pytest.approx(spec.sigma_w2, abs=N_SE * math.sqrt(2 / n) * spec.sigma_w2 + 1e-12)
    assert [s.sigma_b2 for s in specs][1] == pytest.approx(
        {"torch_default": 1 / 96, "meanfield": 0.1}.get(case, 0)
    )


def test_not_applicable(make_cfg) -> None:
    assert "norm" in P.not_applicable(make_cfg("model.norm=batch"))
    assert "lsuv" in P.not_applicable(make_cfg("init=lsuv"))
    assert P.not_applicable(make_cfg("init=xavier")) is None
    with pytest.raises(P.NoPrediction):
        P.predict(make_cfg("init=constant"), 16, 10)


def _measure(cfg, n_in: int, n_out: int, batch: int, seed: int) -> dict[tuple[int, str], np.ndarray]:
    """Per-layer values of preact, act, grad_preact, grad_weight of one initialized net on Gaussian inputs."""
    torch.manual_seed(seed)
    model = build_model(n_in, n_out, cfg.model, cfg.act).double()
    initialize(model, cfg.init, cfg.act, torch.zeros(2, n_in))
    x = torch.randn(batch, n_in, dtype=torch.float64)
    y = torch.randint(0, n_out, (batch,))
    pre: list[torch.Tensor] = []
    handles = [blk.act.register_forward_hook(lambda m, i, o: pre.append(i[0])) for blk in model.hidden]
    handles.append(model.out.register_forward_hook(lambda m, i, o: pre.append(o)))
    logits = model(x)
    for h in handles:
        h.remove()
    for p in pre:
        p.retain_grad()
    F.cross_entropy(logits, y).backward()
    out = {}
    for i, p in enumerate(pre, start=1):
        out[(i, "preact")] = p.detach().numpy()
        out[(i, "grad_preact")] = p.grad.numpy()
        out[(i, "grad_weight")] = model.linears()[i - 1].weight.grad.numpy()
    for i, blk in enumerate(model.hidden, start=1):
        out[(i, "act")] = blk.act(pre[i - 1]).detach().numpy()
    return out


@pytest.mark.parametrize(
    "overrides",
    [
        ["act=tanh", "init=meanfield", "init.sigma_w2=1.76", "init.sigma_b2=0.05"],
        ["act=relu", "init=kaiming"],
        ["act=selu", "init=lecun"],
        ["act=tanh", "init=xavier"],
        ["act=tanh", "init=xavier", "init.gain=1", "model.dropout=0.2", "model.input_dropout=0.1"],
    ],
    ids=["tanh_critical", "relu_kaiming", "selu_lecun", "tanh_xavier", "tanh_dropout"],
)
def test_prediction_matches_a_wide_net_at_init(overrides: list[str], make_cfg) -> None:
    """Layer-to-layer ratios of measured variances match the predicted ones (5 SE of √(2/n) per layer,
    5 SE of √(2/(n·L)) for their geometric mean); means match to 5 SE too."""
    n, depth, n_in, n_out, batch = 1024, 8, 256, 10, 200
    cfg = make_cfg(*overrides, f"model.width={n}", f"model.depth={depth}", f"train.batch_size={batch}")
    pred = P.predict(cfg, n_in, n_out, input_m2=1.0)
    want = {(r["layer"], r["quantity"]): r for r in pred.rows}
    got = _measure(cfg, n_in, n_out, batch, seed=0)
    se = math.sqrt(2 / n)
    for quantity, layers in [("preact", range(2, depth + 2)), ("act", range(2, depth + 1))]:
        logs = []
        for i in layers:
            ratio = np.var(got[(i, quantity)]) / np.var(got[(i - 1, quantity)])
            expected = want[(i, quantity)]["variance"] / want[(i - 1, quantity)]["variance"]
            logs.append(math.log(ratio / expected))
            assert abs(logs[-1]) < N_SE * se * 2, (quantity, i, ratio, expected)
        assert abs(np.mean(logs)) < N_SE * se * 2 / math.sqrt(len(logs)), (quantity, np.mean(logs))
    # the first layer in absolute terms (inputs ~ N(0, 1): E[x²] = 1 up to its own sampling error)
    v1 = np.var(got[(1, "preact")])
    assert v1 == pytest.approx(want[(1, "preact")]["variance"], rel=N_SE * se * 2)
    for i in range(1, depth + 1):  # activation means: SE of a mean over units ≈ √(Var/n)
        sd = math.sqrt(want[(i, "act")]["variance"] / n)
        assert np.mean(got[(i, "act")]) == pytest.approx(want[(i, "act")]["mean"], abs=N_SE * sd * 2)
    # back-propagated gradients: the per-layer factor σ_w²·fan ratio·E[φ′²], as a geometric mean over layers
    g = [np.var(got[(i, "grad_preact")]) for i in range(1, depth + 2)]
    gp = [want[(i, "grad_preact")]["variance"] for i in range(1, depth + 2)]
    per_layer = np.log(np.array(g[:-1]) / g[1:]) - np.log(np.array(gp[:-1]) / gp[1:])
    assert abs(per_layer[:-1].mean()) < N_SE * se * 2, per_layer
    # logits' gradient: (softmax − onehot)/B, predicted to second order in the logits
    assert g[-1] == pytest.approx(gp[-1], rel=0.15)
    # first layer's weight gradient (inputs uncorrelated across examples): B·Var[δ¹]·E[x²] (Glorot Eq. 14)
    gw = np.var(got[(1, "grad_weight")])
    assert gw == pytest.approx(
        want[(1, "grad_weight")]["variance"] * g[0] / gp[0], rel=N_SE * math.sqrt(2 / batch)
    )


def test_weight_gradient_over_label_draws(make_cfg) -> None:
    """Deeper layers see correlated examples: B·Var[δ]·E[a²] holds on average over iid label draws only.

    One draw of the labels of K classes changes Σ_b δ^b by a χ²-like factor of relative SE √(2/(K−1)), so the
    check is on the geometric mean of measured / predicted over 8 nets and layers 2..L: 5 SE of √(2/(K−1)/8).
    """
    n_in, n_out, batch, seeds = 64, 10, 100, 8
    cfg = make_cfg(
        "act=tanh", "init=meanfield", "model.width=256", "model.depth=4", f"train.batch_size={batch}"
    )
    pred = P.predict(cfg, n_in, n_out, input_m2=1.0)
    want = {(r["layer"], r["quantity"]): r for r in pred.rows}
    logs = []
    for seed in range(seeds):
        got = _measure(cfg, n_in, n_out, batch, seed)
        for i in range(2, 5):
            # predicted / measured Var[∂L/∂W], corrected by how far the net's own δ and E[a²] are from theirs,
            # so that only the step δ, a -> ∂L/∂W (Eq. 14) is under test
            a_want = want[(i - 1, "act")]["variance"] + want[(i - 1, "act")]["mean"] ** 2
            off = (np.var(got[(i, "grad_preact")]) / want[(i, "grad_preact")]["variance"]) * (
                np.mean(got[(i - 1, "act")] ** 2) / a_want
            )
            logs.append(
                math.log(np.var(got[(i, "grad_weight")]) / want[(i, "grad_weight")]["variance"] / off)
            )
    assert abs(np.mean(logs)) < N_SE * math.sqrt(2 / (n_out - 1) / seeds), logs


def test_prediction_frame_and_summary(make_cfg) -> None:
    cfg = make_cfg("act=relu", "init=kaiming", "model.depth=3", "model.width=8")
    pred = P.predict(cfg, 16, 10)
    frame = T.prediction_frame(pred)
    counts = frame.groupby("quantity")["layer"].apply(list).to_dict()
    assert counts == {
        "act": [1, 2, 3],
        "grad_preact": [1, 2, 3, 4],
        "grad_weight": [1, 2, 3, 4],
        "preact": [1, 2, 3, 4],
    }
    pre = frame[frame.quantity == "preact"].set_index("layer")["variance"]
    assert pre.to_list() == pytest.approx(
        [2.0, 2.0, 2.0, 1.0]
    )  # ReLU at He's init holds q; the output gain is 1
    summary = T.summary_fields(pred)
    assert summary["theory_phase"] == "critical" and summary["theory_chi_1"] == pytest.approx(1.0)


def test_meanfield_init_draws_its_parameters(make_cfg) -> None:
    """init=meanfield: W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²) (5 SE of √(2/N) on the mean squares)."""
    from initlab.lab.inits import init_linear

    cfg = make_cfg("init=meanfield", "init.sigma_w2=2.5", "init.sigma_b2=0.3")
    layer = torch.nn.Linear(500, 4000)
    torch.manual_seed(0)
    init_linear(layer, cfg.init, cfg.act)
    w2 = float(layer.weight.detach().double().pow(2).mean())
    b2 = float(layer.bias.detach().double().pow(2).mean())
    assert w2 * 500 == pytest.approx(2.5, rel=N_SE * math.sqrt(2 / layer.weight.numel()))
    assert b2 == pytest.approx(0.3, rel=N_SE * math.sqrt(2 / 4000))


def test_theory_command(capsys) -> None:
    """``initlab theory``: the same numbers as :func:`initlab.theory.predict.predict`, as text and as CSV."""
    import io

    import pandas as pd

    from initlab.cli import main
    from initlab.theory_cli import compose_config

    args = ["act=relu", "init=kaiming", "model.depth=4", "model.width=64", "data=gaussian", "data.dim=32"]
    assert main(["theory", "--format", "csv", *args]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["layer"].tolist() == [1, 2, 3, 4, 5]
    assert table["fan_in"].tolist() == [32, 64, 64, 64, 64] and table["fan_out"].tolist()[-1] == 10
    assert table["preact_var"].tolist() == pytest.approx([2, 2, 2, 2, 1])  # q holds; output gain 1
    assert set(table["phase"]) == {"critical"} and table["chi_1"].iloc[0] == pytest.approx(1.0)
    pred = P.predict(compose_config(args), 32, 10)
    grads = [r["variance"] for r in pred.rows if r["quantity"] == "grad_preact"]
    assert table["grad_preact_var"].tolist() == pytest.approx(grads)

    assert main(["theory", "act=tanh", "init=meanfield", "init.sigma_w2=1.3", "init.sigma_b2=0.05"]) == 0
    out = capsys.readouterr().out
    xi = T.depth_scales(P.activation({"name": "tanh"}), 1.3, 0.05).xi_c
    assert "phase: ordered" in out and f"xi_c = {xi:.4g}" in out and f"6*xi_c = {6 * xi:.0f}" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["init=foo"],
            "init=foo is not allowed: Could not find 'init/foo'; Available options in 'init': constant,",
        ),
        (
            ["act=foo"],
            "Available options in 'act': elu, gelu, leaky_relu, linear, prelu, relu, selu, sigmoid, silu",
        ),
        (["model.norm=batch"], "model.norm=batch"),
        (["init=lsuv"], "init=lsuv"),
        (["model.depth=0"], "model.depth=0 is not allowed"),
        (["--format", "json"], "--format 'json' is not allowed: expected text or csv"),
    ],
)
def test_theory_command_errors(args: list[str], message: str, capsys) -> None:
    from initlab.cli import main

    assert main(["theory", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "search path" not in err


@pytest.mark.parametrize(("data", "n_in"), [("cifar10", 3072), ("fashion_mnist", 784), ("mnist", 784)])
def test_theory_command_for_data_on_disk(data: str, n_in: int, capsys) -> None:
    """The files need not be there: the prediction needs only the data set's dimensions."""
    from initlab.cli import main

    assert main(["theory", "--format", "csv", f"data={data}", "model.depth=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(",")[:3] == ["1", str(n_in), "256"] and lines[-1].split(",")[2] == "10"


@pytest.mark.slow
def test_runs_write_their_prediction(tmp_path, make_cfg) -> None:
    """A run writes theory.parquet and the depth scales in summary.json; with batch norm only the reason."""
    from initlab.lab.train import train
    from initlab.runs import load_run

    n = 512
    overrides = [
        "act=tanh",
        "init=xavier",
        "init.gain=null",
        f"model.width={n}",
        "model.depth=6",
        "data.dim=128",
    ]
    probe = ["train.steps=1", "probe.fixed_batch=100", "probe.schedule=list", "probe.steps=[0]"]
    train(make_cfg(*overrides, *probe), tmp_path / "a")
    run = load_run(tmp_path / "a")
    assert run.summary["theory_phase"] == "chaotic" and run.summary["theory_chi_1"] > 1
    theory = run.theory.set_index(["quantity", "layer"])
    measured = run.layers[run.layers.step == 0].set_index(["quantity", "layer"])["std"] ** 2
    pre = (measured.loc["preact"] / theory.loc["preact", "variance"]).to_numpy()
    # one finite net random-walks around the mean-field curve: compare layer-to-layer ratios (5 SE of √(2/n))
    assert np.abs(np.diff(np.log(pre[:-1]))).max() < N_SE * 2 * math.sqrt(2 / n), pre
    assert abs(math.log(pre[0])) < N_SE * 2 * math.sqrt(2 / n)
    grad = (measured.loc["grad_preact"] / theory.loc["grad_preact", "variance"]).to_numpy()
    assert abs(np.mean(np.diff(np.log(grad)))) < N_SE * 2 * math.sqrt(2 / n), grad

    # the depth figure: beside each measured line, the prediction dashed in the same color
    from initlab import plots as P

    (name, fig), *_ = P.fig_depth([run], P.Options(steps=[0]))
    for ax, quantity in zip(fig.axes, P.DEPTH_QUANTITIES, strict=False):
        measured_line, dashed = ax.get_lines()[:2]
        assert dashed.get_linestyle() == "--" and dashed.get_color() == measured_line.get_color()
        np.testing.assert_allclose(
            dashed.get_ydata(), theory.loc[quantity, "variance"].loc[dashed.get_xdata()]
        )

    # the stats figure: the predicted step-0 mean ± std of each layer's act as a hollow square at step 0
    [(_, fig)] = P.fig_stats([run], P.Options())
    squares = [line for line in fig.axes[0].get_lines() if line.get_marker() == "s"]
    assert len(squares) == 6 and all(list(line.get_xdata()) == [0] for line in squares)
    predicted_means = theory.loc["act", "mean"].to_numpy()
    np.testing.assert_allclose([line.get_ydata()[0] for line in squares], predicted_means)

    from initlab.runs.write import RunWriter

    again = RunWriter.open(tmp_path / "a", overwrite=True)  # the same directory again: nothing stale stays
    train(make_cfg(*overrides, *probe, "model.norm=batch"), again)
    run = load_run(tmp_path / "a")
    assert run.theory.empty and "model.norm=batch" in run.summary["theory_skipped"]
