# %% [markdown]
# # initlab from Python
#
# Train two small networks in this process, read their logs as pandas tables, and draw figures of
# `initlab plot` into your own Matplotlib axes. This file is a plain script in the "percent" format:
# run it with `python docs/notebook.py`, open it as a notebook with Jupytext or VS Code, or copy
# the cells into Jupyter. The test suite runs it top to bottom.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt

import initlab
from initlab.errors import UserError

out = Path(os.environ.get("INITLAB_EXAMPLE_DIR", "outputs/notebook"))
tiny = "data=gaussian data.dim=16 data.n_train=256 data.n_test=128 model.depth=4 model.width=32"
tiny += " train.steps=40 train.eval_every=10 train.progress=false act=relu"

# %% [markdown]
# ## Train: the same configs and checks as `initlab run`
# A bad value (say `model.depth=0`) raises the `UserError` whose one line the command prints.

# %%
# overwrite=True: running this file again replaces its runs (a taken run_dir is refused otherwise)
inits = ("standard", "kaiming")
runs = [initlab.run(f"{tiny} init={init}", run_dir=out / init, overwrite=True) for init in inits]
for run in runs:
    print(run.path.name, run.status, f"test accuracy {run.summary['final_test_accuracy']:.3f}")

try:
    initlab.run("model.depth=0")
except UserError as exc:
    print("refused:", exc)

# %% [markdown]
# ## Read: runs and sweeps as DataFrames

# %%
table = initlab.load_sweep(out)  # one row per run: overrides, status, final metrics, dir
print(table[["init", "status", "final_test_accuracy"]])

layers = runs[1].layers  # one row per (step, layer, quantity) of probe statistics
print(layers.query("quantity == 'preact' and step == 0")[["layer", "std"]])

bins = runs[1].hist_bins("act", step=0)  # one row per histogram bin
print(bins.groupby("layer")["fraction"].sum())  # below 1 where values fell outside the bins' range

# %% [markdown]
# ## Draw: any figure of `initlab plot`, into your axes

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), layout="constrained")
initlab.draw_depth(runs, ax=axes)  # three panels: preact, act, grad_preact variance per layer
fig.suptitle("He et al. 2015: ReLU variance across depth, standard vs kaiming init")

fig2 = plt.figure(figsize=(12, 4))
left, right = fig2.subfigures(1, 2)
initlab.draw_curves(runs, fig=left)
initlab.draw_hist(runs[1], "act", step="last", fig=right)
fig.savefig(out / "depth.png")
fig2.savefig(out / "curves_hist.png")
print("figures written to", out)
