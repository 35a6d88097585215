"""Where the configs live, and the checks a composed config must pass before anything runs.

Hydra already refuses unknown group options (``init=foo`` prints its "Available options" list); this
module checks the values inside the groups. Each rule is one line of a table: the key, a predicate and the
allowed values in words, so a bad value gives one clear line such as
``model.depth=0 is not allowed: expected an integer >= 1``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.errors import UserError

# What a job of ``initlab run`` may return to a sweeper (:mod:`initlab.sweep.objective`): a number of
# ``summary.json`` and the direction to optimize it in.
OBJECTIVE_METRICS = ("final_test_accuracy", "final_test_loss", "final_train_accuracy", "final_train_loss")
OBJECTIVE_DIRECTIONS = ("maximize", "minimize")


class ConfigError(UserError):
    """A config value that is not allowed; the message names the value and what is allowed."""


def config_dir() -> Path:
    """The ``conf/`` directory (shipped inside the wheel as the package ``initlab.conf``)."""
    return Path(str(files("initlab.conf")))


def group_options(group: str) -> list[str]:
    """The options of a config group, read from ``conf/<group>/*.yaml``."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def groups() -> list[str]:
    """Every config group (a sub-directory of ``conf/`` holding YAML files)."""
    return sorted(p.name for p in config_dir().iterdir() if p.is_dir() and any(p.glob("*.yaml")))


def _int(lo: int, hi: int | None = None) -> Callable[[Any], bool]:
    """An integer in [lo, hi] (no upper bound when ``hi`` is None); true and false are not integers."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)


def _num(
    lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = True
) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:  # inf and nan are never allowed: no setting means "without limit" by inf
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        above = v > lo if lo_open else v >= lo
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    return ok


def _one_of(*allowed: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in allowed), "one of " + ", ".join(map(str, allowed))


def _bool() -> tuple[Callable[[Any], bool], str]:
    """true or false, not 1 or 0 (which compare equal to True and False)."""
    return (lambda v: isinstance(v, bool)), "true or false"


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _pair(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, Sequence) and len(v) == 2 and all(check(x) for x in v)


@functools.cache
def group_names(group: str) -> tuple[str, ...]:
    """The ``name`` values that the files ``conf/<group>/*.yaml`` set, sorted: the registry keys of that
    group in :mod:`initlab.lab` (a parity test keeps the two equal). Files that only refine another option
    through their defaults list (``kaiming_normal.yaml``) set no name of their own."""
    names = {OmegaConf.load(path).get("name") for path in (config_dir() / group).glob("*.yaml")}
    return tuple(sorted(str(name) for name in names if name is not None))


def _registry(group: str) -> tuple[Callable[[Any], bool], str]:
    """Allowed values of ``<group>.name``: the names of :func:`group_names`."""
    names = group_names(group)
    return (lambda v: v in names), "one of " + ", ".join(names)


# Upper bounds where a larger value only exhausts the machine: a histogram of 10^6 bins per layer and probe
# step took 3.7 GB; 1000 torch threads made 20 steps take 74 s. Seeds are what torch.manual_seed takes.
MAX_BINS = 10_000
MAX_POINTS = 100_000
MAX_THREADS = 4 * (os.cpu_count() or 1)
MAX_SEED = 2**64 - 1

# (key, predicate, allowed values in words); keys that are absent from the config are skipped.
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("seed", _int(0, MAX_SEED), "an integer >= 0 and < 2^64"),
    ("resume", *_bool()),
    ("device", *_one_of("cpu", "cuda", "auto")),
    ("model.depth", _int(1), "an integer >= 1"),
    ("model.width", _int(1), "an integer >= 1"),
    ("model.channels", _int(1), "an integer >= 1"),
    ("model.padding", *_one_of("zeros", "circular", "reflect", "replicate")),
    ("model.norm", *_one_of("none", "batch", "layer")),
    ("model.norm_position", *_one_of("before", "after")),
    ("model.bias", *_bool()),
    ("model.bn_momentum", _num(0, 1, hi_open=False), "a number in [0, 1]"),
    ("model.bn_eps", _num(0, lo_open=True), "a number > 0"),
    ("model.dropout", _num(0, 1), "a probability in [0, 1)"),
    ("model.input_dropout", _num(0, 1), "a probability in [0, 1)"),
    ("init.distribution", *_one_of("uniform", "normal")),
    ("init.mode", *_one_of("fan_in", "fan_out")),
    ("init.std", _num(0, lo_open=True), "a number > 0"),
    ("init.gain", _optional(_num(0, lo_open=True)), "null or a number > 0"),
    ("init.value", _num(float("-inf")), "a number"),
    ("init.bias", _num(float("-inf")), "a number"),
    ("init.tol", _num(0, lo_open=True), "a number > 0"),
    ("init.max_iter", _int(1), "an integer >= 1"),
    ("init.sigma_w2", _num(0), "a number >= 0"),
    ("init.sigma_b2", _num(0), "a number >= 0"),
    ("init.batch_size", _int(2), "an integer >= 2"),
    ("act.negative_slope", _num(0), "a number >= 0"),
    ("act.init", _num(float("-inf")), "a number"),
    ("data.n_train", _optional(_int(1)), "null or an integer >= 1"),
    ("data.n_test", _optional(_int(1)), "null or an integer >= 1"),
    ("data.test_fraction", _num(0, 1, lo_open=True), "a number in (0, 1)"),
    ("data.dim", _int(1), "an integer >= 1"),
    ("data.n_classes", _int(2), "an integer >= 2"),
    ("data.augment.noise", _num(0), "a number >= 0"),
    ("data.augment.rotate", _num(0, 180, hi_open=False), "a number of degrees in [0, 180]"),
    ("data.augment.shift", _num(0), "a number of pixels >= 0"),
    ("optim.lr", _num(0, lo_open=True), "a number > 0"),
    ("optim.momentum", _num(0, 1), "a number in [0, 1)"),
    ("optim.nesterov", *_bool()),
    ("optim.betas", _pair(_num(0, 1)), "a list of two numbers in [0, 1)"),
    ("optim.weight_decay", _num(0), "a number >= 0"),
    ("train.steps", _int(0), "an integer >= 0"),
    ("train.batch_size", _int(1), "an integer >= 1"),
    ("train.eval_every", _int(1), "an integer >= 1"),
    ("train.eval_examples", _optional(_int(1)), "null or an integer >= 1"),
    (
        "train.threads",
        lambda v: v == "auto" or _int(1, MAX_THREADS)(v),
        f"auto or an integer >= 1 and <= {MAX_THREADS} (4 per core)",
    ),
    ("train.save_model", *_bool()),
    ("train.mc_masks", _int(0), "an integer >= 0 (0: off)"),
    ("reg.l2", _num(0), "a number >= 0"),
    ("reg.l1", _num(0), "a number >= 0"),
    ("reg.entropy", _num(0), "a number >= 0"),
    ("reg.max_norm", _optional(_num(0, lo_open=True)), "null or a number > 0"),
    ("probe.schedule", *_one_of("log", "every", "list")),
    ("probe.points", _int(1, MAX_POINTS), f"an integer >= 1 and <= {MAX_POINTS}"),
    ("probe.every", _int(1), "an integer >= 1"),
    ("probe.bins", _int(2, MAX_BINS), f"an integer >= 2 and <= {MAX_BINS}"),
    ("probe.fixed_batch", _int(0), "an integer >= 0 (0: probe the training batch)"),
    (
        "probe.steps",
        lambda v: isinstance(v, Sequence) and not isinstance(v, str) and all(map(_int(0), v)),
        "a list of integers >= 0, e.g. [0,100,1000]",
    ),
    ("probe.jacobian", *_bool()),
    ("probe.unit_distance", *_bool()),
    ("probe.jacobian_examples", _int(1), "an integer >= 1"),
    ("objective.metric", *_one_of(*OBJECTIVE_METRICS)),
    ("objective.direction", *_one_of(*OBJECTIVE_DIRECTIONS)),
]
REGISTRY_KEYS = ("init", "act", "model", "data", "optim")


def _check_cnn(cfg: DictConfig) -> None:
    """``model=cnn`` has no layer norm (that it needs image data is the training stage's check:
    :func:`initlab.lab.models.check_model_data`)."""
    if OmegaConf.select(cfg, "model.name") != "cnn":
        return
    if OmegaConf.select(cfg, "model.norm") not in (None, "none", "batch"):
        raise ConfigError(
            f"model.norm={OmegaConf.select(cfg, 'model.norm')} is not allowed with model=cnn: "
            "expected none or batch"
        )


def _check_mc_masks(cfg: DictConfig) -> None:
    """``train.mc_masks=K > 0`` averages over dropout masks: a net without dropout has only one mask."""
    masks = OmegaConf.select(cfg, "train.mc_masks")
    if not masks or OmegaConf.select(cfg, "model") is None:
        return
    rates = {key: OmegaConf.select(cfg, key, default=0) for key in ("model.dropout", "model.input_dropout")}
    if not any(rates.values()):
        raise ConfigError(
            f"train.mc_masks={masks} is not allowed with "
            + " and ".join(f"{k}={v}" for k, v in rates.items())
            + ": expected train.mc_masks=0 or a dropout rate > 0"
        )


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value that is not allowed.

    Nothing here imports torch or the training stage: ``model.depth=0`` or ``init.name=foo`` is refused
    before torch is even imported. The allowed names of the registry groups come from ``conf/<group>/*.yaml``
    (:func:`group_names`), not from the registries themselves.
    """
    for key, ok, allowed in RULES:
        sentinel = object()
        value = OmegaConf.select(cfg, key, default=sentinel)
        if value is not sentinel and not ok(value):
            raise ConfigError(f"{key}={value} is not allowed: expected {allowed}")
    for group in REGISTRY_KEYS:
        if OmegaConf.select(cfg, group) is None:  # a partial config (initlab.probe's probe settings)
            continue
        ok, allowed = _registry(group)
        value = OmegaConf.select(cfg, f"{group}.name")
        if not ok(value):
            raise ConfigError(f"{group}.name={value} is not allowed: expected {allowed}")
    if OmegaConf.select(cfg, "optim.nesterov") and not OmegaConf.select(cfg, "optim.momentum"):
        raise ConfigError("optim.nesterov=true is not allowed with optim.momentum=0: expected a momentum > 0")
    if OmegaConf.select(cfg, "model.norm") == "batch" and OmegaConf.select(cfg, "train.batch_size") == 1:
        raise ConfigError(  # batch statistics of one example: torch refuses the first step
            "model.norm=batch is not allowed with train.batch_size=1: expected train.batch_size >= 2"
        )
    _check_mc_masks(cfg)
    data = OmegaConf.select(cfg, "data.name")
    _check_cnn(cfg)
    for key in ("data.n_train", "data.n_test"):  # only digits and mnist can mean "all of them" by null
        if data in ("gaussian", "shapeset") and OmegaConf.select(cfg, key) is None:
            raise ConfigError(f"{key}=null is not allowed with data={data}: expected an integer >= 1")
    _check_probe(cfg)


def _check_probe(cfg: DictConfig) -> None:
    """Listed probe steps a run reaches; the Jacobian probe needs linear layers."""
    steps, total = OmegaConf.select(cfg, "probe.steps"), OmegaConf.select(cfg, "train.steps")
    listed = OmegaConf.select(cfg, "probe.schedule") == "list" and OmegaConf.select(
        cfg, "probe.enabled", default=True
    )
    if listed and steps is not None and total is not None and any(s > total for s in steps):
        raise ConfigError(
            f"probe.steps={list(steps)} is not allowed with train.steps={total}: expected steps <= {total} "
            "(a step the run never reaches is never probed)"
        )
    if OmegaConf.select(cfg, "probe.jacobian") and OmegaConf.select(cfg, "model.name") == "cnn":
        raise ConfigError(
            "probe.jacobian=true is not allowed with model=cnn: expected model=mlp (the Jacobian probe "
            "decomposes the matrices of linear layers)"
        )
