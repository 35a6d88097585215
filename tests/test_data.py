"""Data loaders (seeded, balanced, standardized), augmentation, the IDX reader and CIFAR-10 batches."""

from __future__ import annotations

import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.lab.data import CIFAR10_FILES, MNIST_FILES, DataError, augment, load_data, read_idx

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
    assert a.image_shape == (1, 8, 8) and a.n_classes == 10 and a.n_features == 64
    small = load_data(make_cfg("data=digits", "data.n_train=100").data)
    assert len(small.y_train) == 100 and torch.equal(small.y_test, a.y_test)


def test_shapeset_shape(make_cfg) -> None:
    d = load_data(make_cfg("data=shapeset", "data.n_train=30", "data.n_test=20").data)
    assert d.x_train.shape == (30, 1024) and d.x_test.shape == (20, 1024)
    assert d.image_shape == (1, 32, 32) and d.n_classes == 9


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
    a = augment(x, cfg, (1, 8, 8), torch.Generator().manual_seed(3))
    b = augment(x, cfg, (1, 8, 8), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(torch.random.get_rng_state(), global_state)


def test_no_augmentation_is_the_identity_and_geometry_needs_images(make_cfg) -> None:
    x = torch.randn(4, 64)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, augment_cfg(make_cfg), (1, 8, 8), gen), x)
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
        out = augment(
            x, augment_cfg(make_cfg, shift=shift), (1, SIDE, SIDE), torch.Generator().manual_seed(5)
        )
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
    out = augment(x, augment_cfg(make_cfg, rotate=rotate), (1, SIDE, SIDE), torch.Generator().manual_seed(11))
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
    assert d.image_shape == (1, 6, 6) and d.n_classes == 10
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


def test_load_fashion_mnist_reads_idx_like_mnist(make_cfg, tmp_path: Path) -> None:
    arrays = fake_mnist(tmp_path / "fashion", gz=True)
    d = load_data(make_cfg("data=fashion_mnist", f"data.root={tmp_path / 'fashion'}").data)
    assert d.name == "fashion_mnist" and d.image_shape == (1, 6, 6) and d.x_train.shape == (12, 36)
    assert np.array_equal(d.y_test.numpy(), arrays["y_test"])
    with pytest.raises(DataError, match="Fashion-MNIST files not found"):
        load_data(make_cfg("data=fashion_mnist", f"data.root={tmp_path / 'none'}").data)


def test_corrupt_idx_files_name_the_file(make_cfg, tmp_path: Path) -> None:
    root = tmp_path / "mnist"
    fake_mnist(root, gz=True)
    (root / (MNIST_FILES["x_test"] + ".gz")).write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError) as info:
        load_data(make_cfg("data=mnist", f"data.root={root}").data)
    assert MNIST_FILES["x_test"] in str(info.value) and "\n" not in str(info.value)
    fake_mnist(root, gz=True)
    write_idx(root / MNIST_FILES["y_train"], np.zeros(3, np.uint8))  # plain file found before the .gz
    with pytest.raises(DataError, match="do not match: images \\(12, 6, 6\\), labels \\(3,\\)"):
        load_data(make_cfg("data=mnist", f"data.root={root}").data)


