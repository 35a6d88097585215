"""Monte-Carlo model averaging over dropout masks against the weight-scaling rule (``train.mc_masks``).

Srivastava et al. 2014, §7.5 and Fig. 11: a dropout net is used at test time without dropout, its weights
scaled by the retention probability q = 1 − p -- the "weight-scaling rule", an approximation of averaging the
predictions of the 2^n thinned nets. PyTorch's inverted dropout moves the scaling into training (kept units
×1/q) and makes dropout the identity in eval mode, so the eval-mode output *is* the weight-scaling rule.
The exact average is estimated by sampling k masks and averaging; their Fig. 11 shows the Monte-Carlo test
error falling with k and matching weight scaling's from k ≈ 50 on (slightly lower after, within one standard
deviation).

Theory. One linear map of a dropped-out input, y = W·(m⊙x)/q + b with independent m_i ~ Bernoulli(q):
E_m[y] = W·(E[m]⊙x)/q + b = W·x + b, the eval-mode output, exactly. A net that is linear between its dropout
layers (``act=linear``, no norm) is multilinear in the masks of its layers, which are independent, so the
expectation over all masks factors layer by layer and is again exactly the eval-mode output. With a
nonlinearity f between two dropout layers (ReLU, tanh) E_m[f(s)] ≠ f(E_m[s]) in general (Jensen), and the
eval-mode output is only an approximation. All of this is about the *logits*; softmax probabilities are not
linear in them, so even a linear net's mean probability differs from the softmax of its eval logits.

What :func:`mc_dropout_table` computes, on given test examples: the eval-mode logits e (every module in eval
mode: dropout off, batch norm on its running statistics) and K passes z_1..z_K with independent masks (only
the dropout modules switched to training mode; batch norm stays in eval mode, so the masks are the only
randomness). For k on a 1-2-5 grid up to K (:func:`k_grid`), one row each:

* ``mc_error``: test error of the argmax of the mean of the k softmax probabilities (the paper's average of
  the sampled nets' predictions); ``mc_logit_error``: of the mean of the k logit vectors;
* ``eval_error``: test error of the eval-mode logits (the same in every row);
* ``error_diff_se``: standard error of the paired difference ``mc_error − eval_error``: the sample std of
  d_i = [MC wrong on example i] − [eval wrong on example i] over the n examples, divided by √n;
* ``mean_abs_diff``: mean over every test logit of |m_k − e|, m_k the mean of the first k logit samples;
* ``mean_se``: mean over every test logit of the Monte-Carlo standard error of m_k, s_k/√k (s_k: the
  sample std of the k samples; NaN for k = 1);
* ``z2_mean``: the mean over every test logit of t² = ((m_k − e)/(s_k/√k))². Where the mask average is
  exactly e, each t is Student-t with ν = k − 1 degrees of freedom (for normal samples; the mean of k
  masks is close to normal by the central limit theorem), so E[t²] = ν/(ν − 2); where the mask average
  differs from e by a bias b it grows as 1 + k·b²/s². A logit no mask changes (s_k = 0) counts 0 if it
  equals e, else inf. NaN for k = 1;
* ``z2_se``: the standard error of ``z2_mean`` over test examples: the sample std over the n examples of
  each example's mean t² over its logits, divided by √n. Per example, because the logits of one example
  share its masks and are correlated, while different examples' masks are independent;
* ``rms_z``: √``z2_mean`` (≈ 1 where the average is exact, √(1 + k·b²/s²) where it is biased; the figure's
  scale);
* ``n_examples``, ``n_masks`` (K).

The masks come from torch's global generator, forked (:func:`torch.random.fork_rng`) and seeded with the
run's seed, so the table is the same for the same seed and the caller's random state is untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn

from initlab.runs.write import MC_DROPOUT_FILE, write_table

# The dropout modules switched to training mode for the sampled passes (inverted dropout, scaling 1/q).
DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
CHUNK = 4096  # test examples per forward pass
COLUMNS = (
    "k",
    "mc_error",
    "mc_logit_error",
    "eval_error",
    "error_diff_se",
    "mean_abs_diff",
    "mean_se",
    "rms_z",
    "z2_mean",
    "z2_se",
    "n_examples",
    "n_masks",
)


def k_grid(k_max: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to ``k_max``, and ``k_max`` itself (Fig. 11's log-spaced k axis)."""
    grid = [m * 10**e for e in range(int(math.log10(max(k_max, 1))) + 1) for m in (1, 2, 5)]
    return sorted({k for k in grid if k <= k_max} | {k_max})


