"""initlab.doctor on tiny nets: every finding on a net built to have it, and a negative control built not to.

The thresholds are the module's own (theory, papers or named rules of thumb); nothing here is tuned to
them: each positive net is past its threshold by the mechanism the finding names, each control is the
textbook healthy net of the same shape.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import initlab
from initlab.diagnosis import checks
from initlab.diagnosis.examine import probe_steps
from initlab.errors import UserError

G = torch.Generator().manual_seed(0)
X = torch.randn(256, 64, generator=G)
Y = (X @ torch.randn(64, 4, generator=G)).argmax(1)
BATCHES = [(X[i : i + 32], Y[i : i + 32]) for i in range(0, 256, 32)]


def kaiming(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, nonlinearity="relu")


def xavier(w: torch.Tensor) -> None:
    nn.init.xavier_normal_(w)


def mlp(depth: int, act: type[nn.Module] = nn.ReLU, init=kaiming, bias: float = 0.0, bn: float | None = None):
    """``depth`` hidden layers of 64 units (biases ``bias``; batch norm of momentum ``bn`` before act)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(64, 64)
        init(lin.weight)
        nn.init.constant_(lin.bias, bias)
        layers += [lin, *([nn.BatchNorm1d(64, momentum=bn)] if bn is not None else []), act()]
    return nn.Sequential(*layers, nn.Linear(64, 4))


def diagnose(model, tmp_path, lr=0.01, opt=None, batches=BATCHES, steps=40, **kw):
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    return initlab.doctor(
        model,
        batches,
        nn.CrossEntropyLoss(),
        opt,
        steps=steps,
        run_dir=tmp_path / "d",
        quiet=True,
        figure=False,
        **kw,
    )


def found(report) -> dict[str, float]:
    return {f["key"]: f["measured"] for f in report.findings}


def measured(report, key: str) -> float:
    return next(r["measured"] for r in [*report.findings, *report.passed] if r["key"] == key)


def test_xavier_relu_vanishes_forward_and_backward_kaiming_does_not(tmp_path):
    """He et al.: Xavier (n·Var = 1) halves Var[s] per ReLU layer, 2^-15 over 16 layers, < e^-6."""
    bad = diagnose(mlp(16, init=xavier), tmp_path / "x")
    assert {"forward_signal", "backward_gradient"} <= set(found(bad))
    per_layer = measured(bad, "forward_signal") ** (1 / 15)
    assert 0.4 < per_layer < 0.6  # He et al.'s ½ per layer
    assert measured(bad, "backward_gradient") < math.exp(-6)
    good = diagnose(mlp(16, init=kaiming), tmp_path / "k")
    assert good.clean, found(good)
    assert math.exp(-6) < measured(good, "forward_signal") < math.exp(6)


def test_dead_units_found_where_biases_kill_relus_not_in_a_healthy_deep_net(tmp_path):
    dead = diagnose(mlp(3, bias=-5.0), tmp_path / "dead")
    assert found(dead)["dead_units"] == 1.0
    # Kaiming ReLU, depth 20: many units are 0 on one whole batch of 32 at init, which is healthy
    healthy = diagnose(mlp(20), tmp_path / "ok")
    at_init = healthy_units_at_init(healthy)
    assert at_init > 0.1
    assert "dead_units" not in found(healthy)


def healthy_units_at_init(report) -> float:
    import pandas as pd

    frame = pd.read_parquet(report.run_dir / "layers.parquet")
    acts = frame[(frame.step == 0) & (frame.quantity == "act")]
    return float(acts.frac_zero.max())


def test_saturated_tanh_found_with_large_weights_not_with_xavier(tmp_path):
    sat = diagnose(mlp(3, act=nn.Tanh, init=lambda w: nn.init.normal_(w, std=5 / 8)), tmp_path / "s")
    assert found(sat)["saturated_units"] > checks.SATURATED_SHARE
    ok = diagnose(mlp(3, act=nn.Tanh, init=xavier), tmp_path / "x")
    assert measured(ok, "saturated_units") < 0.05 and ok.clean


def test_constant_init_never_breaks_symmetry(tmp_path):
    sym = diagnose(mlp(3, act=nn.Tanh, init=lambda w: nn.init.constant_(w, 0.05)), tmp_path / "c")
    assert found(sym)["symmetry"] <= 1
    assert {"0", "2", "4"} <= set(next(f for f in sym.findings if f["key"] == "symmetry")["layers"])
    ok = diagnose(mlp(3, act=nn.Tanh, init=xavier), tmp_path / "x")
    assert measured(ok, "symmetry") == 4  # the 4-class output layer is the smallest full rank


def test_update_size_against_the_rule_of_thumb(tmp_path):
    small = diagnose(mlp(2), tmp_path / "s", lr=1e-7)
    assert found(small)["updates_small"] < checks.UPDATE_BAND[0]
    model = mlp(2, act=nn.Tanh)  # Adam moves every weight by about lr = 1 per step
    large = diagnose(model, tmp_path / "l", opt=torch.optim.Adam(model.parameters(), lr=1.0))
    assert found(large)["updates_large"] > checks.UPDATE_BAND[1]
    ok = diagnose(mlp(2), tmp_path / "ok", lr=0.01)
    assert ok.clean


