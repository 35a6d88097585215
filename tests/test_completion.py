"""``initlab --version`` and shell completion: the query Hydra's completion script sends on <TAB>."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from initlab import completion
from initlab.cli import COMMANDS, main


def query(line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shell="bash"):
    """What ``initlab -sc query=SHELL`` answers with the cursor at the end of ``line``."""
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    capsys.readouterr()
    assert main(["-sc", f"query={shell}"]) == 0
    return capsys.readouterr().out.split()


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    first = capsys.readouterr().out.split()
    assert first[:2] == ["initlab", version("initlab")]
    assert main(["run", "--version"]) == 0  # not Hydra's version
    assert capsys.readouterr().out.split()[:2] == ["initlab", version("initlab")]


def test_split_line_finds_the_command_word() -> None:
    assert completion.split_line("initlab run init=kai") == ("run", "init=kai")
    assert completion.split_line("/venv/bin/initlab ru") == ("ru", "")
    assert completion.split_line("python -m initlab run -m a=1 ") == ("run", "-m a=1 ")


def test_query_completes_commands_groups_and_options(monkeypatch, capsys) -> None:
    assert query("initlab ", monkeypatch, capsys) == list(COMMANDS)
    assert query("initlab sw", monkeypatch, capsys) == ["sweep-index"]
    assert "init=" in query("initlab run ini", monkeypatch, capsys)
    assert query("initlab run init=kai", monkeypatch, capsys) == [
        "init=kaiming",
        "init=kaiming_normal",
        "init=kaiming_uniform",
    ]
    assert query("initlab run -m init=xavier act=rel", monkeypatch, capsys) == ["act=relu"]
    assert "model.depth=" in query("initlab run model.de", monkeypatch, capsys)
    assert query("initlab plot out", monkeypatch, capsys) == []  # the shell completes file names
    # the cursor in the middle of the line: the word before it is completed
    monkeypatch.setenv("COMP_LINE", "initlab run act=s seed=1")
    monkeypatch.setenv("COMP_POINT", str(len("initlab run act=s")))
    capsys.readouterr()
    main(["-sc", "query=fish"])
    assert capsys.readouterr().out.split("\n")[:4] == ["act=selu", "act=sigmoid", "act=silu", "act=softsign"]


def test_install_registers_the_initlab_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-sc", "install=bash"], ["run", "--shell-completion", "install=bash"]):
        assert main(argv) == 0
        script = capsys.readouterr().out
        assert script.rstrip().endswith("-F hydra_bash_completion initlab")
        assert "$helper -sc query=bash" in script


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_after_eval_of_the_installed_script(tmp_path: Path) -> None:
    """As the README says: `eval "$(initlab -sc install=bash)"`, then <TAB> (bash's completion variables)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "initlab").exists():
        pytest.skip("the initlab script is not installed next to the interpreter")
    script = r"""
eval "$(initlab -sc install=bash)"
tab() { COMP_LINE="$1"; COMP_POINT=${#1}; read -ra COMP_WORDS <<< "$1"; COMP_CWORD=$((${#COMP_WORDS[@]}-1));
        hydra_bash_completion; echo "${COMPREPLY[*]}"; }
tab "initlab run ini"
tab "initlab run init=kai"
"""
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "init=" in lines[0].split()
    assert lines[1].split() == ["init=kaiming", "init=kaiming_normal", "init=kaiming_uniform"]


def test_a_bad_completion_request_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-sc", "install=tcsh"], ["-sc", "foo"], ["run", "-sc", "query"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "expected ACTION=SHELL" in err[0] and "bash, zsh, fish" in err[0], err
