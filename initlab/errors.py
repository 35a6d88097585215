"""The one kind of error that is the user's to fix.

Every :class:`UserError` -- a config value that is not allowed (:class:`initlab.config.ConfigError`), a data
set that cannot be read (:class:`initlab.lab.data.DataError`) -- is reported by the ``initlab`` command as one
line, ``initlab: error: <message>``, with exit status 2 and no traceback. The message names the bad value
and what is allowed.
"""

from __future__ import annotations

import re
import warnings
from typing import Any


class UserError(ValueError):
    """Bad input: the message names the value and what is allowed, in one line."""


class AbortRun(BaseException):  # noqa: N818  (not an error of the code: the reason a run stops)
    """A run refused before it starts, raised from inside Hydra (whose callbacks turn an ``Exception`` into a
    warning): ``initlab run`` prints the message as one ``initlab: error:`` line and exits with status 2."""


def hydra_error_line(exc: BaseException) -> str:
    """Hydra's composition error (unknown option or key, bad override) as one line.

    Hydra's message spans lines: "Could not find 'act/foo'", its "Available options in 'act':" list (one per
    line), the config search path (dropped here), and the OmegaConf cause. An override Hydra's grammar cannot
    read says how to quote it (:func:`quoting_advice`).
    """
    if (override := getattr(exc, "override", None)) is not None:  # hydra.errors.OverrideParseException
        return quoting_advice(override, str(exc).splitlines()[0])
    text = str(exc).split("Config search path:")[0]
    if exc.__cause__ is not None and str(exc.__cause__).strip():
        text += "\n" + str(exc.__cause__).strip().splitlines()[0]
    parts: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith(("full_key:", "object_type=", "See https://")):
            continue
        if _continues_options(line, parts):
            parts[-1] += ("" if parts[-1].endswith(":") else ",") + " " + line
        else:
            parts.append(line)
    if parts and (found := re.fullmatch(r"(?:In '[^']*': )?Could not find '(.+)/([^/']+)'", parts[0])):
        group, option = found.groups()  # an unknown group option: say it as the other bad values are said
        parts[0] = f"{group}={option} is not allowed: Could not find '{group}/{option}'"
    return "; ".join(p.rstrip(".") for p in parts)


def quoting_advice(override: str, reason: str) -> str:
    """One line for an override Hydra cannot parse: a shell word without ``=`` (a value with spaces split by
    the shell), or a value holding characters Hydra's grammar reserves or does not know (non-ASCII letters;
    ``= , [ ] { } ( ) ' "`` and leading or trailing spaces). Hydra reads a value quoted inside the argument
    as a plain string, so the shell must pass the quotes: ``'hydra.run.dir="/data/runs/é"'``."""
    if "=" not in override:
        return (
            f"{override!r} is not an override: expected key=value; if it is the rest of a value with spaces, "
            'quote the whole argument for the shell, e.g. "data.root=/data/my sets"'
        )
    key, value = override.split("=", 1)
    if reason.startswith("LexerNoViableAltException"):  # Hydra repeats the override and marks the spot
        reason = "a character Hydra's override grammar does not read"
    example = f"'{key}=\"{value}\"'" if "'" not in value and '"' not in value else f"'{key}=\"...\"'"
    return (
        f"{override} cannot be read ({reason.strip()}): quote the value inside the argument, e.g. {example} "
        "(needed for non-ASCII letters, spaces at either end and any of = , [ ] { } ( ) ' \")"
    )


def _continues_options(line: str, parts: list[str]) -> bool:
    """Whether ``line`` continues an "Available options in 'group':" list."""
    return bool(parts) and parts[-1].startswith("Available options") and " " not in line


def one_line_warnings() -> None:
    """Print warnings as ``initlab: warning: MESSAGE`` (Python's format adds the file, line and source)."""

    def format_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
        return f"initlab: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = format_warning  # type: ignore[assignment]
