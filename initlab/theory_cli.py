"""``initlab theory [overrides...]``: the mean-field prediction for a config, without training.

Composes the same config as ``initlab run`` (Hydra's compose API on ``conf/``, experiment presets included)
and prints, per layer, the fans, σ_w², σ_b² and the predicted step-0 variances of the pre-activations,
activations and gradients (:mod:`~initlab.theory`, fed by :mod:`initlab.lab.prediction`), then χ₁, ξ_q,
ξ_c, the phase and the trainable depth ≈ 6·ξ_c. Nothing is trained and no data is loaded: E[x²] = 1 after
initlab's standardization (plus the variance of ``data.augment.noise``) and the data set's dimensions come
from :data:`initlab.lab.data.SOURCES`.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from initlab.config import config_dir, validate
from initlab.errors import UserError, hydra_error_line
from initlab.theory.predict import prediction_frame

SCALARS = ("chi_1", "xi_q", "xi_c", "q_star", "c_star", "phase", "trainable_depth")


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``initlab run <overrides>`` would train (one-line UserError for a bad override)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(o.startswith("-") for o in overrides):
        raise UserError(f"{overrides[0]} is not allowed: expected key=value overrides (no Hydra flags)")
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:  # Hydra's parse and missing-option errors
        raise UserError(hydra_error_line(exc)) from None
    validate(cfg)
    from initlab.lab.models import check_model_data

    check_model_data(cfg)
    return cfg


def per_layer(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per layer: fans, σ_w², σ_b² and a column per predicted quantity (variance; act mean too)."""
    wide = frame.pivot(index="layer", columns="quantity", values="variance").add_suffix("_var")
    means = frame[frame.quantity == "act"].set_index("layer")["mean"].rename("act_mean")
    fans = frame.drop_duplicates("layer").set_index("layer")[["fan_in", "fan_out", "sigma_w2", "sigma_b2"]]
    cols = ["preact_var", "act_mean", "act_var", "grad_preact_var", "grad_weight_var"]
    return (
        fans.join(means)
        .join(wide)
        .reset_index()[["layer", "fan_in", "fan_out", "sigma_w2", "sigma_b2", *cols]]
    )


def _text(cfg: DictConfig, table: pd.DataFrame, scales: dict[str, Any]) -> str:
    lines = [
        f"mean-field prediction at step 0: act={cfg.act.name} init={cfg.init.name} "
        f"model.depth={cfg.model.depth} model.width={cfg.model.width} data={cfg.data.name}",
        "(layer depth+1 is the output layer: its act is the softmax, not predicted)",
        "",
        table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"),
        "",
        f"chi_1 = {scales['chi_1']:.4g}  (per-layer growth of the gradient variance going down)",
        f"xi_q = {scales['xi_q']:.4g}, xi_c = {scales['xi_c']:.4g} layers  (q* = {scales['q_star']:.4g}, "
        f"c* = {scales['c_star']:.4g})",
        f"phase: {scales['phase']}; trainable depth ~ 6*xi_c = {_depth(scales['trainable_depth'])} "
        f"(this net: {cfg.model.depth} hidden layers)",
    ]
    return "\n".join(lines)


def _depth(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:.0f}"


def main(argv: list[str]) -> int:
    """``initlab theory [--format text|csv] [overrides...]``."""
    from initlab.lab.data import SOURCES
    from initlab.lab.prediction import NoPrediction, predict

    parser = argparse.ArgumentParser(prog="initlab theory", description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="text", help="text (default) or csv (one row per layer)")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for `initlab run`")
    args = parser.parse_args(argv)
    if args.format not in ("text", "csv"):
        raise UserError(f"--format {args.format!r} is not allowed: expected text or csv")
    cfg = compose_config(args.overrides)
    n_in, n_out = SOURCES[cfg.data.name].shape(cfg.data)
    try:
        pred = predict(cfg, n_in, n_out)
    except NoPrediction as exc:
        raise UserError(f"no mean-field prediction: {exc}") from None
    table = per_layer(prediction_frame(pred))
    scales = pred.scales.as_dict()
    if args.format == "csv":
        for key in SCALARS:
            table[key] = scales[key]
        table.to_csv(sys.stdout, index=False)
    else:
        print(_text(cfg, table, scales))
    return 0
