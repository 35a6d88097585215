"""A run's config handed to mean-field theory: the numbers :mod:`initlab.theory.predict` needs, from the rows.

The theory takes one :class:`~initlab.theory.predict.LayerSpec` per weight layer and φ as a torch module
(:class:`~initlab.theory.meanfield.Activation`). For the config's MLP with widths n_0 → n_1 … → n_(L+1):

* σ_w,l² = n_in·Var[W^l] from the init scheme's row (:attr:`~initlab.lab.inits.Scheme.sigma_w2`), with the
  gain that scheme gives the layer (:func:`~initlab.lab.inits.layer_gain`; the output layer's is the linear
  gain 1): e.g. Xavier σ_w² = g²·2·n_in/(n_in + n_out) (Glorot & Bengio 2010, Eq. 16), Kaiming fan_in g²
  (He et al. 2015, Eq. 10);
* (σ_b,l², b̄_l) from the scheme's :attr:`~initlab.lab.inits.Scheme.bias_moments` (0 and ``init.bias`` for
  a constant bias; none at all with ``model.bias=false``);
* the dropout factor 1/(1−p) of the layer's input (``model.input_dropout`` below layer 1, ``model.dropout``
  above);
* φ: the run's own activation module (:data:`~initlab.lab.models.ACTIVATIONS`).

Schemes whose row has no σ_w² (``constant``: weights of nonzero mean; ``lsuv``: rescaled on data), models
other than the MLP and normalization layers are outside the theory (:class:`NoPrediction`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from initlab.lab.data import Dataset
from initlab.lab.inits import INITS, layer_gain
from initlab.lab.models import make_activation
from initlab.runs.write import THEORY_FILE
from initlab.theory.meanfield import Activation
from initlab.theory.predict import LayerSpec, NetPrediction, prediction_frame, summary_fields


class NoPrediction(ValueError):
    """The mean-field prediction does not apply to this config (the message says why)."""


def activation(act: DictConfig | dict[str, Any]) -> Activation:
    """φ of an ``act`` config (the run's own torch module) for the mean-field maps."""
    return Activation(make_activation(OmegaConf.create(dict(act))))


def not_applicable(cfg: DictConfig) -> str | None:
    """Why the theory does not apply to a config, or None when it does."""
    if cfg.model.name != "mlp":
        return f"model={cfg.model.name}: the prediction covers fully-connected nets (mlp) only"
    if cfg.model.get("norm", "none") != "none":
        return f"model.norm={cfg.model.norm}: normalization layers are outside the mean-field recursion"
    if INITS[cfg.init.name].sigma_w2 is None:
        return f"init={cfg.init.name}: no variance formula (weights of nonzero mean or rescaled on data)"
    return None


def layer_specs(cfg: DictConfig, n_in: int, n_out: int) -> list[LayerSpec]:
    """The weight layers of the config's MLP with the σ_w², σ_b² its init scheme gives each of them."""
    m, scheme = cfg.model, INITS[cfg.init.name]
    assert scheme.sigma_w2 is not None, "not_applicable() refuses schemes without a variance formula"
    widths = [n_in] + [int(m.width)] * int(m.depth) + [n_out]
    hidden_keep = 1.0 / (1.0 - float(m.get("dropout", 0.0)))
    specs = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        after = cfg.act if i < m.depth else OmegaConf.create({"name": "linear"})
        sigma_b2, bias_mean = scheme.bias_moments(cfg.init, a) if m.get("bias", True) else (0.0, 0.0)
        keep = 1.0 / (1.0 - float(m.get("input_dropout", 0.0))) if i == 0 else hidden_keep
        sigma_w2 = scheme.sigma_w2(cfg.init, layer_gain(cfg.init, after), a, b)
        specs.append(LayerSpec(a, b, sigma_w2, sigma_b2, bias_mean, keep))
    return specs


def input_second_moment(cfg: DictConfig) -> float:
    """E[x²] of the training inputs: 1 after initlab's standardization, plus augment.noise² of added noise."""
    return 1.0 + float(cfg.data.get("augment", {}).get("noise", 0.0)) ** 2


def probed_batch(cfg: DictConfig) -> int:
    """The number of examples whose mean loss the step-0 probe differentiates."""
    return int(cfg.probe.get("fixed_batch", 0) or cfg.train.batch_size)


def predict(
    cfg: DictConfig,
    n_in: int,
    n_out: int,
    input_m2: float | None = None,
    input_corrs: tuple[tuple[float, float], ...] = ((0.0, 1.0),),
    label_spread: float = 0.0,
) -> NetPrediction:
    """The step-0 prediction for a run's config (:class:`NoPrediction` when the theory does not cover it).

    ``input_m2`` = E[x²] (None: :func:`input_second_moment`); ``input_corrs`` = the distribution of
    x^b·x^b'/(n·E[x²]) over pairs of different examples as (value, share) pairs (default: all 0, independent
    zero-mean features); ``label_spread`` = mean_k (π_k − 1/K)² of the class prior π (0 for balanced
    classes). The last two only enter the weight gradients: Σ_b δ^b·a^b adds up over correlated examples.
    """
    reason = not_applicable(cfg)
    if reason:
        raise NoPrediction(reason)
    m2 = input_second_moment(cfg) if input_m2 is None else input_m2
    return NetPrediction(
        layer_specs(cfg, n_in, n_out), activation(cfg.act), m2, probed_batch(cfg), input_corrs, label_spread
    )


def data_moments(cfg: DictConfig, data: Dataset) -> tuple[float, tuple[tuple[float, float], ...], float]:
    """What :func:`predict` needs from the training set: E[x²] as the net sees it
    (with added input noise); the distribution of x^b·x^b'/(n·E[x²]) over pairs of the first 256 examples, in
    40 bins on [−1, 1] as (bin centre, share); and the spread mean_k (π_k − 1/K)² of the class prior π."""
    x = data.x_train.double()
    m2 = float(x.pow(2).mean()) + float(cfg.data.augment.get("noise", 0.0)) ** 2
    head = x[:256]
    gram = (head @ head.T / (x.shape[1] * m2)).clamp(-1, 1)
    off = gram[~torch.eye(len(head), dtype=torch.bool)]
    counts, edges = (t.numpy() for t in torch.histogram(off.cpu(), bins=40, range=(-1.0, 1.0)))
    centres = (edges[1:] + edges[:-1]) / 2
    corrs = tuple((float(c), float(n / counts.sum())) for c, n in zip(centres, counts, strict=True) if n > 0)
    prior = torch.bincount(data.y_train.cpu(), minlength=data.n_classes).double() / len(data.y_train)
    return m2, corrs or ((0.0, 1.0),), float((prior - 1 / data.n_classes).pow(2).mean())


def write_prediction(
    cfg: DictConfig, n_in: int, n_out: int, data_moments: tuple[Any, ...], run_dir: Path | str
) -> dict[str, Any]:
    """Write ``theory.parquet`` into a run directory; returns the fields for ``summary.json``.

    ``data_moments``: E[x²], the distribution of the correlation of two examples' inputs and the label
    spread, measured on the training set (see :func:`predict`).
    """
    path = Path(run_dir) / THEORY_FILE
    path.unlink(missing_ok=True)  # a stale prediction of an earlier attempt in this directory
    try:
        pred = predict(cfg, n_in, n_out, *data_moments)
        scales = summary_fields(pred)
    except NoPrediction as exc:
        return {"theory_skipped": str(exc)}
    except (ArithmeticError, ValueError) as exc:  # a numerical failure must not stop the training run
        return {"theory_skipped": f"prediction failed ({type(exc).__name__}: {exc})"}
    prediction_frame(pred).assign(step=0).to_parquet(path, index=False)
    return scales
