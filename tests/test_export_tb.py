"""``initlab export-tb``: event files, read back with TensorBoard's own reader, hold what the runs logged."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from initlab.cli import main
from initlab.export_tb import histogram_buckets
from initlab.runs import load_run

GOLDEN = Path(__file__).parent / "golden" / "runs"


def test_buckets_are_the_stored_bins_plus_under_and_overflow() -> None:
    edges, counts = [0.0, 1.0, 2.0, 3.0], [4, 5, 6]
    plain = histogram_buckets(edges, counts, 0, 0, lo=0.5, hi=2.5)
    assert plain == {
        "min": 0.0,
        "max": 3.0,
        "num": 15,
        "bucket_limits": [1.0, 2.0, 3.0],
        "bucket_counts": counts,
    }
    both = histogram_buckets(edges, counts, 2, 3, lo=-4.0, hi=7.0)
    assert both["min"] == -4.0 and both["max"] == 7.0 and both["num"] == 20
    assert both["bucket_limits"] == [0.0, 1.0, 2.0, 3.0, 7.0]
    assert both["bucket_counts"] == [2, 4, 5, 6, 3]


def _reader(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"histograms": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_export_reads_back_with_tensorboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import metadata

    sweep = tmp_path / "he"  # a copy: the default output goes into the sweep directory
    shutil.copytree(GOLDEN / "he", sweep, ignore=shutil.ignore_patterns("[0-35-7]"))  # job 4 only
    assert main(["export-tb", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "1 runs" in out and "465 histograms" in out, out
    (run_dir,) = [p for p in (sweep / "tensorboard").rglob("*") if any(p.glob("events.out.tfevents.*"))]
    run = load_run(sweep / "4")
    acc = _reader(run_dir)

    # metrics: every evaluated step of both splits
    test = run.curve("test")
    got = acc.Scalars("test/accuracy")
    assert [e.step for e in got] == test["step"].tolist()
    assert [e.value for e in got] == pytest.approx(test["accuracy"].tolist(), rel=1e-6)

    # every stored histogram, bin for bin, with under- and overflow as extra buckets
    hists = run.hists
    assert len(acc.Tags()["histograms"]) == hists.groupby(["layer", "quantity"]).ngroups
    n_checked = n_flow = 0
    for row in hists.itertuples():
        events = {e.step: e.histogram_value for e in acc.Histograms(f"{row.quantity}/layer{row.layer:02d}")}
        h = events[row.step]
        counts = list(h.bucket)
        inner = counts[1 if row.underflow else 0 : len(counts) - (1 if row.overflow else 0)]
        assert inner == list(row.counts)
        assert list(h.bucket_limit)[(1 if row.underflow else 0) :][: len(row.edges) - 1] == pytest.approx(
            list(row.edges[1:])
        )
        assert h.num == sum(row.counts) + row.underflow + row.overflow
        if row.underflow:
            assert counts[0] == row.underflow and h.min < row.edges[0]
        if row.overflow:
            assert counts[-1] == row.overflow and h.max > row.edges[-1]
        n_flow += bool(row.underflow or row.overflow)
        n_checked += 1
    assert n_checked == 465 and n_flow > 0

    # per-layer statistics as scalars
    std = run.layers.query("quantity == 'act' and layer == 3").sort_values("step")
    got = acc.Scalars("act/std/layer03")
    assert [e.value for e in got] == pytest.approx(std["std"].tolist(), rel=1e-6)

    # one HParams entry: overrides and final metrics
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["init"].string_value == "kaiming_normal"
    assert start.hparams["model.depth"].number_value == 30
    assert start.hparams["status"].string_value == "completed"
    (final,) = acc.Scalars("hparams/final_test_accuracy")
    assert final.value == pytest.approx(run.summary["final_test_accuracy"], rel=1e-6)


def test_sweep_gives_one_named_run_and_hparams_session_per_job(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import metadata

    assert main(["export-tb", str(GOLDEN / "bn"), "--out", str(tmp_path)]) == 0
    runs = sorted(p.name for p in (tmp_path / "bn").iterdir())
    assert runs == ["0 model.norm=none", "1 model.norm=batch"]
    norms = set()
    for name in runs:
        acc = _reader(tmp_path / "bn" / name)
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        norms.add(start.hparams["model.norm"].string_value)
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        domain = {h.name: list(h.domain_discrete.values) for h in experiment.hparam_infos}
        assert sorted(v.string_value for v in domain["model.norm"]) == ["batch", "none"]
    assert norms == {"none", "batch"}
    # exporting again replaces the files instead of adding a second copy of every event
    assert main(["export-tb", str(GOLDEN / "bn"), "--out", str(tmp_path)]) == 0
    assert len(list((tmp_path / "bn" / runs[0]).glob("events.out.tfevents.*"))) == 1


def test_without_tensorboard_one_line_says_how_to_install(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    assert main(["export-tb", str(GOLDEN / "bn"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "initlab[tensorboard]"' in err[0]
    assert not any(tmp_path.iterdir())


def test_a_path_without_runs_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    assert main(["export-tb", str(tmp_path / "nope"), "--out", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
