"""initlab: a command-line laboratory for initialization, normalization and regularization in training.

Python API: :func:`load_run` reads a run directory back as pandas objects.
"""

from initlab.storage import RunData, load_run

__version__ = "0.1.0"
__all__ = ["RunData", "load_run", "__version__"]
