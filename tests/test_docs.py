"""The documentation cannot drift: the shell commands of README.md and docs/*.md run (shortened where they
train), every relative link and image of the README exists, the gallery page is what scripts/gallery.py
writes, and the configuration reference lists what ``initlab list`` lists."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from initlab.cli import cmd_list
from initlab.config import group_options, groups

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Commands that are not run here (a regular expression on the command line -> why).
NOT_RUN: dict[str, str] = {
    r"^python3 -m venv|^pip install": "installs packages: .ci/run runs the install in a fresh environment",
    r"^ruff |^pytest": "the test suite itself",
    r"submitit_slurm": "needs a SLURM cluster",
    r"scripts/reproduce\.sh": "trains a whole preset for minutes; the claim tests run every quick preset",
    r"^initlab check outputs/reproduce/": "needs the sweep that scripts/reproduce.sh trains",
    r"^tensorboard ": "starts a server",
    r"install=fish": "fish syntax",
    r"^mkdocs ": "builds the site: .ci/run runs mkdocs build --strict",
    r"python docs/notebook\.py": "tests/test_api.py runs it",
    r"^python scripts/bench": "benchmarks of minutes",
    r"^python scripts/gallery\.py": "needs the full sweeps (--page: the gallery test below checks the page)",
}

# `initlab run` trains 20 updates, probes 4 steps, evaluates on 200 examples; Optuna tries 2 learning rates;
# `initlab doctor` trains 30 updates.
WRAPPER = r"""
initlab() {
  if [ "$1" = run ] && [[ " $* " != *" --help "* && " $* " != *" -sc "* && " $* " != *" --cfg "* ]]; then
    local extra=(train.steps=20 train.eval_every=10 train.eval_examples=200 probe.points=4)
    extra+=(train.progress=false)
    [[ " $* " == *"hparams_search="* || " $* " == *"sweeper=optuna"* ]] && extra+=(hydra.sweeper.n_trials=2)
    command initlab "$@" "${extra[@]}"
  elif [ "$1" = doctor ] && [[ " $* " != *" --steps "* ]]; then
    command initlab "$@" --steps 30
  else
    command initlab "$@"
  fi
}
export -f initlab
"""


def bash_commands(page: Path) -> list[str]:
    """The commands of a page's fenced ``bash`` blocks: one per line (``\\`` continues it), comments out."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+# .*$", "", line).strip()  # a trailing comment is not part of the command
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def skipped(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, command)), None)


def test_every_page_has_commands_that_run_or_a_reason_not_to() -> None:
    commands = {page.name: bash_commands(page) for page in PAGES}
    assert len(commands["README.md"]) >= 6, commands["README.md"]
    install = commands["README.md"][0]
    assert install.startswith("python3 -m venv") and skipped(install), install
    ran = [c for cs in commands.values() for c in cs if not skipped(c)]
    assert any(c.startswith("initlab run -m") for c in ran) and any(c.startswith("initlab plot") for c in ran)


@pytest.mark.slow
def test_the_commands_of_the_pages_run(tmp_path: Path) -> None:
    """Every command of the README, then of each page, in order, in one fresh directory that has the
    repository's scripts/ and docs/ (a command repeated on a later page runs once); each must exit 0."""
    for name in ("scripts", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    done_before: set[str] = set()
    for page in PAGES:
        for command in bash_commands(page):
            if skipped(command) or command in done_before:
                continue
            done_before.add(command)
            done = subprocess.run(
                ["bash", "-c", WRAPPER + command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            # initlab doctor exits 1 when it has findings: a result, like a linter's
            allowed = (0, 1) if command.startswith("initlab doctor") else (0,)
            assert "Traceback" not in done.stderr, f"{page.name}: `{command}`:\n{done.stderr[-2000:]}"
            assert done.returncode in allowed, (
                f"{page.name}: `{command}` exited {done.returncode}:\n{done.stderr[-2000:]}"
            )


# Outputs quoted on a page: (page, command, what the page quotes from its output)
QUOTED: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "README.md",
        "initlab theory init=xavier act=relu model.depth=30 data=digits",
        ("chi_1 = 0.5", "phase: ordered; trainable depth ~ 6*xi_c = 9 (this net: 30 hidden layers)"),
    ),
    (
        "README.md",
        "initlab theory init=kaiming act=relu model.depth=30 data=digits",
        ("chi_1 = 1", "phase: critical"),
    ),
    (
        "theory.md",
        "initlab theory act=tanh init=meanfield init.sigma_w2=1.3 model.depth=50",
        (
            "chi_1 = 0.8802",
            "xi_c = 7.834 layers",
            "phase: ordered; trainable depth ~ 6*xi_c = 47 (this net: 50",
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("page, command, quotes", QUOTED, ids=[f"{q[0]}:{q[1][8:30]}" for q in QUOTED])
def test_what_a_page_quotes_is_what_the_command_prints(
    page: str, command: str, quotes: tuple[str, ...]
) -> None:
    text = " ".join(next(p for p in PAGES if p.name == page).read_text().split())
    printed = subprocess.run(command.split(), capture_output=True, text=True, timeout=120).stdout
    for quote in quotes:
        assert quote in text, f"{page} no longer quotes {quote!r}"
        assert quote in printed, f"`{command}` no longer prints {quote!r}:\n{printed[-1500:]}"


def _links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # not inside code blocks
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


def test_every_relative_link_and_image_of_the_readme_exists() -> None:
    links = _links(ROOT / "README.md")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert images and all(image.startswith("docs/figures/") for image in images), images
    relative = [link for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    assert len(relative) >= 15, relative
    missing = [link for link in relative if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, missing


def test_every_image_of_the_docs_exists() -> None:
    for page in PAGES[1:]:
        for link in _links(page):
            if link.endswith((".png", ".svg", ".pdf")) and not re.match(r"[a-z]+:", link):
                assert (page.parent / link).exists(), f"{page.name}: {link}"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_the_gallery_page_is_what_gallery_py_writes() -> None:
    gallery = _module(ROOT / "scripts" / "gallery.py")
    assert (ROOT / "docs" / "gallery.md").read_text() == gallery.page(), (
        "run: python scripts/gallery.py --page"
    )
    files = {f"{e.preset}/{f.file}" for e in gallery.GALLERY for f in e.figures}
    on_disk = {
        str(p.relative_to(ROOT / "docs" / "figures")) for p in (ROOT / "docs" / "figures").rglob("*.*")
    }
    assert files <= on_disk and {p for p in on_disk if not p.endswith(".csv")} <= files, on_disk ^ files
    fig9 = next(e for e in gallery.GALLERY if e.preset == "dropout_retention").figures[0]
    assert gallery.plot_command("dropout_retention", fig9) == (
        "initlab plot outputs/reproduce/dropout_retention --figures curves --logy"
    )


def test_the_configuration_reference_lists_what_initlab_list_lists(capsys: pytest.CaptureFixture) -> None:
    reference = _module(ROOT / "docs" / "hooks.py").config_reference()
    cmd_list([])
    listed = capsys.readouterr().out
    for group in groups():
        assert f"## `{group}`" in reference
        for option in group_options(group):
            assert re.search(rf"^  {option}\b", listed, flags=re.M), option
            assert f"`{group}={option}`" in reference or f"| `{option}` |" in reference, option
    assert "Scheme `kaiming`: He et al. 2015: Var[W] = gain²/fan" in reference
    assert "| `model.depth` | an integer >= 1 |" in reference


@pytest.mark.slow
def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]'")
    done = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "search").is_dir()
