"""``train.save_model=true``: the final ``state_dict`` in ``model.pt``, read back by ``Run.weights``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from initlab.config import ConfigError
from initlab.lab.data import load_data
from initlab.lab.models import build_model
from initlab.lab.train import train
from initlab.runs import load_run
from initlab.runs.lock import clear_run_files


def test_saved_model_reproduces_the_final_test_loss(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("train.save_model=true", "probe=off")
    summary = train(cfg, tmp_path)
    data = load_data(cfg.data, torch.device("cpu"))
    model = build_model(data.input_shape, data.n_classes, cfg.model, cfg.act)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        n = cfg.train.eval_examples
        loss = F.cross_entropy(model(data.x_test[:n]), data.y_test[:n])
    assert float(loss) == pytest.approx(summary["final_test_loss"], rel=1e-6)
    weights = load_run(tmp_path).weights  # the weight matrices only, in module order, as numpy arrays
    assert list(weights) == [name for name, p in model.named_parameters() if p.ndim >= 2]
    assert [w.shape for w in weights.values()] == [(16, 16), (16, 16), (10, 16)]  # 2 x 16 units, 10 classes
    for name, w in weights.items():
        assert (w == model.state_dict()[name].numpy()).all()


def test_no_model_file_by_default_and_resume_clears_it(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("probe=off", "train.steps=1"), tmp_path / "off")
    assert not (tmp_path / "off" / "model.pt").exists() and load_run(tmp_path / "off").weights == {}
    train(make_cfg("probe=off", "train.steps=1", "train.save_model=true"), tmp_path / "on")
    clear_run_files(tmp_path / "on")  # a rerun of the job must not find the old weights
    assert not (tmp_path / "on" / "model.pt").exists()


def test_unreadable_model_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_text("not a torch file")
    (tmp_path / "summary.json").write_text('{"status": "completed"}')
    run = load_run(tmp_path)
    assert run.weights == {} and "model.pt: unreadable" in run.problems[0]


def test_bad_save_model_value_is_refused(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.save_model=maybe is not allowed: expected true or false"):
        train(make_cfg("train.save_model=maybe"), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"train.save_model=1 is not allowed: expected true or false"):
        train(make_cfg("train.save_model=1"), tmp_path / "run")  # 1 == True in Python, not a boolean here
    assert not (tmp_path / "run").exists()