@contextlib.contextmanager
def dropout_only(model: nn.Module) -> Iterator[int]:
    """Eval mode for every module except dropout, which samples masks; yields the number of dropout
    modules. The modules' training flags are restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, DROPOUT_MODULES)]
    for m in drops:
        m.train()
    try:
        yield len(drops)
    finally:
        for m, training in modes.items():
            m.training = training


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([model(chunk) for chunk in x.split(CHUNK)]).double()


def _error(scores: Tensor, y: Tensor) -> Tensor:
    """1 where the argmax of ``scores`` misses the label, else 0 (per example, float64)."""
    return (scores.argmax(-1) != y).double()


@torch.no_grad()
def mc_dropout_table(model: nn.Module, x: Tensor, y: Tensor, n_masks: int, seed: int) -> pd.DataFrame:
    """Monte-Carlo averages over ``n_masks`` dropout masks against the eval-mode logits on ``(x, y)``,
    one row per k of :func:`k_grid` (columns :data:`COLUMNS`, see the module docstring)."""
    if n_masks < 1:
        raise ValueError(f"n_masks={n_masks}: expected an integer >= 1")
    was_training = model.training
    model.eval()
    try:
        e = _logits(model, x)
    finally:
        model.train(was_training)
    eval_wrong = _error(e, y)
    sum_z, sum_z2, sum_p = torch.zeros_like(e), torch.zeros_like(e), torch.zeros_like(e)
    grid, rows = set(k_grid(n_masks)), []
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), dropout_only(model):
        torch.manual_seed(seed)
        for k in range(1, n_masks + 1):
            z = _logits(model, x)
            sum_z += z
            sum_z2 += z * z
            sum_p += torch.softmax(z, dim=-1)
            if k in grid:
                rows.append(_row(k, sum_z, sum_z2, sum_p, e, y, eval_wrong, n_masks))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_mc_dropout(
    model: nn.Module, x: Tensor, y: Tensor, n_masks: int, seed: int, run_dir: Path
) -> pd.DataFrame:
    """:func:`mc_dropout_table` written to ``run_dir/mc_dropout.parquet`` (read by ``Run.mc_dropout``)."""
    table = mc_dropout_table(model, x, y, n_masks, seed)
    write_table(Path(run_dir) / MC_DROPOUT_FILE, pa.Table.from_pandas(table, preserve_index=False))
    return table


def _row(
    k: int,
    sum_z: Tensor,
    sum_z2: Tensor,
    sum_p: Tensor,
    e: Tensor,
    y: Tensor,
    eval_wrong: Tensor,
    n_masks: int,
) -> dict[str, float | int]:
    """The statistics of the first k masks (see the module docstring)."""
    mean = sum_z / k
    diff = (mean - e).abs()
    if k > 1:
        var = ((sum_z2 - k * mean * mean) / (k - 1)).clamp_min(0.0)
        se = (var / k).sqrt()
        z2 = torch.where(se > 0, (diff / se.clamp_min(1e-300)) ** 2, torch.where(diff > 0, math.inf, 0.0))
        per_example = z2.mean(dim=-1).cpu().numpy()  # an example's logits share its masks
        mean_se, z2_mean = float(se.mean()), float(per_example.mean())
        with np.errstate(invalid="ignore"):  # inf (a logit no mask changes, ≠ e): NaN
            n = len(per_example)
            z2_se = float(np.std(per_example, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    else:
        mean_se = z2_mean = z2_se = math.nan
    mc_wrong = _error(sum_p, y)
    d = (mc_wrong - eval_wrong).cpu().numpy()
    n = len(d)
    return {
        "k": k,
        "mc_error": float(mc_wrong.mean()),
        "mc_logit_error": float(_error(sum_z, y).mean()),
        "eval_error": float(eval_wrong.mean()),
        "error_diff_se": float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "mean_abs_diff": float(diff.mean()),
        "mean_se": mean_se,
        "rms_z": math.sqrt(z2_mean),
        "z2_mean": z2_mean,
        "z2_se": z2_se,
        "n_examples": n,
        "n_masks": n_masks,
    }
