"""Data loaders (seeded, balanced, standardized), augmentation, and the MNIST IDX reader."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data import MNIST_FILES, DataError, augment, load_data, read_idx

# --- gaussian -----------------------------------------------------------------------------------------


def test_gaussian_is_seeded(make_cfg) -> None:
    a = load_data(make_cfg().data)
    b = load_data(make_cfg().data)
    c = load_data(make_cfg("data.seed=7").data)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (200, 16) and a.x_test.shape == (100, 16) and a.n_classes == 10
    assert a.image_shape is None


@pytest.mark.parametrize(("dim", "n_classes"), [(16, 10), (256, 10), (10, 10), (40, 3)])
def test_gaussian_classes_are_balanced(make_cfg, dim: int, n_classes: int) -> None:
    n = 20_000
    cfg = make_cfg(f"data.dim={dim}", f"data.n_classes={n_classes}", f"data.n_train={n}")
    y = load_data(cfg.data).y_train.numpy()
    share, p = np.bincount(y, minlength=n_classes) / n, 1 / n_classes
    # Each class share is binomial: standard error √(p(1−p)/n) (0.2 % for 10 classes); allow 5 of them.
    assert np.abs(share - p).max() < 5 * math.sqrt(p * (1 - p) / n), share


def test_gaussian_labels_follow_a_linear_teacher(make_cfg) -> None:
    # A linear read-out can fit the labels exactly: least squares on one-hot targets separates them well.
    d = load_data(make_cfg("data.n_train=2000").data)
    x, y = d.x_train.double(), d.y_train
    w = torch.linalg.lstsq(x, torch.nn.functional.one_hot(y, 10).double()).solution
    assert ((x @ w).argmax(1) == y).float().mean() > 0.8


# --- standardization, digits, shapeset ----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [[], ["data=digits"], ["data=shapeset", "data.n_train=60", "data.n_test=40"]],
    ids=["gaussian", "digits", "shapeset"],
)
def test_train_split_is_standardized(make_cfg, overrides: list[str]) -> None:
    x = load_data(make_cfg(*overrides).data).x_train.double()
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(correction=0).item() - 1) < 1e-5


def test_digits_split_is_deterministic_and_a_partition(make_cfg) -> None:
    from sklearn.datasets import load_digits

    a = load_data(make_cfg("data=digits").data)
    b = load_data(make_cfg("data=digits").data)
    c = load_data(make_cfg("data=digits", "data.seed=99").data)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_test, c.y_test)
    assert len(a.y_test) == round(1797 * 0.25) and len(a.y_train) == 1797 - len(a.y_test)
    labels = np.bincount(a.y_train.numpy(), minlength=10) + np.bincount(a.y_test.numpy(), minlength=10)
    assert np.array_equal(labels, np.bincount(load_digits().target))  # every image in exactly one split
    assert a.image_shape == (8, 8) and a.n_classes == 10 and a.n_features == 64
    small = load_data(make_cfg("data=digits", "data.n_train=100").data)
    assert len(small.y_train) == 100 and torch.equal(small.y_test, a.y_test)


def test_shapeset_shape(make_cfg) -> None:
    d = load_data(make_cfg("data=shapeset", "data.n_train=30", "data.n_test=20").data)
    assert d.x_train.shape == (30, 1024) and d.x_test.shape == (20, 1024)
    assert d.image_shape == (32, 32) and d.n_classes == 9


# --- augmentation -------------------------------------------------------------------------------------


def augment_cfg(make_cfg, noise: float = 0.0, rotate: float = 0.0, shift: float = 0.0):
    return make_cfg(
        f"data.augment.noise={noise}", f"data.augment.rotate={rotate}", f"data.augment.shift={shift}"
    ).data.augment


def test_noise_has_the_configured_std(make_cfg) -> None:
    x = torch.zeros(500, 100)
    out = augment(x, augment_cfg(make_cfg, noise=0.3), None, torch.Generator().manual_seed(0))
    n = out.numel()  # the std of n normal draws has a relative standard error of 1/√(2n)
    assert abs(out.std().item() / 0.3 - 1) < 5 / math.sqrt(2 * n)
    assert abs(out.mean().item()) < 5 * 0.3 / math.sqrt(n)


def test_augmentation_uses_only_its_generator(make_cfg) -> None:
    cfg = augment_cfg(make_cfg, noise=0.1, rotate=20, shift=2)
    x = torch.randn(8, 64)
    global_state = torch.random.get_rng_state()
    a = augment(x, cfg, (8, 8), torch.Generator().manual_seed(3))
    b = augment(x, cfg, (8, 8), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(torch.random.get_rng_state(), global_state)


def test_no_augmentation_is_the_identity_and_geometry_needs_images(make_cfg) -> None:
    x = torch.randn(4, 64)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, augment_cfg(make_cfg), (8, 8), gen), x)
    assert torch.equal(augment(x, augment_cfg(make_cfg, rotate=30, shift=2), None, gen), x)  # not images


SIDE = 16
CENTER = (SIDE - 1) / 2
ROWS, COLS = torch.meshgrid(
    torch.arange(SIDE, dtype=torch.float32), torch.arange(SIDE, dtype=torch.float32), indexing="ij"
)


def draws(seed: int, n: int) -> torch.Tensor:
    """The uniforms in [-1, 1) that augment() will draw from a generator seeded with ``seed``."""
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shift_moves_the_image_by_the_drawn_number_of_pixels(make_cfg) -> None:
    # On a ramp image (value = column index) bilinear sampling is exact: a shift by t pixels adds t.
    n, shift = 6, 3.0
    u = draws(5, n)
    for ramp, which in ((COLS, 1), (ROWS, 2)):
        x = ramp.reshape(1, -1).repeat(n, 1)
        out = augment(x, augment_cfg(make_cfg, shift=shift), (SIDE, SIDE), torch.Generator().manual_seed(5))
        moved = (out - x).view(n, SIDE, SIDE)[:, 4:-4, 4:-4]  # away from the clamped border
        expected = (u[:, which] * shift).view(n, 1, 1).expand_as(moved)
        torch.testing.assert_close(moved, expected, atol=1e-4, rtol=0)
    assert u[:, 1:].abs().max() > 1 / 3  # some draws move the image by more than a pixel


def test_rotation_turns_the_image_by_the_drawn_angle(make_cfg) -> None:
    # Output pixel (X, Y) (centred coordinates) samples the input at the point rotated by θ about the centre:
    # a ramp I = X becomes cos θ·X − sin θ·Y.
    n, rotate = 6, 90.0
    theta = draws(11, n)[:, 0] * math.radians(rotate)
    x_c, y_c = COLS - CENTER, ROWS - CENTER
    x = x_c.reshape(1, -1).repeat(n, 1)
    out = augment(x, augment_cfg(make_cfg, rotate=rotate), (SIDE, SIDE), torch.Generator().manual_seed(11))
    expected = torch.cos(theta).view(n, 1, 1) * x_c - torch.sin(theta).view(n, 1, 1) * y_c
    inside = x_c**2 + y_c**2 < (CENTER - 1) ** 2  # rotated points that stay inside the image
    torch.testing.assert_close(out.view(n, SIDE, SIDE)[:, inside], expected[:, inside], atol=1e-4, rtol=0)
    assert theta.abs().max() > math.radians(30)


# --- MNIST (IDX files written by the test) ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """LeCun's IDX format: 0, 0, type code, ndim, one big-endian uint32 per dimension, then the data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i2"): 0x0B, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def fake_mnist(root: Path, gz: bool, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 6, 6), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 6, 6), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(root / (MNIST_FILES[key] + (".gz" if gz else "")), array)
    return arrays


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, ">i2", ">f4"])
def test_read_idx_round_trip(tmp_path: Path, suffix: str, dtype) -> None:
    values = np.arange(24).reshape(2, 3, 4)
    # Negative and beyond one byte for the big-endian types, so that their byte order really matters.
    array = (values if dtype == np.uint8 else values * -300).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == (2, 3, 4) and back.dtype == array.dtype and np.array_equal(back, array)


