"""Shared test helpers: a one-thread torch, and ``make_cfg`` to compose tiny configs from conf/.

``make_cfg("init=kaiming", "act=relu")`` composes the real Hydra config (the same files `initlab run`
reads) with the overrides given, on top of tiny defaults: 2 hidden layers of 16 units, 20 steps on a small
Gaussian data set (dropped when the overrides pick another ``data=``), no progress bar; ``model=cnn`` gets
4 channels instead of the width. Later overrides of
the same key win. ``make_cfg(..., tiny=False)`` starts from the plain defaults instead. The fixture
``tiny_overrides`` gives the same tiny settings as a list for ``initlab run`` on the command line.
"""

from __future__ import annotations

import copy
import functools
import os
import tempfile
from collections.abc import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from initlab.config import config_dir

# The run-directory contract (README, "The run directory").
METRICS_COLUMNS = ["step", "epoch", "split", "loss", "reg_loss", "accuracy", "lr"]
SUMMARY_KEYS = {
    "status",
    "steps_done",
    "diverged_at",
    "final_train_loss",
    "final_train_accuracy",
    "final_test_loss",
    "final_test_accuracy",
    "wall_seconds",
    "seed",
    "versions",
}

TINY_DATA = ("data=gaussian", "data.dim=16", "data.n_train=200", "data.n_test=100")
TINY_RUN = ("model.width=16", "model.depth=2", "train.steps=20", "train.progress=false")
TINY_CNN = ("model.channels=4", "model.depth=2", "train.steps=20", "train.progress=false")


def pytest_configure(config: pytest.Config) -> None:
    # With 2 threads on a busy 2-core machine, torch gets ~40x slower; tiny nets gain nothing from threads.
    torch.set_num_threads(1)
    # Generated data sets are cached in a directory of this test session, not the user's ~/.cache.
    os.environ["INITLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="initlab-test-cache-")


def compose_cfg(*overrides: str, tiny: bool = True) -> DictConfig:
    """The composed config ``conf/config.yaml`` + ``overrides`` (see the module docstring)."""
    given = list(overrides)
    if tiny:
        picks_data = any(o.startswith("data=") for o in given)
        tiny_run = TINY_CNN if "model=cnn" in given else TINY_RUN
        given = [*tiny_run, *(() if picks_data else TINY_DATA), *given]
    merged: dict[str, str] = {}  # key -> override; a later override of a key replaces the earlier one
    for override in given:
        merged[override.split("=", 1)[0]] = override
    return copy.deepcopy(_compose(tuple(merged.values())))  # a copy: tests may change their config


@functools.lru_cache(maxsize=256)
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    # Composing takes ~0.1 s; many tests compose the same config.
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """``make_cfg(*overrides, tiny=True)``: a composed config (see :func:`compose_cfg`)."""
    return compose_cfg


@pytest.fixture
def tiny_overrides() -> list[str]:
    """The tiny settings as command-line overrides, for ``initlab run`` in a subprocess."""
    return [*TINY_RUN, *TINY_DATA]
