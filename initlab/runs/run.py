"""One run: :class:`Run`, the lazy reader of a run directory; :func:`load_run`; :func:`collect_runs`."""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initlab.runs.files import (
    BOOKKEEPING_KEYS,
    NOISE_KEYS,
    MissingData,
    load_yaml,
    read_parquet,
    with_edges,
)
from initlab.runs.layout import (
    CONFIG_FILE,
    HIST_EDGES_FILE,
    HISTS_FILE,
    HYDRA_FILE,
    LAYERS_FILE,
    MC_DROPOUT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OVERRIDES_FILE,
    SUMMARY_FILE,
    THEORY_FILE,
    find_runs,
    is_job,
    natural_key,
)
from initlab.runs.overrides import override_texts, parse_overrides


def collect_runs(paths: Iterable[str | Path], notes: list[str] | None = None) -> list[Run]:
    """Every run under ``paths`` (run directories, sweep directories or globs), in a stable order.

    A path that matches no run, or a run directory that cannot be loaded, adds one line to ``notes``.
    """
    notes = notes if notes is not None else []
    dirs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.exists():
            matches = [path]
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True), key=natural_key)]
        if not matches:
            notes.append(f"{raw}: no such file or directory, and no glob match")
            continue
        found = [run for m in matches if m.is_dir() for run in find_runs(m)]
        if not found:
            notes.append(f"{raw}: no run directories (none holds summary.json or metrics.parquet)")
        dirs.extend(found)
    runs, seen = [], set()
    for d in sorted(dirs, key=lambda p: natural_key(str(p))):
        key = d.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            run = load_run(d)
            run.config, run.overrides  # noqa: B018 - read now: a broken .hydra/ file is reported here
        except Exception as exc:  # noqa: BLE001 - a broken .hydra/ file must not stop the other runs
            notes.append(f"{d}: skipped, cannot be read ({type(exc).__name__}: {exc})")
            continue
        runs.append(run)
    return runs


# ---------------------------------------------------------------------------------------------------------
# One run