def test_batch_norm_running_statistics_that_lag_behind(tmp_path):
    scaled = [(5 * x, y) for x, y in BATCHES]  # variance 25 against running averages that start at 1
    lag = diagnose(mlp(2, bn=0.001), tmp_path / "lag", batches=scaled)
    assert found(lag)["batch_norm_stats"] > checks.BN_SHIFT or "batch_norm_stats" in found(lag)
    ok = diagnose(mlp(2, bn=0.1), tmp_path / "ok", batches=scaled)
    assert "batch_norm_stats" not in found(ok) and measured(ok, "batch_norm_stats") < checks.BN_SHIFT


def test_divergence_found_and_the_training_checks_left_out(tmp_path):
    boom = diagnose(mlp(3), tmp_path / "b", lr=100.0)
    assert "divergence" in found(boom) and boom.summary["diverged_at"] is not None
    assert any(n.startswith("dead_units: not assessed") for n in boom.notes)
    assert "forward_signal" in {r["key"] for r in boom.passed}  # the initialized net is still examined
    calm = diagnose(mlp(3), tmp_path / "c", lr=0.01)
    assert measured(calm, "divergence") < 1 and calm.clean


def test_the_user_model_optimizer_and_rng_are_untouched(tmp_path):
    model = mlp(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    diagnose(model, tmp_path, opt=opt)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and not opt.state


def test_same_model_same_numbers(tmp_path):
    a = diagnose(mlp(4), tmp_path / "a")
    b = diagnose(mlp(4), tmp_path / "b")
    assert [r["measured"] for r in a.passed] == [r["measured"] for r in b.passed]


def test_verify_reruns_with_the_fix_and_reports_before_and_after(tmp_path):
    report = diagnose(mlp(16, init=xavier), tmp_path, verify=True)
    kaiming_run = next(v for v in report.verified if v["fix"] == "kaiming")
    assert kaiming_run["before"]["forward_signal"] < math.exp(-6)
    assert math.exp(-6) < kaiming_run["after"]["forward_signal"] < math.exp(6)
    assert kaiming_run["flagged_after"]["forward_signal"] is False
    data = json.loads((report.run_dir / "doctor.json").read_text())
    assert data["verified"][0]["fix"] == kaiming_run["fix"] and not data["clean"]
    assert "rerun with kaiming" in (report.run_dir / "doctor.md").read_text()


def test_bad_input_and_taken_directories_are_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        diagnose(mlp(1), tmp_path)
    with pytest.raises(UserError, match="steps=0"):
        diagnose(mlp(1), tmp_path / "e", steps=0)
    with pytest.raises(UserError, match="no batch"):
        diagnose(mlp(1), tmp_path / "f", batches=[])


def test_probe_steps_are_dense_early_and_reach_the_second_half():
    steps = probe_steps(300)
    assert steps[:4] == [0, 1, 2, 4] and steps[-1] == 299
    assert sum(s >= 150 for s in steps) >= 4 and all(s < 300 for s in steps)
    assert probe_steps(1) == [0]


def test_a_generator_of_batches_is_replayed_for_the_verification(tmp_path):
    """An iterator is consumed once; the reruns see the same batches, from the start."""
    report = diagnose(mlp(12, init=xavier), tmp_path, batches=(b for b in BATCHES[:3]), steps=10, verify=True)
    assert report.summary["steps_done"] == 10 and report.verified
    first = next(v for v in report.verified if v["fix"] == "kaiming")
    assert first["flagged_after"]["forward_signal"] is False


def bare_evidence(**fields):
    import pandas as pd

    from initlab.diagnosis.examine import Evidence

    empty = pd.DataFrame(columns=["step", "layer", "name", "quantity", "std", "n_nonfinite"])
    base = dict(
        layers=empty,
        units=pd.DataFrame(),
        norms=pd.DataFrame(),
        updates=pd.DataFrame(),
        ranks=pd.DataFrame(),
        losses=[],
        steps=0,
        steps_done=0,
        diverged_at=None,
        probed=[],
        batch_size=None,
        activations=set(),
    )
    return Evidence(**{**base, **fields})


@pytest.mark.parametrize("init, flagged", [("xavier_normal", True), ("kaiming", False)])
def test_phase_xavier_relu_is_ordered_and_too_deep_kaiming_is_critical(init, flagged):
    """Schoenholz et al.: depth > 6·ξ_c does not train; Xavier ReLU has χ₁ = ½, 6·ξ_c = 6/ln 2 = 8.7 < 30."""
    from initlab.api import compose
    from initlab.diagnosis.configured import theory

    cfg = compose([f"init={init}", "act=relu", "model.depth=30"])
    result = checks.phase(bare_evidence(theory=theory(cfg, 1024, 9, (1.0, ((0.0, 1.0),), 0.0))))
    assert result.flagged is flagged
    assert result.measured == (pytest.approx(6 / math.log(2)) if flagged else math.inf)


def test_a_growing_loss_is_divergence_a_noisy_flat_one_is_not():
    rng = torch.Generator().manual_seed(0)
    noise = (0.1 * torch.randn(200, generator=rng)).tolist()
    growing = [2.0 + 0.01 * i + e for i, e in enumerate(noise)]
    flat = [2.0 + e for e in noise]
    assert checks.divergence(bare_evidence(losses=growing)).flagged
    assert not checks.divergence(bare_evidence(losses=flat)).flagged
