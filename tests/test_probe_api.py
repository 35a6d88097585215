"""``initlab.probe`` on models initlab has never seen: layer discovery, the run directory, the figures."""

from __future__ import annotations

import copy
import gc
import io
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.errors import UserError
from initlab.probing import capture
from initlab.probing.hooks import Tracer, discover


class ResidualNet(nn.Module):
    """x -> Linear "inp" -> h + Linear "fc2"(GELU(LayerNorm(Linear "fc1"(h)))) -> Linear "head"."""

    def __init__(self, n_in: int = 6, d: int = 16, n_out: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, d)
        self.fc1 = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d, d)
        self.head = nn.Linear(d, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.fc2(self.act(self.norm(self.fc1(h))))
        return self.head(h)


class FunctionalNet(nn.Module):
    """Two linear layers with ``F.relu`` between them: no activation module at all."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 12)
        self.b = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)))


class SharedReluConvNet(nn.Module):
    """Two 3x3 convs sharing one in-place ReLU module, average pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


def toy_data(shape: tuple[int, ...], n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def train_loop(model: nn.Module, x, y, steps: int, probe=None) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(steps):
        batch = slice(8 * (step % 8), 8 * (step % 8) + 8)
        ctx = probe.step(step) if probe is not None else torch.enable_grad()
        with ctx:
            loss = F.cross_entropy(F.dropout(model(x[batch]), 0.2), y[batch])
            loss.backward()
        opt.step()
        opt.zero_grad()
        if probe is not None:
            probe.log_metrics(step, split="train", loss=loss.item())
        losses.append(loss.item())
    return losses


def test_discovery_in_forward_order_with_module_paths_and_fans() -> None:
    layers = discover(ResidualNet(), torch.randn(2, 6))
    assert [p.name for p in layers] == ["inp", "fc1", "fc2", "head"]
    assert [(p.fan_in, p.fan_out) for p in layers] == [(6, 16), (16, 16), (16, 16), (16, 3)]
    # GELU follows fc1 through the LayerNorm; inp and fc2 feed a residual sum, head the loss.
    assert [type(p.act).__name__ if p.act else None for p in layers] == [None, "GELU", None, None]
    conv = discover(SharedReluConvNet(), torch.randn(2, 1, 8, 8))
    assert [(p.name, p.fan_in, p.fan_out) for p in conv] == [
        ("conv1", 9, 36),  # C_in·k² and C_out·k²
        ("conv2", 36, 45),
        ("head", 5, 3),
    ]
    assert [p.act is not None for p in conv] == [True, True, False]
    assert [p.name for p in discover(FunctionalNet(), torch.randn(2, 6))] == ["a", "b"]


def test_residual_model_run_directory(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ResidualNet()
    x, y = toy_data((6,))
    with initlab.probe(model, tmp_path / "run", every=2, total_steps=10) as probe:
        train_loop(model, x, y, 10, probe)
    run = initlab.load_run(tmp_path / "run")
    assert run.summary["status"] == "completed" and run.summary["steps_done"] == 10
    layers = run.layers
    assert sorted(layers.step.unique()) == [0, 2, 4, 6, 8]
    assert set(layers[layers.layer > 0].name) == {"inp", "fc1", "fc2", "head"}
    # Every parameter is seen: the weights as weight rows, the rest (biases, the LayerNorm's, which belongs
    # to no layer: layer 0) as param rows, by qualified name.
    params = layers[(layers.step == 0) & layers.quantity.isin(["weight", "param"])]
    assert sorted(params.param) == sorted(name for name, _ in model.named_parameters())
    assert set(params[params.layer == 2].param) == {"fc1.weight", "fc1.bias", "norm.weight", "norm.bias"}
    assert run.summary["param_coverage"] == 1.0 and run.summary["params_left_out"] == {}
    # Only fc1 is followed by an activation module; its preact is the LayerNorm's output: unit variance
    # per example (biased estimator), so the pooled std over 8x16 values is ~1.
    act_layers = set(layers[layers.quantity == "act"].layer)
    assert act_layers == {2}
    fc1 = layers[(layers.step == 0) & (layers.layer == 2) & (layers.quantity != "param")]
    fc1 = fc1[fc1.quantity != "grad_param"].set_index("quantity")
    assert fc1.loc["preact", "std"] == pytest.approx(1.0, abs=0.05)
    assert fc1.loc["preact", "n"] == 8 * 16
    # GELU(s) >= -0.17 for every s.
    assert fc1.loc["act", "min"] >= -0.1701
    # Layers without an activation module: preact is the layer's output, and its gradient is logged.
    assert {"preact", "grad_preact", "weight", "grad_weight"} <= set(layers[layers.layer == 4].quantity)
    assert set(run.metrics.columns) == {"step", "split", "loss"} and len(run.metrics) == 10
    assert run.hists.groupby(["step", "layer", "quantity", "param"]).size().max() == 1
    assert run.hists.edges.map(len).eq(101).all()  # joined back on (layer, quantity, param)


def test_functional_relu_has_no_act_rows_and_preact_is_the_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FunctionalNet()
    x, y = toy_data((6,))
    with initlab.probe(model, tmp_path, steps=[0, 3]) as probe:
        train_loop(model, x, y, 5, probe)
    layers = initlab.load_run(tmp_path).layers
    assert "act" not in set(layers.quantity)
    first = layers[(layers.step == 0) & (layers.layer == 1) & (layers.quantity == "preact")].iloc[0]
    with torch.no_grad():
        torch.manual_seed(0)
        expected = FunctionalNet().a(x[:8])
    assert first["std"] == pytest.approx(expected.std().item(), rel=1e-5)
    assert first["min"] < 0  # the linear output, before F.relu


def test_inplace_shared_activation_keeps_the_preactivation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SharedReluConvNet()
    x, y = toy_data((1, 8, 8))
    with initlab.probe(model, tmp_path, steps=[0]) as probe:
        train_loop(model, x, y, 2, probe)
    layers = initlab.load_run(tmp_path).layers.set_index(["layer", "quantity"])
    for layer in (1, 2):
        assert layers.loc[(layer, "preact"), "min"] < 0  # copied before ReLU overwrote it
        assert layers.loc[(layer, "act"), "min"] == 0
        assert layers.loc[(layer, "act"), "frac_zero"] == pytest.approx(0.5, abs=0.15)
        assert layers.loc[(layer, "preact"), "n"] == 8 * (4 if layer == 1 else 5) * 64
    # ∂L/∂s is zero exactly where the ReLU is off (s < 0): as many zeros as act has.
    assert layers.loc[(2, "grad_preact"), "frac_zero"] == pytest.approx(layers.loc[(2, "act"), "frac_zero"])


@pytest.mark.parametrize("make", [ResidualNet, SharedReluConvNet])
def test_trajectory_is_bit_identical_with_probes_on(tmp_path: Path, make) -> None:
    torch.manual_seed(3)
    model = make()
    twin = copy.deepcopy(model)
    x, y = toy_data((6,) if make is ResidualNet else (1, 8, 8))
    torch.manual_seed(5)
    plain = train_loop(model, x, y, 6)
    torch.manual_seed(5)
    with initlab.probe(twin, tmp_path, every=1, jacobian=True, unit_distance=True) as probe:
        probed = train_loop(twin, x, y, 6, probe)
    assert plain == probed
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True))
    assert len(initlab.load_run(tmp_path).layers.step.unique()) == 6


def test_hooks_stay_on_over_consecutive_probed_steps_only(tmp_path: Path) -> None:
    model = FunctionalNet()
    x, y = toy_data((6,))
    probe = initlab.probe(model, tmp_path, steps=[0, 1, 4])

    def hooked() -> bool:
        return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())

    after = []
    for step in range(6):
        with probe.step(step):
            F.cross_entropy(model(x[:8]), y[:8]).backward()
        model(x[:8])  # an extra pass between steps (an evaluation) records nothing
        after.append(hooked())
    probe.close()
    assert after == [True, False, False, False, False, False]  # kept after step 0 for step 1, then removed
    assert not hooked()
    assert sorted(initlab.load_run(tmp_path).layers.step.unique()) == [0, 1, 4]