def test_read_idx_rejects_bad_and_truncated_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 7)
    with pytest.raises(DataError, match="truncated"):
        read_idx(short)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist_from_root(make_cfg, tmp_path: Path, gz: bool) -> None:
    arrays = fake_mnist(tmp_path / "mnist", gz)
    d = load_data(make_cfg("data=mnist", f"data.root={tmp_path / 'mnist'}").data)
    assert d.image_shape == (6, 6) and d.n_classes == 10
    assert d.x_train.shape == (12, 36) and d.x_test.shape == (5, 36)
    assert np.array_equal(d.y_train.numpy(), arrays["y_train"]) and np.array_equal(
        d.y_test.numpy(), arrays["y_test"]
    )
    # Both splits are standardized with the training split's scalar mean and std.
    raw_train = arrays["x_train"].reshape(12, 36).astype(np.float64)
    raw_test = arrays["x_test"].reshape(5, 36).astype(np.float64)
    mean, std = raw_train.mean(), raw_train.std()
    np.testing.assert_allclose(d.x_train.numpy(), (raw_train - mean) / std, atol=1e-5)
    np.testing.assert_allclose(d.x_test.numpy(), (raw_test - mean) / std, atol=1e-5)
    small = load_data(
        make_cfg("data=mnist", f"data.root={tmp_path / 'mnist'}", "data.n_train=4", "data.n_test=2").data
    )
    assert len(small.y_train) == 4 and len(small.y_test) == 2


def test_missing_mnist_names_the_directory_and_the_missing_files(make_cfg, tmp_path: Path) -> None:
    root = tmp_path / "partial"
    root.mkdir()
    write_idx(root / MNIST_FILES["x_train"], np.zeros((2, 6, 6), np.uint8))
    write_idx(root / (MNIST_FILES["y_train"] + ".gz"), np.zeros(2, np.uint8))
    with pytest.raises(DataError) as info:
        load_data(make_cfg("data=mnist", f"data.root={root}").data)
    message = str(info.value)
    assert str(root) in message
    assert MNIST_FILES["x_test"] in message and MNIST_FILES["y_test"] in message
    assert MNIST_FILES["x_train"] not in message and MNIST_FILES["y_train"] not in message
