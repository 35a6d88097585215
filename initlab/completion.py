"""Shell completion for ``initlab``: Hydra's completion of ``initlab run`` overrides, plus command names.

Hydra's completion plugins (bash, zsh through bash, fish) print a shell script that, on every <TAB>, calls
``<program> -sc query=<shell>`` with the line typed so far in ``$COMP_LINE``. ``initlab`` is a program
with sub-commands, so this module sits in front of Hydra:

* ``initlab -sc install=bash`` (or ``initlab run -sc install=bash``) prints Hydra's script, registered
  for the command ``initlab``;
* ``initlab -sc query=bash`` answers one <TAB>: on ``initlab ru`` the command names that fit (``run``);
  on ``initlab run ...`` Hydra's own answer for the line without ``run`` (``ini`` -> ``init=``,
  ``init=kai`` -> ``init=kaiming``); after any other command nothing, so the shell completes file names.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable

from initlab.errors import UserError

FLAGS = ("-sc", "--shell-completion")
ACTIONS = ("install", "uninstall", "query")
SHELLS = ("bash", "zsh", "fish")  # Hydra's completion plugins (zsh uses the bash script)
PROGRAM = "initlab"
# The program's name at the start of $COMP_LINE: `initlab`, `/path/to/initlab`, `python -m initlab`.
_PROGRAM_RE = re.compile(r"^\s*(?:\S*python[0-9.]*\s+-m\s+initlab|\S*initlab)(?:\s+|$)")


def requested(argv: list[str]) -> bool:
    """Whether ``argv`` asks for shell completion (``-sc X`` or ``--shell-completion X``)."""
    return any(a in FLAGS or a.startswith("--shell-completion=") for a in argv)


def _request(argv: list[str]) -> str:
    """The ``install=bash``-like value of the completion flag in ``argv`` ('' if there is none)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--shell-completion="):
            return arg.split("=", 1)[1]
        if arg in FLAGS:
            return argv[i + 1] if i + 1 < len(argv) else ""
    return ""


def split_line(line: str) -> tuple[str, str]:
    """``"initlab run init=kai"`` -> ``("run", "init=kai")``: the command word and the text after it.

    Text that is still being typed as the command (``"initlab ru"``) is the command word, with no rest.
    """
    match = _PROGRAM_RE.match(line)
    rest = line[match.end() :] if match else line
    command, sep, tail = rest.partition(" ")
    return command, (tail if sep else "")


def complete_commands(word: str, commands: Iterable[str]) -> list[str]:
    return [name for name in commands if name.startswith(word)]


def _hydra(argv: list[str]) -> int:
    """Run Hydra's command line with ``argv`` under the program name ``initlab``."""
    import hydra

    from initlab.config import config_dir
    from initlab.sweep.callback import silence_launcher_schema_warning

    silence_launcher_schema_warning()

    def task(cfg: object) -> None:  # never runs: Hydra answers -sc before it runs a job
        raise AssertionError("shell completion ran a job")

    app = hydra.main(version_base=None, config_path=str(config_dir()), config_name="config")(task)
    saved = sys.argv
    sys.argv = [PROGRAM, *argv]  # Hydra registers the completion for basename(sys.argv[0])
    try:
        app()
    finally:
        sys.argv = saved
    return 0


def main(argv: list[str], commands: Iterable[str]) -> int:
    """Answer ``initlab [run] -sc install|uninstall|query=SHELL`` (see the module docstring)."""
    request = _request(argv)
    action, _, shell = request.partition("=")
    if action not in ACTIONS or shell not in SHELLS:
        raise UserError(
            f"shell completion {request!r} is not allowed: expected ACTION=SHELL with ACTION one of "
            f"{', '.join(ACTIONS)} and SHELL one of {', '.join(SHELLS)} (e.g. install=bash)"
        )
    if action != "query":
        return _hydra(["-sc", request])  # install/uninstall (and Hydra's own message for bad values)
    line = os.environ.get("COMP_LINE", "")
    point = os.environ.get("COMP_POINT", "")
    if point.isdigit():
        line = line[: int(point)]  # complete the word at the cursor, not the end of the line
    command, rest = split_line(line)
    if not rest and not line.endswith(" ") or not command and not rest:
        separator = "\n" if shell == "fish" else " "
        print(separator.join(complete_commands(command, commands)))
        return 0
    if command != "run":
        print("")  # nothing: the shell falls back to file names (`initlab plot outputs/<TAB>`)
        return 0
    os.environ["COMP_LINE"] = f"{PROGRAM} {rest}"
    os.environ.pop("COMP_POINT", None)
    return _hydra(["-sc", request])