def test_bad_settings_raise_one_line_errors(tmp_path: Path) -> None:
    model = FunctionalNet()
    with pytest.raises(UserError, match="schedule='log' needs total_steps"):
        initlab.probe(model, tmp_path)
    with pytest.raises(UserError, match=r"probe.every=0 is not allowed: expected an integer >= 1"):
        initlab.probe(model, tmp_path, every=0)
    with pytest.raises(UserError, match=r"probe.schedule=sometimes is not allowed: expected one of log"):
        initlab.probe(model, tmp_path, schedule="sometimes", total_steps=5)
    with pytest.raises(UserError, match="unknown options"):
        initlab.probe(model, tmp_path, total_steps=5, colour=1)


def test_a_failing_loop_keeps_its_probes_and_says_so(tmp_path: Path) -> None:
    model = FunctionalNet()
    x, y = toy_data((6,))
    with pytest.raises(RuntimeError), initlab.probe(model, tmp_path, every=1) as probe:
        train_loop(model, x, y, 3, probe)
        raise RuntimeError("boom")
    run = initlab.load_run(tmp_path)
    assert run.summary["status"] == "failed" and "boom" in run.summary["error"]
    assert sorted(run.layers.step.unique()) == [0, 1, 2]
    assert math.isfinite(run.layers["std"].iloc[0])


