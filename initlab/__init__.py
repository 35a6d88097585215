"""initlab: a command-line laboratory for initialization, normalization and regularization in training.

Python API: :func:`load_run` opens a run directory as a :class:`Run`, whose files read as pandas objects.
"""

from importlib.metadata import version

from initlab.runs import Run, RunData, load_run

__version__ = version("initlab")
__all__ = ["Run", "RunData", "load_run", "__version__"]
