"""`initlab doctor` end to end: no false alarms on healthy nets, the right findings on the papers' sick ones.

Healthy (each at a learning rate where it trains): Kaiming ReLU at depth 30, SELU with LeCun init at depth
32, LSUV, batch-norm nets, a small ResNet. At the default lr 0.05 the first two diverge within a few
steps, and divergence is then the finding.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import initlab
from initlab.cli import main
from initlab.diagnosis import doctor_config


def run(tmp_path, *overrides: str, **kw):
    return doctor_config(list(overrides), run_dir=tmp_path / "d", quiet=True, figure=False, **kw)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ("init=kaiming", "act=relu", "model.depth=30", "optim.lr=0.005"),
        ("init=lecun", "act=selu", "model.depth=32", "optim.lr=0.005"),
        ("init=lsuv", "act=relu", "model.depth=30", "optim.lr=0.005"),
        ("experiment=bn_sigmoid", "model.norm=batch"),
        ("init=kaiming", "act=relu", "model.depth=10", "model.norm=batch"),
    ],
)
def test_healthy_nets_get_a_clean_report(tmp_path, overrides):
    report = run(tmp_path, *overrides)
    assert report.clean, [(f["key"], f["detail"]) for f in report.findings]
    assert report.summary["steps_done"] == 300


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [("init=kaiming", "act=relu", "model.depth=30"), ("init=lecun", "act=selu", "model.depth=32")],
)
def test_at_the_default_learning_rate_divergence_is_the_finding(tmp_path, overrides):
    report = run(tmp_path, *overrides)
    assert [f["key"] for f in report.findings] == ["divergence"]
    assert report.summary["diverged_at"] < 300


@pytest.mark.slow
def test_he_et_al_xavier_relu_30_layers(tmp_path):
    """He et al. 2015 Fig. 3: Xavier's n·Var = 1 with ReLU halves Var[s] per layer (2^-29 over the net),
    the mean-field prediction says the same, the net is ordered (χ₁ = ½) and 3.5× deeper than 6·ξ_c."""
    report = run(
        tmp_path,
        "init=xavier_normal",
        "act=relu",
        "model.depth=30",
        "data=digits",
        "optim.lr=0.002",
        "optim.momentum=0.9",
        "train.batch_size=32",
        steps=150,
        verify=True,
    )
    found = {f["key"]: f for f in report.findings}
    assert {"forward_signal", "backward_gradient", "phase"} <= set(found)
    forward = found["forward_signal"]
    assert 0.46 < forward["measured"] ** (1 / 29) < 0.52 and forward["predicted"] == pytest.approx(
        2.0**-29, rel=0.2
    )
    assert found["phase"]["measured"] == pytest.approx(6 / math.log(2), rel=1e-6)
    kaiming = next(v for v in report.verified if v["fix"] == "kaiming")
    assert (
        not kaiming["flagged_after"]["forward_signal"] and not kaiming["flagged_after"]["backward_gradient"]
    )
    assert json.loads((report.run_dir / "doctor.json").read_text())["findings"][0]["source_kind"]


def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["doctor", "init=nope", "--dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "init=nope" in err and "kaiming" in err
    assert main(["doctor", "--steps", "0", "--dir", str(tmp_path / "y")]) == 2
    assert "steps=0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


class Block(nn.Module):
    """A ResNet basic block (He et al. 2016): two 3×3 conv–BN, ReLU, identity or 1×1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.short = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.short(x))


def small_resnet(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        Block(width, width, 1),
        Block(width, 2 * width, 2),
        Block(2 * width, 2 * width, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 10),
    )


def test_a_small_resnet_gets_a_clean_report(tmp_path):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor((x - x.mean()) / x.std(), dtype=torch.float32).reshape(-1, 1, 8, 8)
    batches = [(x[i : i + 32], torch.tensor(y[i : i + 32])) for i in range(0, 1024, 32)]
    model = small_resnet()
    report = initlab.doctor(
        model,
        batches,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.05),
        steps=60,
        run_dir=tmp_path / "r",
        quiet=True,
        figure=False,
    )
    assert report.clean, [(f["key"], f["detail"]) for f in report.findings]
    keys = {r["key"] for r in report.passed}
    assert {"forward_signal", "backward_gradient", "dead_units", "batch_norm_stats", "symmetry"} <= keys


@pytest.mark.slow
def test_the_command_writes_the_report_and_exits_1_on_a_finding(tmp_path, capsys):
    """Constant init never breaks symmetry: a finding, exit status 1, the three files, the theory beside."""
    code = main(
        [
            "doctor",
            "init=constant",
            "model.depth=2",
            "model.width=16",
            "data=digits",
            "--steps",
            "30",
            "--dir",
            str(tmp_path / "c"),
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "symmetry never broken" in out and "report written to" in out
    for name in ("doctor.md", "doctor.json", "doctor.png", "layers.parquet"):
        assert (tmp_path / "c" / name).is_file()
    data = json.loads((tmp_path / "c" / "doctor.json").read_text())
    assert "symmetry" in {f["key"] for f in data["findings"]}


@pytest.mark.slow
def test_the_figure_draws_the_mean_field_prediction_beside_the_measurement(tmp_path):
    report = doctor_config(
        ["init=xavier_normal", "act=relu", "model.depth=12", "model.width=64", "data=digits"],
        steps=20,
        run_dir=tmp_path / "f",
        quiet=True,
    )
    forward = next(r for r in [*report.findings, *report.passed] if r["key"] == "forward_signal")
    assert len(forward["predicted_per_layer"]) == 12
    assert forward["predicted_per_layer"]["hidden.11.linear"] == pytest.approx(0.5**11, rel=0.05)
    assert (tmp_path / "f" / "doctor.png").stat().st_size > 10_000