class Run:
    """Everything one run logged. Files are read on first use; missing files give empty frames.

    Constructed with values (as tests and :func:`initlab.probe` do), a field is taken as given instead of
    read. ``problems`` lists files that exist but could not be read.
    """

    FIELDS = (
        "config",
        "overrides",
        "summary",
        "metrics",
        "layers",
        "hists",
        "theory",
        "weights",
        "mc_dropout",
    )

    def __init__(self, path: str | Path, problems: list[str] | None = None, **given: Any) -> None:
        """``given``: any of :attr:`FIELDS`, taken as given instead of read from disk."""
        if unknown := set(given) - set(self.FIELDS):
            raise TypeError(f"Run() got unknown fields {sorted(unknown)}; allowed: {', '.join(self.FIELDS)}")
        self.path = Path(path)
        self.problems = problems if problems is not None else []
        self.__dict__.update({k: v for k, v in given.items() if v is not None})  # cached_property slots

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- files ---------------------------------------------------------------------------------------
    @cached_property
    def config(self) -> dict[str, Any]:
        """The composed config (``.hydra/config.yaml``) with interpolations resolved where possible."""
        from omegaconf import OmegaConf

        if not (self.path / CONFIG_FILE).is_file():
            return {}
        loaded = OmegaConf.load(self.path / CONFIG_FILE)
        try:  # presets may use interpolations; resolve them so readers see values
            return OmegaConf.to_container(loaded, resolve=True)  # type: ignore[return-value]
        except Exception:  # noqa: BLE001 - e.g. a Hydra-only resolver: keep the raw strings
            return OmegaConf.to_container(loaded, resolve=False)  # type: ignore[return-value]

    @cached_property
    def overrides(self) -> list[str]:
        """The command-line overrides of the run (``.hydra/overrides.yaml``)."""
        if not (self.path / OVERRIDES_FILE).is_file():
            return []
        return [str(line) for line in load_yaml(self.path / OVERRIDES_FILE) or []]

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` (empty if absent)."""
        if not (self.path / SUMMARY_FILE).is_file():
            return {}
        try:
            return json.loads((self.path / SUMMARY_FILE).read_text())
        except json.JSONDecodeError as exc:
            self.problems.append(f"{self.path / SUMMARY_FILE}: unreadable ({exc})")
            return {}

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.parquet``: one row per (step, split)."""
        return read_parquet(self.path / METRICS_FILE, self.problems)

    @cached_property
    def layers(self) -> pd.DataFrame:
        """``layers.parquet``: one row per (step, layer, quantity) of probe statistics."""
        return read_parquet(self.path / LAYERS_FILE, self.problems)

    @cached_property
    def hists(self) -> pd.DataFrame:
        """``hists.parquet``: one row per (step, layer, quantity) with bin edges and counts.

        The edges are stored once per (layer, quantity) in ``hist_edges.parquet`` and joined back here
        (older runs stored them in every row: read as they are).
        """
        return with_edges(
            read_parquet(self.path / HISTS_FILE, self.problems),
            read_parquet(self.path / HIST_EDGES_FILE, self.problems),
        )

    @cached_property
    def theory(self) -> pd.DataFrame:
        """``theory.parquet``: the mean-field prediction at step 0, one row per (layer, quantity) with
        ``mean`` and ``variance`` (empty where the theory does not apply; ``summary["theory_skipped"]`` says
        why)."""
        return read_parquet(self.path / THEORY_FILE, self.problems)

    @cached_property
    def weights(self) -> dict[str, np.ndarray]:
        """The final weight matrices of ``model.pt`` (``train.save_model=true``): every entry of the saved
        ``state_dict`` with two or more dimensions (what the penalties cover), by name, in module order
        (empty if absent)."""
        if not (self.path / MODEL_FILE).is_file():
            return {}
        import torch  # lazily: most readers need no torch

        try:
            state = torch.load(self.path / MODEL_FILE, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: a problem, not a crash
            self.problems.append(f"{self.path / MODEL_FILE}: unreadable ({exc})")
            return {}
        return {name: t.numpy() for name, t in state.items() if t.ndim >= 2}

    @cached_property
    def mc_dropout(self) -> pd.DataFrame:
        """``mc_dropout.parquet`` (runs with ``train.mc_masks=K``): one row per number of masks k with the
        Monte-Carlo dropout average against the eval-mode output (:mod:`initlab.lab.mc_dropout`); empty if
        absent (see :meth:`mc_averaging`)."""
        return read_parquet(self.path / MC_DROPOUT_FILE, self.problems)

    def mc_averaging(self) -> pd.DataFrame:
        """The rows of ``mc_dropout.parquet`` indexed by k (ascending); MissingData if the run has none
        (trained with ``train.mc_masks=0``, or it did not complete)."""
        table = self.mc_dropout
        if table.empty or "k" not in table.columns:
            raise MissingData(f"{self.path} has no {MC_DROPOUT_FILE} (run with train.mc_masks=K)")
        return table.set_index("k").sort_index()

    def hist_bins(
        self, quantity: str | None = None, layer: int | None = None, step: int | None = None
    ) -> pd.DataFrame:
        """The histograms in long format: one row per bin, optionally of one quantity, layer and step.

        Columns: ``step``, ``layer``, ``quantity``, ``bin`` (0-based), ``left`` and ``right`` (the bin's
        edges), ``count``, and ``fraction`` = count / (finite values of that histogram, those outside
        its range included), the y of Glorot & Bengio's normalized histograms. Ready for
        ``seaborn.lineplot(x="left", y="fraction", hue="layer")`` or a ``groupby``.
        """
        columns = ["step", "layer", "quantity", "bin", "left", "right", "count", "fraction"]
        hists = self.hists
        if hists.empty or not {"step", "layer", "quantity", "edges", "counts"} <= set(hists.columns):
            return pd.DataFrame(columns=columns)
        for key, wanted in (("quantity", quantity), ("layer", layer), ("step", step)):
            if wanted is not None:
                hists = hists[hists[key] == wanted]
        edges = hists["edges"].map(lambda e: list(e))
        long = hists[["step", "layer", "quantity"]].assign(
            bin=hists["counts"].map(lambda c: list(range(len(c)))),
            left=edges.map(lambda e: e[:-1]),
            right=edges.map(lambda e: e[1:]),
            count=hists["counts"].map(list),
            total=hists["counts"].map(sum)
            + sum(hists[k].fillna(0) if k in hists else 0 for k in ("underflow", "overflow")),
        )
        long = long.explode(["bin", "left", "right", "count"], ignore_index=True)
        long = long.astype({"bin": "int64", "left": "float64", "right": "float64", "count": "int64"})
        long["fraction"] = long["count"] / long.pop("total").where(lambda t: t > 0)
        return long[columns]

    # -- settings ------------------------------------------------------------------------------------
    @cached_property
    def override_values(self) -> dict[str, Any]:
        """The overrides as ``key -> value``, typed by Hydra's parser (see :func:`parse_overrides`)."""
        values = parse_overrides(self.overrides)
        return {k: v for k, v in values.items() if k not in BOOKKEEPING_KEYS}

    @cached_property
    def override_text(self) -> dict[str, str]:
        """The overrides as written, ``hydra.*`` and :data:`NOISE_KEYS` left out (what labels show)."""
        texts = override_texts(self.overrides)
        return {k: v for k, v in texts.items() if not k.startswith("hydra.") and k not in NOISE_KEYS}

    def cfg(self, key: str, default: Any = None) -> Any:
        """The config node at a dotted key (``run.cfg("init.name")``), interpolations resolved."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        if isinstance(node, str) and "${" in node:
            from omegaconf import OmegaConf

            try:
                node = OmegaConf.select(OmegaConf.create(self.config), key)
            except Exception:  # noqa: BLE001 - an interpolation that cannot resolve: keep the text
                pass
        return node

    def setting(self, key: str) -> Any:
        """Like :meth:`cfg`, but a config group (a node with a ``name``) gives its name."""
        node = self.cfg(key)
        return node.get("name") if isinstance(node, dict) else node

    def value(self, key: str) -> str | None:
        """What ``key`` was in this run, as text: its override if it had one, else its config value.

        A key the config does not hold (or a config group without a ``name``) is ``"default"``; a run
        without any config (no ``.hydra/``) gives None ("unknown"), which never makes a key differ.
        """
        given = self.override_text.get(key)
        if given is not None:
            return given
        if not self.config:
            return None
        value = self.setting(key)
        return "default" if value is None else str(value)

    @property
    def depth(self) -> int | None:
        """Hidden layers (``model.depth``), None if the config does not say."""
        depth = self.setting("model.depth")
        return depth if isinstance(depth, int) and not isinstance(depth, bool) else None

    def output_layer(self, layers: Iterable[int] = ()) -> int:
        """The output layer's index: depth + 1 from the config, else the last layer the probes logged
        (or the largest of ``layers``): a model initlab did not build (``initlab.probe``) has no depth."""
        if self.depth is not None:
            return self.depth + 1
        logged = self.layers["layer"].tolist() if "layer" in self.layers.columns else []
        return max((int(x) for x in [*layers, *logged]), default=0)

    @cached_property
    def job(self) -> int | None:
        """Hydra's job number (``hydra.job.num`` in ``.hydra/hydra.yaml``, else the directory's name)."""
        if (self.path / HYDRA_FILE).is_file():
            num = ((load_yaml(self.path / HYDRA_FILE) or {}).get("hydra") or {}).get("job", {}).get("num")
            if isinstance(num, int):
                return num
        return int(self.path.name) if self.path.name.isdigit() else None

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))

    # -- metrics -------------------------------------------------------------------------------------
    def curve(self, split: str = "test") -> pd.DataFrame:
        """The metrics rows of one split in step order (empty if there are none)."""
        m = self.metrics
        if m.empty or not {"split", "step"} <= set(m.columns):
            return pd.DataFrame()
        return m[m["split"] == split].sort_values("step")

    def errors_by_step(self, split: str = "test") -> dict[int, float]:
        """Classification error (a fraction) at every evaluated step of ``split``."""
        if self.metrics.empty:
            raise MissingData(f"{self.path} has no metrics")
        rows = self.curve(split)
        return {int(s): 1.0 - float(a) for s, a in zip(rows["step"], rows["accuracy"], strict=True)}

    def final_test_error(self) -> float | None:
        """1 − final test accuracy: from summary.json, else the last test evaluation; None if neither."""
        acc = self.summary.get("final_test_accuracy")
        if acc is None and {"step", "split", "accuracy"} <= set(self.metrics.columns):
            test = self.curve("test")
            acc = test["accuracy"].iloc[-1] if not test.empty else None
        try:
            error = 1.0 - float(acc)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return error if math.isfinite(error) else None

    def late_errors(self) -> tuple[float, float]:
        """(train error, test error), fractions, each averaged over the last quarter of the evaluations.

        Averaging the last quarter instead of reading the last evaluation keeps one lucky or unlucky
        evaluation of a few hundred examples from deciding a comparison.
        """
        if self.metrics.empty:
            raise MissingData(f"{self.path} has no metrics")
        out = []
        for split in ("train", "test"):
            rows = self.curve(split)
            tail = rows.iloc[-max(1, len(rows) // 4) :]
            out.append(1.0 - float(tail["accuracy"].mean()))
        return out[0], out[1]

    # -- probes --------------------------------------------------------------------------------------
    def layer_stat(self, quantity: str, stat: str, step: int | None = 0) -> pd.Series:
        """``stat`` of ``quantity`` per layer (index = layer) at ``step`` (None: the last probed step)."""
        layers = self.layers
        if layers.empty:
            raise MissingData(f"{self.path} has no probes")
        rows = layers[layers.quantity == quantity]
        if rows.empty:
            raise MissingData(f"{self.path} has no {quantity} probes")
        step = rows.step.max() if step is None else step
        rows = rows[rows.step == step]
        if rows.empty:
            raise MissingData(f"{self.path} has no {quantity} probe at step {step}")
        return rows.set_index("layer")[stat].sort_index()


RunData = Run  # the name of the first versions of the API


def load_run(path: str | Path) -> Run:
    """Open a run directory: ``load_run("outputs/runs/...").layers`` is a DataFrame of probe statistics.

    ``path`` must be a run or a sweep's job directory (:func:`~initlab.runs.layout.is_job`: it holds
    ``summary.json``, ``metrics.parquet`` or ``.hydra/overrides.yaml``), else FileNotFoundError.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    if not is_job(path):
        raise FileNotFoundError(
            f"{path} is not a run directory: "
            "it holds no summary.json, metrics.parquet or .hydra/overrides.yaml"
        )
    return Run(path)
