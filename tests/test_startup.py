"""Start-up: the on-disk cache of generated data sets, and the torch thread setting."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.config import ConfigError
from initlab.lab import data, shapeset
from initlab.lab.models import build_model
from initlab.lab.train import SMALL_STEP_MACS, pick_threads, train


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("INITLAB_CACHE_DIR", str(tmp_path / "cache"))
    data._shapeset.cache_clear()  # the in-process cache would hide the disk
    yield tmp_path / "cache"
    data._shapeset.cache_clear()


def counting_generate(monkeypatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    real = shapeset.generate

    def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append((n, seed))
        return real(n, seed)

    monkeypatch.setattr(shapeset, "generate", generate)
    return calls


def test_shapeset_is_generated_once_then_read_from_disk(make_cfg, cache, monkeypatch) -> None:
    calls = counting_generate(monkeypatch)
    cfg = make_cfg("data=shapeset", "data.n_train=40", "data.n_test=10").data
    first = data.load_data(cfg)
    assert len(calls) == 2 and len(list(cache.glob("shapeset-*.npz"))) == 1
    data._shapeset.cache_clear()
    again = data.load_data(cfg)
    assert len(calls) == 2  # a hit: nothing generated
    torch.testing.assert_close(first.x_train, again.x_train, rtol=0, atol=0)
    assert torch.equal(first.y_test, again.y_test)
    for change in ("data.seed=7", "data.n_train=41", "data.n_test=11"):  # every setting is in the key
        data.load_data(make_cfg("data=shapeset", "data.n_train=40", "data.n_test=10", change).data)
    assert len(calls) == 8 and len(list(cache.glob("shapeset-*.npz"))) == 4
    assert not list(cache.glob("*.tmp"))


def test_cached_set_equals_a_fresh_one_and_damage_is_repaired(make_cfg, cache) -> None:
    cfg = make_cfg("data=shapeset", "data.n_train=30", "data.n_test=10").data
    data.load_data(cfg)
    (entry,) = cache.glob("shapeset-*.npz")
    entry.write_bytes(b"not an npz file")
    data._shapeset.cache_clear()
    repaired = data.load_data(cfg)
    x, y = shapeset.generate(30, cfg.seed)
    assert np.array_equal(repaired.y_train.numpy(), y)
    assert np.allclose(repaired.x_train.numpy(), (x - x.mean()) / x.std(), atol=1e-6)
    cold = make_cfg("data=shapeset", "data.n_train=30", "data.n_test=10", "data.cache=false").data
    data._shapeset.cache_clear()
    assert torch.equal(data.load_data(cold).x_train, repaired.x_train)


def _slow_make(log: str) -> tuple[np.ndarray, ...]:
    with open(log, "a") as f:
        f.write("generated\n")
    time.sleep(0.3)
    return tuple(np.arange(5) * i for i in range(1, 5))


def _worker(cache_dir: str, log: str, out: str) -> None:
    import os

    os.environ["INITLAB_CACHE_DIR"] = cache_dir
    arrays = data.cached("toy", {"n": 5}, lambda: _slow_make(log), shapeset)
    np.save(out, np.stack(arrays))


def test_concurrent_processes_generate_once(tmp_path) -> None:
    log = tmp_path / "log.txt"
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(log), str(tmp_path / f"{i}.npy")))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert log.read_text().count("generated") == 1
    results = [np.load(tmp_path / f"{i}.npy") for i in range(4)]
    assert all(np.array_equal(r, results[0]) for r in results)
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_threads_default_is_one_for_small_models_and_all_for_large_ones(make_cfg, tmp_path) -> None:
    default = make_cfg(tiny=False)
    model = build_model(1024, 9, default.model, default.act)
    assert pick_threads("auto", model, default.train.batch_size) == 1
    big = torch.nn.Linear(4096, 4096)
    assert 3 * sum(p.numel() for p in big.parameters()) * 10 > SMALL_STEP_MACS
    before = torch.get_num_threads()
    assert pick_threads("auto", big, 10) == before
    assert pick_threads(3, model, 10) == 3
    summary = train(make_cfg("train.threads=2", "train.steps=0"), tmp_path / "two")  # 2 threads: slow here
    assert summary["threads"] == 2 and torch.get_num_threads() == before  # restored after the run
    assert train(make_cfg(), tmp_path / "auto")["threads"] == 1
    with pytest.raises(ConfigError, match=r"train.threads=0 is not allowed: expected auto or an integer"):
        train(make_cfg("train.threads=0"), tmp_path / "bad")
