"""Data sets, one loader function each, and training-time augmentation.

Every loader returns raw arrays; :func:`load_data` standardizes them with the training split's scalar mean
and standard deviation (one pair for all features, so images stay images) and turns them into tensors.

=================  =============================================================================
``shapeset``       Glorot & Bengio 2010's Shapeset-3x2 from :mod:`initlab.lab.shapeset` (32x32, 9 classes)
``digits``         scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)
``gaussian``       x ~ N(0, I), label = argmax of a fixed random linear teacher (balanced if dim >= classes)
``mnist``          the standard IDX files (gzipped or not) read from ``data.root``
``fashion_mnist``  Zalando's Fashion-MNIST: MNIST's four IDX file names and format, read from ``data.root``
``cifar10``        CIFAR-10's "python version" batches (``data_batch_1..5``, ``test_batch``) in ``data.root``
=================  =============================================================================

Nothing is downloaded at run time: the first three are embedded, the others must already be on disk.
Image sets say their shape as ``image_shape = (channels, height, width)``; the inputs are flattened in that
(C, H, W) order, so ``x.view(-1, *image_shape)`` gives the images back (what a convolutional net needs).
Generated sets (Shapeset) are kept in an on-disk cache shared by all processes (:func:`cached`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from initlab.lab import shapeset
from initlab.lab.datacheck import DataError, check_arrays, check_inputs, check_labels


@dataclass
class Dataset:
    """Standardized train/test tensors of one data set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    image_shape: tuple[int, int, int] | None  # (C, H, W) for image data, None otherwise

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(channels, H, W) of an image data set, else (features,)."""
        return tuple(self.image_shape) if self.image_shape is not None else (self.n_features,)


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
ImageShape = tuple[int, int, int]
Loaded = tuple[Arrays, int, ImageShape | None]  # what a loader returns: arrays, classes, image shape


def cache_dir() -> Path:
    """Where generated data sets are kept: ``$INITLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/initlab``,
    else ``~/.cache/initlab``."""
    if os.environ.get("INITLAB_CACHE_DIR"):
        return Path(os.environ["INITLAB_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "initlab"


def _source_digest(module: ModuleType) -> str:
    """A digest of a generator's source: changing the generator invalidates what it cached."""
    return hashlib.sha256(Path(str(module.__file__)).read_bytes()).hexdigest()[:16]


def cached(name: str, settings: dict[str, Any], make: Callable[[], Arrays], module: ModuleType) -> Arrays:
    """``make()``, kept on disk under :func:`cache_dir` and keyed by ``settings`` and ``module``'s source.

    Safe with concurrent processes (a joblib sweep starting its workers at once): one process generates
    while holding a lock on the entry (the others wait, then read it); the file is written to a temporary
    name and renamed, so a reader never sees half of it. A cache that cannot be read or written (read-only
    disk, no ``fcntl``) only costs the generation.
    """
    key = json.dumps({"name": name, **settings, "source": _source_digest(module)}, sort_keys=True)
    path = cache_dir() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            _lock(lock)
            if (hit := _read_npz(path)) is not None:
                return hit
            arrays = make()
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, *arrays)
            os.replace(tmp, path)
            return arrays
    except OSError:
        return make()


def _lock(f: Any) -> None:
    try:
        import fcntl
    except ImportError:  # no advisory locks here: concurrent misses generate twice, still correct
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _read_npz(path: Path) -> Arrays | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return tuple(z[f"arr_{i}"] for i in range(4))  # type: ignore[return-value]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):  # a damaged entry is regenerated
        return None


@lru_cache(maxsize=8)
def _shapeset(n_train: int, n_test: int, seed: int, cache: bool) -> Arrays:
    def make() -> Arrays:
        x_tr, y_tr = shapeset.generate(n_train, seed)
        x_te, y_te = shapeset.generate(n_test, seed + 1_000_003)
        return x_tr, y_tr, x_te, y_te

    if not cache:
        return make()
    return cached("shapeset", {"n_train": n_train, "n_test": n_test, "seed": seed}, make, shapeset)


