"""``resume=true``: rerunning a sweep into its directory keeps finished jobs and reruns the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_sweep import run_sweep

from initlab.lab.train import train
from initlab.runs import Run, layout
from initlab.runs.lock import clear_run_files
from initlab.sweep import index as sweep_index
from initlab.sweep import resume


def fingerprint(job_dir: Path) -> tuple[str, int]:
    """summary.json's text and metrics.parquet's modification time: both change when a job runs again."""
    return (job_dir / "summary.json").read_text(), (job_dir / "metrics.parquet").stat().st_mtime_ns


def test_decide_keeps_only_finished_runs_of_the_same_config(make_cfg) -> None:
    cfg = make_cfg("init=kaiming")
    same = resume._as_loaded(cfg)
    assert resume.decide({"status": "completed", "config": same}, cfg) == "keep"
    assert resume.decide({"status": "diverged", "config": same}, cfg) == "keep"
    for status in ("failed", "interrupted", "running", "missing"):
        assert resume.decide({"status": status, "config": same}, cfg) == "rerun"
    other = resume._as_loaded(make_cfg("init=xavier"))
    assert resume.decide({"status": "completed", "config": other}, cfg) == "rerun"
    assert resume.decide({"status": "completed", "config": None}, cfg) == "rerun"
    assert resume.decide(None, cfg) == "run"
    # `resume` itself is no difference
    flagged = make_cfg("init=kaiming")
    OmegaConf.update(flagged, "resume", True)
    assert resume.decide({"status": "completed", "config": same}, flagged) == "keep"


def test_run_files_list_every_file_a_run_writes() -> None:
    named = {v for name, v in vars(layout).items() if name.endswith("_FILE") and isinstance(v, str)}
    written = named - {layout.INDEX_FILE, layout.RESUME_FILE, layout.LOCK_FILE}  # the sweep's; the lock
    assert set(layout.RUN_FILES) == written and len(written) == 8


def test_a_rerun_without_mc_masks_leaves_no_stale_monte_carlo_table(make_cfg, tmp_path: Path) -> None:
    """What resume does to a job it reruns: a first attempt with train.mc_masks=5, then the job with 0."""
    run_dir = tmp_path / "job"
    dropout = ("model.dropout=0.5", "probe=off", "train.save_model=true")
    assert train(make_cfg(*dropout, "train.mc_masks=5"), run_dir)["status"] == "completed"
    assert (run_dir / layout.MC_DROPOUT_FILE).is_file() and (run_dir / layout.MODEL_FILE).is_file()
    clear_run_files(run_dir)
    assert [p.name for p in run_dir.iterdir() if p.name in layout.RUN_FILES] == []
    assert train(make_cfg(*dropout, "train.mc_masks=0"), run_dir)["status"] == "completed"
    assert not (run_dir / layout.MC_DROPOUT_FILE).exists() and (run_dir / layout.METRICS_FILE).is_file()


@pytest.mark.slow
def test_resume_after_ctrl_c_keeps_done_jobs_and_reruns_the_rest(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C in job 1 of 4 (job 0 done, 2 and 3 never ran); job 3 of an earlier attempt is half-written."""
    from initlab.lab import train

    build_model = train.build_model

    def ctrl_c_at_depth_3(n_features, n_classes, model, act):
        if model.depth == 3:
            raise KeyboardInterrupt
        return build_model(n_features, n_classes, model, act)

    sweep = ["model.depth=2,3,4,5"]
    monkeypatch.setattr(train, "build_model", ctrl_c_at_depth_3)
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, *sweep)
    assert code == 130
    assert sweep_index.read_index(sweep_dir)["status"].tolist() == ["completed", "interrupted"]
    kept = fingerprint(sweep_dir / "0")
    # a hard-killed earlier attempt of job 3: status running, a stale log part of another run
    (sweep_dir / "3" / ".hydra").mkdir(parents=True)
    (sweep_dir / "3" / ".hydra" / "overrides.yaml").write_text("- model.depth=5\n")
    (sweep_dir / "3" / "summary.json").write_text(json.dumps({"status": "running", "steps_done": 7}))
    parts = sweep_dir / "3" / "metrics.parquet.parts"
    parts.mkdir()
    stale = pd.read_parquet(sweep_dir / "0" / "metrics.parquet").assign(step=999)
    stale.to_parquet(parts / "part-000099.parquet")
    capsys.readouterr()

    monkeypatch.setattr(train, "build_model", build_model)
    code, _ = run_sweep(tmp_path, monkeypatch, *sweep, "resume=true")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fingerprint(sweep_dir / "0") == kept  # not run again
    assert re.search(r"^job 0 \(.*model.depth=2 .*\): kept \(completed after 20 steps\)", out, re.M), out
    assert "resume: job 1: rerunning (was interrupted)" in err
    assert "resume: job 3: rerunning (was running)" in err
    index = sweep_index.read_index(sweep_dir)
    assert index["status"].tolist() == ["completed"] * 4
    assert index["model.depth"].tolist() == [2, 3, 4, 5] and index["steps_done"].tolist() == [20] * 4
    assert "resume" not in index.columns  # bookkeeping, not a setting
    metrics = Run(sweep_dir / "3").metrics
    assert metrics["step"].max() == 20 and not metrics.duplicated(["step", "split"]).any()
    assert not parts.exists()

    # resuming a finished sweep runs nothing; a changed setting reruns every job
    code, _ = run_sweep(tmp_path, monkeypatch, *sweep, "resume=true")
    assert code == 0 and capsys.readouterr().out.count("kept (completed") == 4
    code, _ = run_sweep(tmp_path, monkeypatch, *sweep, "resume=true", "train.steps=10")
    out, err = capsys.readouterr()
    assert code == 0 and "kept (" not in out and err.count("rerunning (was another config)") == 4
    assert sweep_index.read_index(sweep_dir)["steps_done"].tolist() == [10] * 4


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_resume_under_parallel_launchers(tmp_path, monkeypatch, capfd, launcher) -> None:
    """Jobs in other processes read the record of the earlier sweep: the completed job is not run again."""
    args = [f"hydra/launcher={launcher}", "model.depth=2,0"]  # depth 0 fails its config check
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, *args)
    assert code == 1
    kept, failed = fingerprint(sweep_dir / "0"), (sweep_dir / "1" / "summary.json").stat().st_mtime_ns
    code, _ = run_sweep(tmp_path, monkeypatch, *args, "resume=true")
    assert code == 1  # the failed job ran again, and failed again
    assert fingerprint(sweep_dir / "0") == kept
    assert (sweep_dir / "1" / "summary.json").stat().st_mtime_ns != failed
    assert sweep_index.read_index(sweep_dir)["status"].tolist() == ["completed", "failed"]
    capfd.readouterr()


def test_a_display_setting_is_no_difference(make_cfg) -> None:
    """Adding train.progress=false to the resumed command keeps the finished jobs (it reran all of them)."""
    import yaml

    saved = yaml.safe_load(OmegaConf.to_yaml(make_cfg("train.progress=true"), resolve=False))
    earlier = {"status": "completed", "config": resume.comparable(saved)}
    assert "progress" not in earlier["config"]["train"] and saved["train"]["progress"] is True
    assert resume.decide(earlier, make_cfg("train.progress=false")) == "keep"
    assert resume.decide(earlier, make_cfg("train.progress=false", "train.steps=21")) == "rerun"