@pytest.mark.slow
def test_every_figure_is_drawn_from_a_user_model_run(tmp_path: Path, capsys) -> None:
    from initlab.cli import main

    torch.manual_seed(0)
    model = ResidualNet()
    x, y = toy_data((6,))
    with initlab.probe(model, tmp_path / "run", schedule="log", total_steps=40, points=6) as probe:
        train_loop(model, x, y, 40, probe)
    figures = "hist,stats,depth,heatmap,curves"
    assert main(["plot", str(tmp_path / "run"), "--figures", figures, "--steps", "0,last"]) == 0
    drawn = {p.stem for p in (tmp_path / "run" / "figures").glob("*.png")}
    assert {"hist", "stats", "depth", "curves"} <= {d.split("_")[0] for d in drawn}, drawn
    assert any(d.startswith("heatmap") for d in drawn), drawn
    assert "skipped" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("<!-- probe-example -->\n```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    run = initlab.load_run(tmp_path / "runs" / "mine")
    assert run.summary["status"] == "completed" and run.summary["steps_done"] == 96
    assert list(run.layers.query("step == 0 and quantity == 'weight'").name) == ["0", "3", "7"]
    assert set(run.layers.query("quantity == 'act'").layer) == {1, 2}  # ReLU after the BatchNorm; GELU
    assert len(run.metrics) == 96 and "layer" in capsys.readouterr().out


def probed_steps(run_dir: Path) -> list[int]:
    return sorted(int(s) for s in initlab.load_run(run_dir).layers.step.unique())


def test_an_interrupt_while_steps_are_described_loses_none_of_them(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C (or SIGTERM) while a batch of up to 64 captured steps is described: close() describes it."""
    real_table, calls = capture.Captures.table, {"n": 0}

    def interrupted_table(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_table(self, *args, **kwargs)

    monkeypatch.setattr(capture.Captures, "table", interrupted_table)
    model = FunctionalNet()
    x, y = toy_data((6,))
    with pytest.raises(KeyboardInterrupt), initlab.probe(model, tmp_path, every=1) as probe:
        train_loop(model, x, y, 100, probe)
    done = initlab.load_run(tmp_path).summary["steps_done"]
    assert calls["n"] == 2 and 1 <= done < 100  # interrupted inside the loop, described again by close()
    assert probed_steps(tmp_path) == list(range(done))


def test_an_interrupt_right_after_a_capture_loses_none_of_the_steps(tmp_path: Path, monkeypatch) -> None:
    real_add, calls = capture.Captures.add, {"n": 0}

    def add_then_interrupt(self, *args, **kwargs):
        real_add(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(capture.Captures, "add", add_then_interrupt)
    model = FunctionalNet()
    x, y = toy_data((6,))
    with pytest.raises(KeyboardInterrupt), initlab.probe(model, tmp_path, every=1) as probe:
        train_loop(model, x, y, 10, probe)
    assert probed_steps(tmp_path) == [0, 1, 2, 3, 4]
    assert initlab.load_run(tmp_path).summary["status"] == "interrupted"


def test_a_model_without_layers_closes_with_a_complete_summary(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.ReLU())  # no weight of 2+ dimensions: nothing to probe
    x = torch.randn(4, 3, requires_grad=True)
    probe = initlab.probe(model, tmp_path, steps=[0, 1])
    with pytest.warns(UserWarning, match="no module with a weight"):
        for step in range(3):
            with probe.step(step):
                model(x).sum().backward()
    probe.close()
    run = initlab.load_run(tmp_path)
    assert run.summary["status"] == "empty" and run.summary["steps_done"] == 3
    assert "recorded nothing" in run.summary["error"]
    assert run.layers.empty


def test_a_failing_close_still_writes_the_summary(tmp_path: Path, monkeypatch) -> None:
    """An error in the statistics surfaces in close(): the summary says so; an earlier error is kept."""

    def broken_table(self, *args, **kwargs):
        raise ValueError("bad statistics")

    monkeypatch.setattr(capture.Captures, "table", broken_table)
    model = FunctionalNet()
    x, y = toy_data((6,))
    probe = initlab.probe(model, tmp_path / "a", every=1)
    train_loop(model, x, y, 3, probe)
    with pytest.raises(ValueError, match="bad statistics"):
        probe.close()
    summary = initlab.load_run(tmp_path / "a").summary
    assert summary["status"] == "failed" and summary["error"] == "ValueError: bad statistics"
    assert summary["steps_done"] == 3 and len(initlab.load_run(tmp_path / "a").metrics) == 3
    with pytest.raises(ValueError), initlab.probe(model, tmp_path / "b", every=1) as probe:
        train_loop(model, x, y, 3, probe)
        raise RuntimeError("boom")
    summary = initlab.load_run(tmp_path / "b").summary
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: boom"


def test_copies_and_pickles_of_a_model_between_probed_steps_carry_no_probe(tmp_path: Path) -> None:
    """Between consecutive probed steps the hooks stay on: an EMA copy (deepcopy) or torch.save(model) made
    then gets inert hooks, not a copy of the probe's tracer; the probe records the original model only."""
    model = FunctionalNet()
    x, y = toy_data((6,))
    probe = initlab.probe(model, tmp_path, every=1)
    with probe.step(0):
        F.cross_entropy(model(x[:8]), y[:8]).backward()
    ema = copy.deepcopy(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    hooks = [h for m in ema.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
    assert hooks and not any(isinstance(r, Tracer) for r in gc.get_referents(*hooks))
    assert b"Tracer" not in buffer.getvalue()
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    with probe.step(1):
        F.cross_entropy(model(x[:8]), y[:8]).backward()
        F.cross_entropy(ema(x[8:16]) + loaded(x[8:16]), y[8:16]).backward()
    probe.close()
    layers = initlab.load_run(tmp_path).layers
    # 2 layers x weight, preact, grad_preact, grad_weight; 2 biases x param, grad_param
    assert layers.groupby("step").size().tolist() == [12, 12]
    w = layers[(layers.step == 1) & (layers.quantity == "preact") & (layers.layer == 1)]
    assert w["n"].tolist() == [8 * 12]  # the original's batch of 8, not the copies' passes
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), model.parameters(), strict=True))