def load_shapeset(cfg: DictConfig) -> Loaded:
    """Shapeset-3x2: ``n_train`` and ``n_test`` examples from two independent seeded streams.

    Generating 12,000 images takes seconds; with ``data.cache`` (the default) they are generated once
    per machine and read from :func:`cache_dir` afterwards (see :func:`cached`).
    """
    arrays = _shapeset(cfg.n_train, cfg.n_test, cfg.seed, bool(cfg.get("cache", True)))
    return arrays, shapeset.N_CLASSES, (1, 32, 32)


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Arrays:
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_digits(cfg: DictConfig) -> Loaded:
    """scikit-learn's 8x8 digits, split by a seeded permutation (``test_fraction`` to test).

    ``n_train`` keeps only the first examples of the training split (small sets overfit: dropout studies).
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x_tr, y_tr, x_te, y_te = _split(
        bunch.data.astype(np.float32), bunch.target.astype(np.int64), cfg.test_fraction, cfg.seed
    )
    n = cfg.get("n_train") or len(y_tr)
    return (x_tr[:n], y_tr[:n], x_te, y_te), 10, (1, 8, 8)


def load_gaussian(cfg: DictConfig) -> Loaded:
    """x ~ N(0, I_dim); y = argmax(x·T) with a fixed random teacher T (dim x n_classes).

    T has orthonormal columns when dim >= n_classes, so x·T ~ N(0, I) and every class is equally likely.
    (With a raw Gaussian T the column norms differ, and at dim=16 some classes got 4x the share of others.)
    """
    rng = np.random.default_rng(cfg.seed)
    teacher = rng.standard_normal((cfg.dim, cfg.n_classes))
    if cfg.dim >= cfg.n_classes:
        teacher = np.linalg.qr(teacher)[0]
    x = rng.standard_normal((cfg.n_train + cfg.n_test, cfg.dim)).astype(np.float32)
    y = np.argmax(x @ teacher, axis=1).astype(np.int64)
    n = cfg.n_train
    return (x[:n], y[:n], x[n:], y[n:]), cfg.n_classes, None


MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format; gzip-compressed if the name ends in ``.gz``).

    Header: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then one big-endian
    uint32 per dimension; the data follow in C order.
    """
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError; a cut stream EOFError
        raise DataError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    body = len(raw) - 4 - 4 * ndim
    if body < 0 or body % dtype.itemsize or body // dtype.itemsize != math.prod(shape):
        found = max(body, 0) // dtype.itemsize
        raise DataError(f"{path} is truncated: header says {shape}, found {found} values")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def _split_sizes(cfg: DictConfig, x_tr: np.ndarray, x_te: np.ndarray) -> tuple[int, int]:
    return cfg.get("n_train") or len(x_tr), cfg.get("n_test") or len(x_te)


def _idx_loader(title: str, source: str) -> Callable[[DictConfig], Loaded]:
    """A loader of the four MNIST-format IDX files in ``data.root`` (MNIST, Fashion-MNIST)."""

    def load(cfg: DictConfig) -> Loaded:
        root = Path(cfg.root).expanduser().resolve()
        paths = {key: _find_idx(root, stem) for key, stem in MNIST_FILES.items()}
        missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
        if missing:
            raise DataError(
                f"data.root={root}: {title} files not found ({', '.join(missing)}[.gz]); "
                f"put the four IDX files from {source} there"
            )
        arr = {key: read_idx(p) for key, p in paths.items()}  # type: ignore[arg-type]
        for split in ("train", "test"):
            images, labels = arr[f"x_{split}"], arr[f"y_{split}"]
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(
                    f"{paths[f'x_{split}']} and {paths[f'y_{split}']} do not match: "
                    f"images {images.shape}, labels {labels.shape}; expected (N, H, W) and (N,)"
                )
            if not len(images):
                raise DataError(f"{paths[f'x_{split}']} holds no images: expected at least one")
            check_labels(labels, 10, str(paths[f"y_{split}"]))  # before the cast to int64 truncates floats
        if arr["x_train"].shape[1:] != arr["x_test"].shape[1:]:
            raise DataError(
                f"{paths['x_train']} and {paths['x_test']} hold images of different sizes "
                f"({arr['x_train'].shape[1:]} and {arr['x_test'].shape[1:]}): expected one size"
            )
        x_tr, x_te = (arr[k].reshape(len(arr[k]), -1).astype(np.float32) for k in ("x_train", "x_test"))
        y_tr, y_te = arr["y_train"].astype(np.int64), arr["y_test"].astype(np.int64)
        n_tr, n_te = _split_sizes(cfg, x_tr, x_te)
        side = arr["x_train"].shape[1:]
        return (x_tr[:n_tr], y_tr[:n_tr], x_te[:n_te], y_te[:n_te]), 10, (1, int(side[0]), int(side[1]))

    load.__doc__ = (
        f"{title} from the four IDX files in ``data.root`` (optionally cut to ``n_train``/``n_test``)."
    )
    return load


load_mnist = _idx_loader("MNIST", "http://yann.lecun.com/exdb/mnist/")
load_fashion_mnist = _idx_loader("Fashion-MNIST", "https://github.com/zalandoresearch/fashion-mnist")


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR10_DIR = "cifar-10-batches-py"  # the folder the archive unpacks to
CIFAR10_SHAPE: ImageShape = (3, 32, 32)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays, and nothing else: a pickle can run any code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data batch")
        with warnings.catch_warnings():  # numpy 2 renamed numpy.core to numpy._core
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: a pickled dict with ``data`` (N x 3072 uint8: 1024 red, 1024 green, 1024 blue
    values of a 32x32 image, rows in order) and ``labels`` (N ints in 0..9). Returns (N x 3072, N)."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises almost anything
        raise DataError(f"{path} is not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (a {type(batch).__name__}, expected a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path} is not a CIFAR-10 batch (keys {sorted(batch)}; expected data and labels)")
    x, y = np.asarray(batch["data"]), np.asarray(batch["labels"])
    check_inputs(x, f"{path} is not a CIFAR-10 batch: data")
    check_labels(y, 10, f"{path} is not a CIFAR-10 batch")
    if x.ndim != 2 or x.shape[1] != math.prod(CIFAR10_SHAPE) or y.shape != (len(x),):
        raise DataError(
            f"{path} is not a CIFAR-10 batch (data {x.shape}, labels {y.shape}; expected (N, 3072) and (N,))"
        )
    return x, y


