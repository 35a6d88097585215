"""Regenerate the golden files of ``tests/test_golden.py``.

``python tests/golden/regenerate.py runs`` trains the three small sweeps under ``tests/golden/runs/`` (a
few seconds each; only needed if the run-directory format changes), and ``python tests/golden/regenerate.py
outputs`` writes what ``initlab plot``, ``initlab check`` and ``initlab sweep-index`` make of them to
``tests/golden/outputs/``. Regenerate the outputs only for a deliberate change of a figure, claim or index
column, and review the diff of ``tests/golden/outputs/`` like code.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from golden_tools import OUTPUTS, RUNS, SWEEPS, run_commands  # noqa: E402

SMALL = ["train.progress=false", "probe.bins=8"]
SWEEP_ARGS = {
    "he": [
        "experiment=he_deep_relu_quick",
        "model.width=16",
        "train.steps=60",
        "train.eval_every=20",
        "probe.points=3",
        "seed=0,1",
    ],
    "dropout": [
        "experiment=dropout_quick",
        "model.width=16",
        "train.steps=60",
        "train.eval_every=20",
        "probe=default",
        "probe.points=3",
        "seed=0,1",
    ],
    "bn": [
        "experiment=bn_sigmoid_quick",
        "model.width=16",
        "train.steps=60",
        "train.eval_every=20",
        "probe.points=4",
    ],
}


def make_runs() -> None:
    import torch

    from initlab import cli

    torch.set_num_threads(1)
    for name, args in SWEEP_ARGS.items():
        target = RUNS / name
        shutil.rmtree(target, ignore_errors=True)
        sys.argv = ["initlab"]
        code = cli.main(["run", "-m", *args, *SMALL, f"hydra.sweep.dir={target}", "hydra/launcher=basic"])
        assert code == 0, name
        (target / "sweep.parquet").unlink()  # rebuilt by the test
        for f in target.rglob("*"):  # timings differ between machines; keep the files small and stable
            if f.name == "summary.json":
                import json

                summary = json.loads(f.read_text())
                for key in ("wall_seconds", "startup_seconds", "versions"):
                    summary.pop(key, None)
                f.write_text(json.dumps(summary, indent=2) + "\n")


def make_outputs() -> None:
    shutil.rmtree(OUTPUTS, ignore_errors=True)
    OUTPUTS.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in SWEEPS:
            produced = run_commands(Path(tmp), name)
            for rel, text in produced.items():
                path = OUTPUTS / name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)


if __name__ == "__main__":
    what = sys.argv[1:] or ["outputs"]
    if "runs" in what:
        make_runs()
    if "outputs" in what:
        make_outputs()
