"""Checks of a data set's arrays as read from disk, before anything trains.

A malformed file must not become a traceback in the middle of a run, a run that "diverges" on NaN pixels,
or labels silently truncated to integers: each check raises :class:`~initlab.lab.data.DataError` with one
line naming the file (or data set) and what is allowed.
"""

from __future__ import annotations

import numpy as np

from initlab.errors import UserError


class DataError(UserError):
    """A data set cannot be loaded (missing or malformed files); the message says what to do."""


def check_labels(y: np.ndarray, n_classes: int, where: str) -> None:
    """Integer labels in 0..n_classes-1 (a float or string label is refused, never truncated)."""
    allowed = f"integers 0..{n_classes - 1}"
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels of type {y.dtype} are not allowed: expected {allowed}")
    bad = np.unique(y[(y < 0) | (y >= n_classes)])
    if len(bad):
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise DataError(f"{where}: labels {shown} are outside the classes: expected {allowed}")


def check_inputs(x: np.ndarray, where: str) -> None:
    """Numbers, all finite."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: values of type {x.dtype} are not allowed: expected numbers (pixels)")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise DataError(f"{where}: {bad} values are NaN or infinite: expected finite numbers")


def check_split(x: np.ndarray, y: np.ndarray, n_classes: int, where: str, split: str) -> None:
    """One split: at least one example, numeric finite inputs, labels in range."""
    if len(y) == 0 or len(x) == 0:
        raise DataError(f"{where}: the {split} split holds no examples: expected at least one")
    check_inputs(x, f"{where}, {split} split")
    check_labels(y, n_classes, f"{where}, {split} split")


def check_arrays(arrays: tuple[np.ndarray, ...], n_classes: int, where: str) -> None:
    """Both splits of a loader's ``(x_train, y_train, x_test, y_test)``, and inputs of one size."""
    x_tr, y_tr, x_te, y_te = arrays
    check_split(x_tr, y_tr, n_classes, where, "training")
    check_split(x_te, y_te, n_classes, where, "test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{where}: training inputs of shape {x_tr.shape[1:]} and test inputs of shape {x_te.shape[1:]}: "
            "expected one size for both"
        )
