"""initlab: a command-line laboratory for initialization, normalization and regularization in training.

Python API: :func:`load_run` opens a run directory as a :class:`Run`, whose files read as pandas objects;
:func:`probe` attaches the probes to any ``nn.Module`` in your own training loop and writes a run directory.
"""

from importlib.metadata import version
from typing import Any

from initlab.runs import Run, RunData, load_run

__version__ = version("initlab")
__all__ = ["Run", "RunData", "load_run", "probe", "__version__"]


def __getattr__(name: str) -> Any:
    """``initlab.probe`` is imported on first use, so that ``initlab plot`` never loads torch."""
    if name == "probe":
        from initlab.probe_api import probe

        return probe
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