def load_cifar10(cfg: DictConfig) -> Loaded:
    """CIFAR-10 from the python batches in ``data.root`` (or its ``cifar-10-batches-py/``), image shape
    3x32x32 flattened in (C, H, W) order; optionally cut to ``n_train``/``n_test``."""
    root = Path(cfg.root).expanduser().resolve()
    if (root / CIFAR10_DIR).is_dir():
        root = root / CIFAR10_DIR
    names = [name for split in CIFAR10_FILES.values() for name in split]
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DataError(
            f"data.root={root}: CIFAR-10 files not found ({', '.join(missing)}); unpack the python version "
            "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) there"
        )
    splits = {}
    for split, files in CIFAR10_FILES.items():
        batches = [read_cifar_batch(root / name) for name in files]
        splits[split] = (
            np.concatenate([x for x, _ in batches]).astype(np.float32),
            np.concatenate([y for _, y in batches]).astype(np.int64),
        )
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    n_tr, n_te = _split_sizes(cfg, x_tr, x_te)
    return (x_tr[:n_tr], y_tr[:n_tr], x_te[:n_te], y_te[:n_te]), 10, CIFAR10_SHAPE


@dataclass(frozen=True)
class Source:
    """One data set of the ``data`` group: its loader, its (n_features, n_classes) read off the config
    without loading anything (what ``initlab theory`` needs), and whether it holds images (``model=cnn``
    needs images)."""

    load: Callable[[DictConfig], Loaded]
    shape: Callable[[DictConfig], tuple[int, int]]
    image: bool


SOURCES: dict[str, Source] = {
    "shapeset": Source(load_shapeset, lambda cfg: (32 * 32, shapeset.N_CLASSES), image=True),
    "digits": Source(load_digits, lambda cfg: (8 * 8, 10), image=True),
    "gaussian": Source(load_gaussian, lambda cfg: (int(cfg.dim), int(cfg.n_classes)), image=False),
    "mnist": Source(load_mnist, lambda cfg: (28 * 28, 10), image=True),
    "fashion_mnist": Source(load_fashion_mnist, lambda cfg: (28 * 28, 10), image=True),
    "cifar10": Source(load_cifar10, lambda cfg: (math.prod(CIFAR10_SHAPE), 10), image=True),
}
IMAGE_DATA = tuple(sorted(name for name, source in SOURCES.items() if source.image))


def load_data(cfg: DictConfig, device: torch.device | str = "cpu") -> Dataset:
    """Load the data set ``cfg.name``, standardize with the train split's scalar mean/std, move to device."""
    arrays, n_classes, image_shape = SOURCES[cfg.name].load(cfg)
    check_arrays(
        arrays, n_classes, f"data={cfg.name}" + (f" (data.root={cfg.root})" if cfg.get("root") else "")
    )
    x_tr, y_tr, x_te, y_te = arrays
    mean, std = float(x_tr.mean()), float(x_tr.std()) or 1.0

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    return Dataset(
        name=cfg.name,
        x_train=tensor((x_tr - mean) / std).float(),
        y_train=tensor(y_tr).long(),
        x_test=tensor((x_te - mean) / std).float(),
        y_test=tensor(y_te).long(),
        n_classes=n_classes,
        image_shape=image_shape,
    )


def augment(x: torch.Tensor, cfg: Any, image_shape: ImageShape | None, gen: torch.Generator) -> torch.Tensor:
    """Training-time augmentation of a standardized batch, drawn from ``gen`` (never the global RNG).

    Images are rotated by U(−rotate, rotate) degrees and shifted by U(−shift, shift) pixels in each
    direction with one bilinear ``grid_sample`` (edge pixels repeat at the border); then Gaussian noise
    N(0, noise²) is added to every input. All ops are plain torch: no torchvision needed.
    """
    if image_shape is not None and (cfg.rotate > 0 or cfg.shift > 0):
        n, (c, h, w) = x.shape[0], image_shape
        u = torch.rand(n, 3, generator=gen, device=x.device) * 2 - 1
        theta = u[:, 0] * math.radians(cfg.rotate)
        cos, sin = torch.cos(theta), torch.sin(theta)
        # affine_grid works in normalized coordinates [-1, 1]: a shift of s pixels is 2s/size.
        tx, ty = u[:, 1] * 2 * cfg.shift / w, u[:, 2] * 2 * cfg.shift / h
        mat = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(mat, [n, c, h, w], align_corners=False)  # one motion for all channels
        x = F.grid_sample(x.view(n, c, h, w), grid, padding_mode="border", align_corners=False).view(n, -1)
    if cfg.noise > 0:
        x = x + cfg.noise * torch.randn(x.shape, generator=gen, device=x.device)
    return x
