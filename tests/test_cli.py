"""The ``initlab`` command as a user meets it: real subprocesses for ``run``, in-process for ``list``.

Each subprocess costs a few seconds (importing torch), so every one checks as much as it can.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import METRICS_COLUMNS, SUMMARY_KEYS

from initlab.cli import main
from initlab.config import config_dir, group_options, groups
from initlab.runs import read_parquet


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def initlab(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m initlab ARGS`` in ``cwd``, with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_run_writes_a_valid_run_directory(tmp_path: Path, tiny_overrides: list[str]) -> None:
    run_dir = tmp_path / "run"
    overrides = [*tiny_overrides, "init=kaiming", "train.eval_every=10"]
    proc = initlab("run", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "completed after 20 steps" in proc.stdout and str(run_dir) in proc.stdout

    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["init"]["name"] == "kaiming" and config["model"]["width"] == 16
    assert "init=kaiming" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert (run_dir / ".hydra" / "hydra.yaml").is_file()

    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert list(metrics.columns) == METRICS_COLUMNS
    assert not metrics.duplicated(["step", "split"]).any()
    assert set(metrics.split) == {"train", "test"}
    assert sorted(metrics.step) == [0, 0, 10, 10, 20, 20]  # each split at 0, every 10 steps, and the end

    s = summary(run_dir)
    assert SUMMARY_KEYS <= set(s)
    assert (
        s["status"] == "completed" and s["steps_done"] == 20 and s["diverged_at"] is None and s["seed"] == 0
    )
    assert s["final_test_accuracy"] == pytest.approx(
        metrics.query("step == 20 and split == 'test'").accuracy.item()
    )
    assert {"torch", "hydra", "initlab", "python"} <= set(s["versions"])
    for name in ("layers.parquet", "hists.parquet"):
        assert len(pd.read_parquet(run_dir / name)) > 0
    assert not (tmp_path / "outputs").exists()  # hydra.run.dir was honoured


MNIST_MISSING = "data=mnist data.root={tmp}/no-mnist"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ("model.depth=0", ["model.depth=0", "integer >= 1"]),
        ("model.width=-3", ["model.width=-3", "integer >= 1"]),
        ("model.dropout=1.5", ["model.dropout=1.5", "probability in [0, 1)"]),
        ("optim.lr=0", ["optim.lr=0", "number > 0"]),
        ("init.name=foo", ["init.name=foo", "one of constant, kaiming, lecun, lsuv, meanfield, normal"]),
        (MNIST_MISSING, ["no-mnist", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    ],
    ids=["depth", "width", "dropout", "lr", "init_name", "mnist_missing"],
)
def test_bad_input_gives_one_clear_line(
    tmp_path: Path, tiny_overrides, overrides: str, names: list[str]
) -> None:
    args = overrides.format(tmp=tmp_path).split()
    if args[0] == "data=mnist":
        tiny_overrides = [o for o in tiny_overrides if not o.startswith("data")]
    proc = initlab("run", *tiny_overrides, *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert not (tmp_path / "run").exists()  # refused before training: no run directory
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("initlab: error: ")
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_group_option_keeps_hydras_message(tmp_path: Path) -> None:
    proc = initlab("run", "init=foo", "train.steps=0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Available options in 'init':" in proc.stderr and "orthogonal, standard" in proc.stderr
    assert "init/foo" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_diverging_run_is_not_an_error(tmp_path: Path, tiny_overrides: list[str]) -> None:
    run_dir = tmp_path / "run"
    diverging = ["init=normal", "init.std=10", "model.depth=6", "optim.lr=10", "act=relu", "probe=off"]
    proc = initlab("run", *tiny_overrides, *diverging, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "diverged" in proc.stderr
    assert all(line.startswith("initlab: warning: ") for line in proc.stderr.splitlines()), proc.stderr
    s = summary(run_dir)
    assert (
        s["status"] == "diverged"
        and isinstance(s["diverged_at"], int)
        and s["steps_done"] == s["diverged_at"]
    )
    assert not pd.read_parquet(run_dir / "metrics.parquet").duplicated(["step", "split"]).any()


def default_sigint() -> None:
    """In the child: Ctrl-C's default action, also when pytest itself runs in the background (where the
    shell starts it with SIGINT ignored, which a child would inherit and then never see Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_signal_stops_the_run_and_keeps_its_logs(tmp_path: Path, tiny_overrides: list[str], signum) -> None:
    run_dir = tmp_path / "run"
    long_run = ["train.steps=10000000", "train.eval_every=20", "probe=off"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "initlab", "run", *tiny_overrides, *long_run, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while read_parquet(run_dir / "metrics.parquet").empty:  # from the first evaluation on, the loop runs
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        time.sleep(0.5)  # some training steps
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    s = summary(run_dir)
    assert s["status"] == "interrupted" and s["steps_done"] > 0
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert len(metrics) >= 2 and not metrics.duplicated(["step", "split"]).any()
    assert metrics.step.max() <= s["steps_done"]


def test_cfg_job_prints_the_config_without_training(tmp_path: Path) -> None:
    proc = initlab("run", "--cfg", "job", "init=kaiming", "model.depth=7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert (
        config["init"]["name"] == "kaiming"
        and config["model"]["depth"] == 7
        and config["act"]["name"] == "tanh"
    )
    assert "hydra" not in config
    assert list(tmp_path.iterdir()) == []  # no run directory, no outputs/


def test_run_help_lists_groups(tmp_path: Path) -> None:
    proc = initlab("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "initlab run" in proc.stdout and "== Config groups ==" in proc.stdout
    init_line = next(line for line in proc.stdout.splitlines() if line.startswith("init: "))
    assert "kaiming" in init_line and "xavier" in init_line and "lsuv" in init_line


# --- in-process: commands that do not train ------------------------------------------------------------


def listed_groups(text: str) -> dict[str, list[str]]:
    """Parse ``initlab list`` output: 'group:' lines, then 'option  description' lines indented by two spaces
    (descriptions go on in lines indented further)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith(" "):
            group = line.rstrip(":")
            out[group] = []
        elif not line.startswith("   "):
            out[group].append(line.split()[0])
    return out


def test_list_prints_every_group_with_its_options(capsys) -> None:
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    listed = listed_groups(text)
    on_disk = {
        d.name: sorted(f.stem for f in d.glob("*.yaml"))
        for d in config_dir().iterdir()
        if d.is_dir() and any(d.glob("*.yaml"))
    }
    assert listed == on_disk
    assert {"init", "act", "model", "data", "optim", "train", "probe"} <= set(listed)
    assert {"kaiming", "xavier", "lsuv", "orthogonal", "standard", "torch_default"} <= set(listed["init"])
    kaiming = next(line for line in text.splitlines() if line.split()[:1] == ["kaiming"])
    assert "He et al. 2015" in kaiming  # the description is the file's first comment


def test_list_prints_whole_descriptions(capsys, monkeypatch) -> None:
    """A preset's description is its header's first paragraph, whole, wrapped under its column."""
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list", "experiment"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["glorot_table1"])
    column = lines[start].index("Glorot")
    assert all(len(line) <= 100 for line in lines)
    text = lines[start][column:] + " " + " ".join(line.strip() for line in lines[start + 1 : start + 3])
    assert text.startswith(
        "Glorot & Bengio 2010 Table 1 / Fig. 11 on Shapeset: test error of {sigmoid, tanh, softsign} x "
        "{standard, normalized} init, 5 hidden layers, 3 seeds."
    )
    assert lines[start + 1].startswith(" " * column) and not lines[start + 1][column].isspace()
    assert "initlab run -m" not in "\n".join(lines)  # the header's example commands are not descriptions


def test_list_one_group(capsys) -> None:
    assert main(["list", "act"]) == 0
    assert list(listed_groups(capsys.readouterr().out)) == ["act"]


def test_usage_and_unknown_command(capsys) -> None:
    assert main([]) == 2 and "usage: initlab" in capsys.readouterr().out
    assert main(["--help"]) == 0 and "commands:" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'frobnicate'" in err and "run" in err


def test_list_names_for_scripts(capsys) -> None:
    """``--names``: one name a line (GROUP=NAME for several groups), never a word of a description."""
    assert main(["list", "--names", "experiment"]) == 0
    names = capsys.readouterr().out.split("\n")
    assert names[:-1] == group_options("experiment") and names[-1] == ""
    assert main(["list", "--names", "act", "optim"]) == 0
    assert capsys.readouterr().out.split() == [f"act={a}" for a in group_options("act")] + [
        "optim=adam",
        "optim=adamw",
        "optim=sgd",
    ]
    assert main(["list", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("initlab: error: unknown group 'nosuch': expected one of act,")


def test_every_option_has_a_description() -> None:
    """Every option of every group says what it is (its file's header comment); cnn names every image set."""
    from initlab.cli import _describe
    from initlab.lab.data import IMAGE_DATA

    bare = [
        f"{g}={o}"
        for g in groups()
        for o in group_options(g)
        if not _describe(config_dir() / g / f"{o}.yaml")
    ]
    assert bare == []
    assert all(name in _describe(config_dir() / "model" / "cnn.yaml") for name in IMAGE_DATA)


@pytest.mark.parametrize("value", ["/data/résumé", "/data/a[1]", "/data/my sets (old)", "/data/ü b"])
def test_an_unreadable_path_says_how_to_quote_it_and_the_advice_works(value: str, capsys) -> None:
    """Hydra's grammar stops at non-ASCII letters and at = , [ ] ( ): the one error line shows the argument
    quoted as Hydra reads it, and that argument, given to the shell, composes with the path unchanged."""
    import re
    import shlex

    from initlab.theory_cli import compose_config

    assert main(["theory", "data=mnist", f"data.root={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"initlab: error: data.root={value} ") and err.count("\n") == 1
    (example,) = re.findall(r"e\.g\. ('[^']+')", err)
    (argument,) = shlex.split(example)  # what the shell hands over
    assert compose_config(["data=mnist", argument]).data.root == value


def test_a_value_split_by_the_shell_says_to_quote_the_whole_argument(capsys) -> None:
    assert main(["theory", "data.root=/data/my", "sets"]) == 2
    err = capsys.readouterr().err
    assert "'sets' is not an override: expected key=value" in err and "quote the whole argument" in err


def test_a_preset_run_without_multirun_says_it_trains_one_configuration() -> None:
    from hydra import compose, initialize_config_dir

    from initlab.cli import single_run_note

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        preset = compose("config", ["experiment=dropout_quick"], return_hydra_config=True).hydra
        plain = compose("config", [], return_hydra_config=True).hydra
    note = single_run_note(preset)
    assert (
        note is not None and "sweeps model.depth, model.width, dropout_regime, seed (8 jobs with -m)" in note
    )
    assert "add -m" in note and single_run_note(plain) is None


def test_a_read_only_or_full_disk_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """`sweep-index` on a read-only sweep, a full disk: one line naming the file and what to do, exit 2."""
    import errno

    from initlab.cli import os_error_line
    from initlab.sweep import index

    def read_only(sweep_dir):
        raise OSError(
            errno.EROFS,
            f"Failed to open local file '{sweep_dir}/sweep.parquet.4242.tmp'. Detail: [errno 30] Read-only",
        )

    monkeypatch.setattr(index, "write_index", read_only)
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    assert main(["sweep-index", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"initlab: error: {tmp_path}/sweep.parquet: a read-only file system: write elsewhere "
        "(--out DIR, or copy the runs to a writable place)\n"
    )
    full = OSError(errno.ENOSPC, "No space left on device", "/data/run/layers.parquet")
    assert os_error_line(full) == (
        "/data/run/layers.parquet: the disk is full: free some space and run the command again "
        "(resume=true for a sweep)"
    )


def test_a_full_disk_during_a_run_is_one_line(tmp_path: Path, monkeypatch, capsys, tiny_overrides) -> None:
    """The run's error line names what happened and where the logs are; no traceback, no Hydra banner."""
    import errno

    from initlab.lab import train as training

    def full_disk(cfg, run, label=None):  # run: the job's RunWriter
        raise OSError(errno.ENOSPC, "No space left on device", str(run.path / "layers.parquet"))

    monkeypatch.setattr(training, "train", full_disk)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    run_dir = tmp_path / "run"
    assert main(["run", *tiny_overrides, f"hydra.run.dir={run_dir}"]) == 2
    assert capsys.readouterr().err == (
        f"initlab: error: {run_dir}/layers.parquet: the disk is full: free some space and run the command "
        f"again (resume=true for a sweep); what was logged is kept in {run_dir}\n"
    )
