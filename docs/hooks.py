"""MkDocs hooks: the configuration reference is generated at build time from ``conf/`` and the registries;
the Sphinx roles of the docstrings (``:func:`run```) read as plain code in the API reference.

A page holding the line ``<!-- config-reference -->`` gets, in its place, every config group with each
option's description (the header comment that ``initlab list`` prints, read by the same function), its YAML
file as shipped, the formula of each initialization scheme (the docstring of its row in
:data:`initlab.lab.inits.INITS`), and the value rules of :data:`initlab.config.RULES`. So the reference
cannot disagree with ``initlab list`` or with what ``initlab run`` accepts.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from initlab.cli import _describe
from initlab.config import RULES, config_dir, group_options, groups

MARKER = "<!-- config-reference -->"
# a Sphinx role before a code span, as mkdocstrings renders it: ":func:<code>~initlab.x</code>"
ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):(<code>)~?")
# groups whose option files are long presets: listed with their description only
LISTED_ONLY = ("experiment", "hparams_search")


def _yaml(path: Path) -> str:
    return f"```yaml\n{path.read_text().rstrip()}\n```\n"


def _init_formula(option: Path) -> str:
    """The docstring of the scheme an ``init`` option names: its formula and paper."""
    from initlab.lab.inits import INITS

    name = _name(option)
    doc = inspect.getdoc(INITS[name].fill) if INITS[name].fill is not None else None
    return f"Scheme `{name}`: {doc}\n" if doc else ""


def _name(option: Path) -> str:
    """An option's ``name``, or that of the option its defaults list extends (``xavier_normal``: xavier)."""
    cfg = OmegaConf.load(option)
    if "name" in cfg:
        return str(cfg.name)
    base = next(entry for entry in cfg.defaults if isinstance(entry, str) and entry != "_self_")
    return _name(option.parent / f"{base}.yaml")


# group -> extra text for one option file (a registry row's facts)
EXTRAS: dict[str, Callable[[Path], str]] = {"init": _init_formula}


def _group(group: str) -> list[str]:
    lines = [f"## `{group}`\n"]
    if group in LISTED_ONLY:
        lines += ["| option | what |", "|---|---|"]
        for option in group_options(group):
            lines.append(f"| `{option}` | {_describe(config_dir() / group / f'{option}.yaml')} |")
        return lines + [""]
    for option in group_options(group):
        path = config_dir() / group / f"{option}.yaml"
        lines += [f"### `{group}={option}`\n", _describe(path) + "\n"]
        extra = EXTRAS.get(group)
        if extra:
            lines.append(extra(path))
        lines.append(_yaml(path))
    return lines


def _launchers() -> list[str]:
    lines = ["## `hydra/launcher`\n", "Launchers for `initlab run -m` ([Sweeps](sweeps.md)).\n"]
    for path in sorted((config_dir() / "hydra" / "launcher").glob("*.yaml")):
        lines += [f"### `hydra/launcher={path.stem}`\n", _yaml(path)]
    return lines


def _rules() -> list[str]:
    lines = [
        "## Allowed values\n",
        "Checked before anything is trained; any other value stops `initlab run` with one line naming it "
        "and exit status 2.\n",
        "| key | allowed |",
        "|---|---|",
    ]
    lines += [f"| `{key}` | {allowed} |" for key, _, allowed in RULES]
    return lines + [""]


def config_reference() -> str:
    """The generated Markdown of the configuration reference."""
    lines = ["## Top level: `conf/config.yaml`\n", _yaml(config_dir() / "config.yaml")]
    for group in groups():
        lines += _group(group)
    lines += _launchers() + _rules()
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return markdown.replace(MARKER, config_reference()) if MARKER in markdown else markdown


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(r"\1", html)
