"""Tests for initlab.lab.shapeset (Glorot & Bengio 2010's Shapeset-3x2 generator)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.lab import shapeset as ss
from initlab.lab.shapeset import CLASS_NAMES, N_CLASSES, generate, rasterize, shape_vertices

N_BIG = 20_000
PRIORS = np.array([1 / 6] * 3 + [1 / 9] * 3 + [1 / 18] * 3)


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray]:
    return generate(N_BIG, seed=2010)


def _polygon_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _perimeter(v: np.ndarray) -> float:
    return float(np.linalg.norm(np.roll(v, -1, axis=0) - v, axis=1).sum())


def _analytic_area(kind: int, s0: float, s1: float) -> float:
    n = ss.N_VERTICES[kind]
    return s0 * s1 * (n / 8) * math.sin(2 * math.pi / n)


# --------------------------------------------------------------------------- API, shapes, determinism


def test_constants() -> None:
    assert N_CLASSES == 9
    assert len(CLASS_NAMES) == 9 and len(set(CLASS_NAMES)) == 9
    assert CLASS_NAMES[:3] == ("triangle", "parallelogram", "ellipse")


def test_shape_dtype_range() -> None:
    x, y = generate(300, seed=0)
    assert x.shape == (300, 1024) and x.dtype == np.float32
    assert y.shape == (300,) and y.dtype == np.int64
    assert np.isfinite(x).all()
    assert x.min() >= -1.0 and x.max() <= 1.0
    # Grey levels are in [0, 0.45] U [0.55, 1] -> [-1, -0.1] U [0.1, 1]: nothing near 0.
    assert np.abs(x).min() >= 0.1 - 1e-6
    assert y.min() >= 0 and y.max() < N_CLASSES
    x0, y0 = generate(0, seed=0)
    assert x0.shape == (0, 1024) and y0.shape == (0,)


def test_deterministic_and_prefix() -> None:
    x1, y1 = generate(200, seed=7)
    x2, y2 = generate(200, seed=7)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    xk, yk = generate(57, seed=7)
    np.testing.assert_array_equal(xk, x1[:57])
    np.testing.assert_array_equal(yk, y1[:57])


def test_different_seeds_differ() -> None:
    xa, ya = generate(100, seed=1)
    xb, yb = generate(100, seed=2)
    # No image is shared, and the label sequences differ.
    assert not np.any(np.all(xa == xb, axis=1))
    assert not np.array_equal(ya, yb)


def test_generate_follows_scene_stream() -> None:
    """generate() is sample_scene() applied in order to one default_rng(seed) stream."""
    x, y = generate(150, seed=99)
    rng = np.random.default_rng(99)
    for i in range(150):
        scene = ss.sample_scene(rng)
        np.testing.assert_allclose(x[i], 2.0 * ss.render(scene) - 1.0, rtol=0, atol=1e-6)
        assert y[i] == ss.scene_label(scene)


# --------------------------------------------------------------------------- statistics


def test_class_frequencies_match_priors(big: tuple[np.ndarray, np.ndarray]) -> None:
    _, y = big
    freq = np.bincount(y, minlength=N_CLASSES) / N_BIG
    se = np.sqrt(PRIORS * (1 - PRIORS) / N_BIG)
    z = (freq - PRIORS) / se
    assert np.all(np.abs(z) < 4), f"freq={freq.round(4)}, z={z.round(2)}"
    one = np.mean(y < 3)
    assert abs(one - 0.5) < 4 * math.sqrt(0.25 / N_BIG)


def test_grey_level_populations(big: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = big
    img = x.reshape(-1, 32, 32)
    bg = img[:, 0, 0]
    # The outer ring of pixels is always background (1-px margin).
    ring = np.concatenate([img[:, 0, :], img[:, -1, :], img[:, :, 0], img[:, :, -1]], axis=1)
    assert np.all(ring == bg[:, None])
    # Every non-background pixel lies on the other side of 0 from the background.
    is_bg = x == bg[:, None]
    opposite = np.sign(x) == -np.sign(bg)[:, None]
    assert np.all(is_bg | opposite)
    # Dark vs light background: probability 1/2 each.
    dark = np.mean(bg < 0)
    assert abs(dark - 0.5) < 4 * math.sqrt(0.25 / N_BIG)
    # Exactly one object grey level per object in the label (the first object of a pair stays at
    # least half visible, so both levels show).
    for i in range(2000):
        levels = np.unique(x[i][~is_bg[i]])
        assert len(levels) == (1 if y[i] < 3 else 2), (i, y[i], levels)


def test_object_areas_plausible(big: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = big
    n_obj_px = np.count_nonzero(x != x[:, :1], axis=1)  # pixel 0 is background
    assert n_obj_px.min() >= 1
    single = y < 3
    # Largest single object: a 25.6 x 25.6 20-gon of area ~506 px.
    assert n_obj_px[single].max() <= 560
    assert n_obj_px[~single].min() >= 2
    # E[s0 * s1] = E[s]^2 = 16^2 px^2, so mean area = 256 * (area of the radius-0.5 n-gon).
    for kind in range(3):
        expected = _analytic_area(kind, 16.0, 16.0)
        mean = n_obj_px[y == kind].mean()
        assert abs(mean / expected - 1) < 0.05, (kind, mean, expected)


# --------------------------------------------------------------------------- scenes, overlap, labels


def test_scenes_respect_rules() -> None:
    rng = np.random.default_rng(3)
    n_two = 0
    for _ in range(600):
        scene = ss.sample_scene(rng)
        assert 1 <= len(scene.objects) <= scene.n_requested <= 2
        for o in scene.objects:
            assert o.vertices.shape == (ss.N_VERTICES[o.kind], 2)
            assert o.vertices.min() >= 1 - 1e-9 and o.vertices.max() <= 31 + 1e-9
            # The fast internal mask equals the public rasteriser on the same polygon.
            np.testing.assert_array_equal(o.mask, rasterize(o.vertices).ravel())
            assert np.count_nonzero(o.mask) >= 1
        if len(scene.objects) == 2:
            n_two += 1
            m1, m2 = scene.objects[0].mask, scene.objects[1].mask
            inter = np.count_nonzero(m1 & m2)
            assert inter <= 0.5 * min(np.count_nonzero(m1), np.count_nonzero(m2))
        lo, hi = (0.0, 0.45) if scene.background <= 0.45 else (0.55, 1.0)
        assert lo <= scene.background <= hi
        for o in scene.objects:
            assert (0.55 <= o.grey <= 1.0) if lo == 0.0 else (0.0 <= o.grey <= 0.45)
    assert 240 < n_two < 360  # ~300 expected


def test_scale_distribution() -> None:
    """Recover diag(s0, s1) as the singular values of the linear part of each drawn polygon."""
    rng = np.random.default_rng(5)
    scales = []
    for _ in range(400):
        for o in ss.sample_scene(rng).objects:
            base = ss._BASE_POLYGONS[o.kind]
            lin = np.linalg.lstsq(base, o.vertices - o.vertices.mean(axis=0), rcond=None)[0]
            scales.append(np.linalg.svd(lin, compute_uv=False))  # sorted: s0 >= s1
    s = np.concatenate(scales)
    # U(0.2, 0.8) * 32 = U(6.4, 25.6): mean 16, sd 19.2 / sqrt(12) = 5.54.
    assert s.min() >= 6.4 - 1e-6 and s.max() <= 25.6 + 1e-6
    assert s.min() < 7.0 and s.max() > 25.0
    assert abs(s.mean() - 16.0) < 4 * 5.54 / math.sqrt(len(s))
    assert abs(s.std() - 19.2 / math.sqrt(12)) < 0.3


def test_give_up_keeps_fewer_objects_and_relabels() -> None:
    rng = np.random.default_rng(4)
    dropped = 0
    for _ in range(400):
        scene = ss.sample_scene(rng, max_tries=0)  # the second object can never be placed
        assert len(scene.objects) == 1
        label = ss.scene_label(scene)
        assert label == scene.objects[0].kind < 3
        assert np.count_nonzero(ss.render(scene) != scene.background) == np.count_nonzero(
            scene.objects[0].mask
        )
        dropped += scene.n_requested == 2
    assert dropped > 150
    # With a single try, some but not all pairs are dropped.
    scenes = [ss.sample_scene(rng, max_tries=1) for _ in range(600)]
    pairs = [s for s in scenes if s.n_requested == 2]
    n_dropped = sum(len(s.objects) == 1 for s in pairs)
    assert 0 < n_dropped < len(pairs)
    assert all(ss.scene_label(s) < 3 for s in pairs if len(s.objects) == 1)


def test_label_mapping_is_order_free_and_matches_names() -> None:
    dummy = np.zeros(1024, dtype=bool)
    v = np.zeros((3, 2))

    def scene(*kinds: int) -> ss.Scene:
        return ss.Scene(0.2, tuple(ss.ShapeObject(k, v, 0.8, dummy) for k in kinds), len(kinds))

    expected = {(0,): 0, (1,): 1, (2,): 2, (0, 1): 3, (1, 2): 4, (0, 2): 5, (0, 0): 6, (1, 1): 7, (2, 2): 8}
    for kinds, label in expected.items():
        assert ss.scene_label(scene(*kinds)) == label
        assert ss.scene_label(scene(*reversed(kinds))) == label
        parts = CLASS_NAMES[label].split("+")
        assert sorted(parts) == sorted(ss.KIND_NAMES[k] for k in kinds)


# --------------------------------------------------------------------------- rasterisation


def test_axis_aligned_square_and_rectangle() -> None:
    square = np.array([[8.0, 8.0], [24.0, 8.0], [24.0, 24.0], [8.0, 24.0]])  # side 16, centred
    m = rasterize(square)
    assert m.shape == (32, 32) and m.dtype == bool
    assert m.sum() == 256
    assert m[8:24, 8:24].all() and m.sum() == m[8:24, 8:24].sum()
    np.testing.assert_array_equal(rasterize(square[::-1]), m)  # orientation does not matter
    # Same square from the shape generator: radius-0.5 square pre-rotated by 45 deg, scaled 16*sqrt(2).
    s = 16 * math.sqrt(2)
    assert rasterize(shape_vertices(1, s, s, prerot=math.pi / 4, cx=16, cy=16)).sum() == 256
    # Rows are y, columns are x: a 20 (x) by 10 (y) rectangle.
    rect = rasterize(np.array([[3.0, 5.0], [23.0, 5.0], [23.0, 15.0], [3.0, 15.0]]))
    assert rect.sum() == 200 and rect[5:15, 3:23].all()


def test_rotated_square_triangle_ellipse_areas() -> None:
    s = 16 * math.sqrt(2)
    diamond = rasterize(shape_vertices(1, s, s, cx=16, cy=16))  # side-16 square rotated by 45 deg
    assert abs(int(diamond.sum()) - 256) <= 12
    # Right triangle with legs 24: pixel centres (c + .5, r + .5) with c, r >= 4 and c + r <= 27
    # (hypotenuse included) -> 24 * 25 / 2 = 300 pixels, for an analytic area of 288.
    tri = rasterize(np.array([[4.0, 4.0], [28.0, 4.0], [4.0, 28.0]]))
    assert tri.sum() == 300
    # A 24 x 12 ellipse (20-gon), rotated: area ~ 24 * 12 * 2.5 * sin(18 deg) = 222.5 px.
    ell = shape_vertices(2, 24.0, 12.0, prerot=0.3, rot=1.1, cx=15.7, cy=16.2)
    area = _analytic_area(2, 24.0, 12.0)
    assert abs(_polygon_area(ell) - area) < 1e-9
    assert abs(ell.mean(axis=0) - [15.7, 16.2]).max() < 1e-9
    assert abs(int(rasterize(ell).sum()) - area) <= 0.05 * area


def test_random_shapes_cover_analytic_area() -> None:
    rng = np.random.default_rng(12)
    for kind in range(3):
        rel = []
        for _ in range(300):
            s0, s1 = sorted(rng.uniform(6.4, 25.6, size=2), reverse=True)
            v = shape_vertices(kind, s0, s1, rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), 16, 16)
            area = _analytic_area(kind, s0, s1)
            assert abs(_polygon_area(v) - area) < 1e-6 * area
            count = int(rasterize(v).sum())
            # Pixel-centre sampling error is a fraction of the perimeter (measured max ~0.25).
            assert abs(count - area) <= 0.35 * _perimeter(v), (kind, s0, s1, count, area)
            rel.append(count / area - 1)
        # Unbiased on average (per-shape relative std ~0.02-0.03 -> SE ~0.0016).
        assert abs(np.mean(rel)) < 0.008, (kind, np.mean(rel))