def fake_cifar10(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """The python-version layout of CIFAR-10 with ``per_batch`` random images per batch file."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for split, names in CIFAR10_FILES.items():
        for name in names:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch).tolist()
            with open(root / name, "wb") as f:  # the keys are bytes, as in the files made by Python 2
                pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f)
            out[f"x_{split}"].append(data)
            out[f"y_{split}"].append(np.array(labels))
    return {k: np.concatenate(v) for k, v in out.items()}


def test_load_cifar10_batches(make_cfg, tmp_path: Path) -> None:
    arrays = fake_cifar10(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the folder, or the one it was unpacked in
        d = load_data(make_cfg("data=cifar10", f"data.root={root}").data)
        assert d.image_shape == (3, 32, 32) and d.n_classes == 10
        assert d.x_train.shape == (20, 3072) and d.x_test.shape == (4, 3072)
        assert np.array_equal(d.y_train.numpy(), arrays["y_train"])
        assert np.array_equal(d.y_test.numpy(), arrays["y_test"])
    raw = arrays["x_train"].astype(np.float64)
    mean, std = raw.mean(), raw.std()
    np.testing.assert_allclose(d.x_train.numpy(), (raw - mean) / std, atol=1e-5)
    # (C, H, W) order: channel 1 (green) of image 0 at row 2, column 5 is value 1024 + 2 * 32 + 5
    image = d.x_train.view(-1, *d.image_shape)[0]
    assert image[1, 2, 5].item() == pytest.approx((raw[0, 1024 + 2 * 32 + 5] - mean) / std, abs=1e-5)
    small = load_data(
        make_cfg("data=cifar10", f"data.root={tmp_path}", "data.n_train=6", "data.n_test=3").data
    )
    assert len(small.y_train) == 6 and len(small.y_test) == 3


def test_cifar10_augment_moves_all_channels_together(make_cfg, tmp_path: Path) -> None:
    fake_cifar10(tmp_path / "c")
    d = load_data(make_cfg("data=cifar10", f"data.root={tmp_path / 'c'}").data)
    x = d.x_train[:1].view(1, 3, 32, 32)[:, :1].expand(1, 3, 32, 32).reshape(1, -1)  # three equal channels
    out = augment(
        x, augment_cfg(make_cfg, rotate=20, shift=3), d.image_shape, torch.Generator().manual_seed(2)
    )
    channels = out.view(3, 32, 32)
    assert not torch.equal(out, x)
    assert torch.equal(channels[0], channels[1]) and torch.equal(channels[1], channels[2])


def test_missing_or_corrupt_cifar10_files_name_them(make_cfg, tmp_path: Path) -> None:
    root = tmp_path / "c"
    fake_cifar10(root)
    (root / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_data(make_cfg("data=cifar10", f"data.root={root}").data)
    assert "data_batch_3" in str(info.value) and "data_batch_2" not in str(info.value)
    damaged = {
        "test_batch": b"not a pickle",
        "data_batch_1": pickle.dumps({b"labels": [1], b"data": np.zeros((1, 100), np.uint8)}),
        "data_batch_2": pickle.dumps([1, 2, 3]),
        "data_batch_4": pickle.dumps({b"labels": [1]}),
        "data_batch_5": pickle.dumps(__import__("os").getcwd),  # code, which must never run
    }
    for name, content in damaged.items():
        fake = tmp_path / name
        fake.mkdir()
        fake_cifar10(fake / "c")
        (fake / "c" / name).write_bytes(content)
        with pytest.raises(DataError) as info:
            load_data(make_cfg("data=cifar10", f"data.root={fake / 'c'}").data)
        message = str(info.value)
        assert message.startswith(f"{fake / 'c' / name} is not a CIFAR-10 batch") and "\n" not in message


def test_mlp_trains_on_flattened_cifar10(make_cfg, tmp_path: Path) -> None:
    from initlab import load_run
    from initlab.lab.train import train

    fake_cifar10(tmp_path / "c")
    cfg = make_cfg("data=cifar10", f"data.root={tmp_path / 'c'}", "train.steps=3", "train.batch_size=4")
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps_done"] == 3
    layers = load_run(tmp_path / "run").layers
    assert set(layers.loc[layers["layer"] == 1, "fan_in"]) == {3 * 32 * 32}  # the MLP sees 3072 inputs


def _mnist_with(root: Path, key: str, array: np.ndarray) -> Path:
    fake_mnist(root, gz=False)
    write_idx(root / MNIST_FILES[key], array)
    return root


@pytest.mark.parametrize(
    ("key", "array", "message"),
    [
        (
            "y_train",
            np.array([0, 3, 12, 10, 1, 2, 3, 4, 5, 6, 7, 8], np.uint8),
            "labels 10, 12 are outside the",
        ),
        (
            "y_test",
            np.array([1.0, 2.5, 3, 4, 5], ">f4"),
            "labels of type >f4 are not allowed: expected integers",
        ),
        ("x_test", np.zeros((5, 7, 7), np.uint8), "hold images of different sizes ((6, 6) and (7, 7))"),
    ],
)
def test_malformed_idx_files_are_one_line_naming_the_file(
    make_cfg, tmp_path: Path, key: str, array: np.ndarray, message: str
) -> None:
    root = _mnist_with(tmp_path / "m", key, array)
    with pytest.raises(DataError) as info:
        load_data(make_cfg("data=mnist", f"data.root={root}").data)
    text = str(info.value)
    assert message in text and str(root / MNIST_FILES[key]) in text and "\n" not in text


def test_an_empty_set_and_nan_pixels_are_refused(make_cfg, tmp_path: Path) -> None:
    root = tmp_path / "empty"
    fake_mnist(root, gz=False)
    write_idx(root / MNIST_FILES["x_test"], np.zeros((0, 6, 6), np.uint8))
    write_idx(root / MNIST_FILES["y_test"], np.zeros(0, np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds no images: expected at least one"):
        load_data(make_cfg("data=mnist", f"data.root={root}").data)
    images = np.random.default_rng(0).random((12, 6, 6)).astype(">f4")
    images[3, 2, 2] = np.nan
    images[5, 0, 1] = np.inf
    root = _mnist_with(tmp_path / "nan", "x_train", images)
    with pytest.raises(
        DataError, match=r"training split: 2 values are NaN or infinite: expected finite numbers"
    ):
        load_data(make_cfg("data=mnist", f"data.root={root}").data)


def test_a_nan_pixel_run_is_refused_before_training(make_cfg, tmp_path: Path) -> None:
    """Before: the run trained on NaN inputs and ended as `diverged` (exit 0)."""
    from initlab.lab.train import train

    images = np.full((12, 6, 6), np.nan, ">f4")
    root = _mnist_with(tmp_path / "nan", "x_train", images)
    with pytest.raises(DataError):
        train(make_cfg("data=mnist", f"data.root={root}", "train.steps=2"), tmp_path / "run")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {b"labels": ["cat"] * 4, b"data": np.zeros((4, 3072), np.uint8)},
            "labels of type <U3 are not allowed",
        ),
        ({b"labels": [1] * 4, b"data": np.full((4, 3072), "x")}, "data: values of type <U1 are not allowed"),
        (
            {b"labels": [1, 2, 10, 3], b"data": np.zeros((4, 3072), np.uint8)},
            "labels 10 are outside the classes",
        ),
        ({b"labels": [1.0, 2.0, 3.0, 4.0], b"data": np.zeros((4, 3072), np.uint8)}, "labels of type float64"),
    ],
)
def test_cifar_batches_of_the_wrong_kind(make_cfg, tmp_path: Path, batch: dict, message: str) -> None:
    root = tmp_path / "c"
    fake_cifar10(root)
    (root / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError) as info:
        load_data(make_cfg("data=cifar10", f"data.root={root}").data)
    text = str(info.value)
    assert text.startswith(f"{root / 'data_batch_2'} is not a CIFAR-10 batch") and message in text


def test_a_truncated_shapeset_cache_entry_is_regenerated(make_cfg, tmp_path: Path, monkeypatch) -> None:
    from initlab.lab import data

    monkeypatch.setenv("INITLAB_CACHE_DIR", str(tmp_path))
    data._shapeset.cache_clear()
    cfg = make_cfg("data=shapeset", "data.n_train=20", "data.n_test=10").data
    first = load_data(cfg)
    (entry,) = tmp_path.glob("shapeset-*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # a cut file: zipfile.BadZipFile when read
    data._shapeset.cache_clear()
    again = load_data(cfg)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    data._shapeset.cache_clear()
