"""Shapeset-3x2: a seeded numpy re-implementation of Glorot & Bengio's synthetic shape data set.

Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward neural
networks", AISTATS, section 2.1, introduce *Shapeset-3x2*: 32x32 grey-level images that hold one
or two objects drawn from three shape categories (triangle, parallelogram, ellipse), with random
shape parameters, scale, rotation, translation and grey level.  The second object may overlap the
first, but by at most 50% of its area.  The task is to say which objects are present, ignoring
their order (and so which one lies in front), which gives nine classes:

====  ===========================  ========================
 y    objects                      prior (follows from the
                                   sampling, not forced)
====  ===========================  ========================
 0    one triangle                 1/6
 1    one parallelogram            1/6
 2    one ellipse                  1/6
 3    triangle + parallelogram     1/9
 4    parallelogram + ellipse      1/9
 5    triangle + ellipse           1/9
 6    two triangles                1/18
 7    two parallelograms           1/18
 8    two ellipses                 1/18
====  ===========================  ========================

This module is written from the paper's description and the generator's documented recipe; no
original code is used.  Every choice made here:

* **Number of objects** ``n_obj`` uniform in {1, 2}; each object's **type** uniform over the three
  categories, independently.  Hence one-object classes have prior 1/2 * 1/3 = 1/6, mixed pairs
  1/2 * 2/9 = 1/9 and same-type pairs 1/2 * 1/9 = 1/18 (up to the rare give-ups below).
* **Shape**: a regular n-gon inscribed in a circle of radius 0.5 centred at the origin, with
  n = 3 (triangle), 4 (parallelogram) or 20 (ellipse, approximated by a 20-gon), vertices in
  counter-clockwise order.  It is *pre-rotated* by an angle uniform in [0, 2*pi), then its axes are
  scaled by ``s0, s1 = sorted(U(0.2, 0.8) * 32, U(0.2, 0.8) * 32, reverse=True)`` pixels
  (so ``s0 >= s1``; the anisotropic scaling of a pre-rotated square gives a general
  parallelogram, of a pre-rotated circle an ellipse, of a pre-rotated equilateral triangle a
  general triangle), then rotated by an angle uniform in [0, 2*pi).  In matrix form the vertices are
  ``R(rot) @ diag(s0, s1) @ R(prerot) @ v + t``.  The shape's largest extent is at most
  0.8 * 32 = 25.6 px.
* **Translation** ``t``: uniform, per axis, over all positions that keep the polygon's bounding
  box inside [1, 31] x [1, 31], i.e. inside the 32x32 image with a 1-pixel margin.  Coordinates
  are ``(x, y) = (column, row)`` in pixel units, pixel ``(r, c)`` having its centre at
  ``(c + 0.5, r + 0.5)``; so the outermost ring of pixels is always background.
* **Rasterisation**: a pixel belongs to a shape iff its centre lies inside the (convex) polygon,
  boundary included; no anti-aliasing.  The test is vectorised over the 1024 precomputed pixel
  centres: one half-plane per edge, evaluated as a single ``(n_edges, 3) @ (3, 1024)`` product.
  Every shape covers at least one pixel: since ``s1 >= 6.4`` px, the scaled shape contains a disk
  of radius >= 1.6 px (the n-gon's incircle, radius >= 0.25, scaled by >= 6.4), and any disk of
  radius >= sqrt(2)/2 contains a pixel centre.
* **Overlap rule**, measured on the rasterised masks: the second object is accepted iff
  ``|mask1 & mask2| <= 0.5 * min(|mask1|, |mask2|)``, i.e. the intersection is at most half of the
  *smaller* object's pixel area (so neither object is more than half covered by the other, and the
  first object, which is drawn behind, keeps at least half of its pixels visible).  Otherwise the
  second object's geometry (pre-rotation, scales, rotation and translation; its type and grey level
  are kept) is resampled, up to ``MAX_TRIES = 50`` tries in all; if all fail, the second object
  is dropped and the image holds one object, **the label then describing the objects actually
  drawn**.  Give-ups are rare but do happen, mostly when the first object is so large that no
  placement of the second one satisfies the rule: about 0.1% of two-object draws (12 of 10,108 in
  one run), so each one-object prior rises by ~0.0002 and the pair priors fall accordingly.
* **Grey levels** (in [0, 1] before scaling): with probability 0.5 the background is uniform in
  [0, 0.45] and each object, independently, uniform in [0.55, 1]; otherwise the ranges are swapped.
  Background and objects therefore always lie on opposite sides of 0.5, and the two objects may
  have different grey levels.  Objects are painted in order, the second over the first.
* **Output**: pixel values are mapped to [-1, 1] by ``2 * v - 1`` (the background is then in
  [-1, -0.1] or [0.1, 1] and objects on the other side of 0), and the image is flattened row-major to
  1024 ``float32`` inputs; labels are ``int64``.
* **Randomness / determinism**: ``generate(n, seed)`` draws all examples, one after the other,
  from a single ``numpy.random.default_rng(seed)`` stream; the draws of example ``i`` depend only
  on the draws of the examples before it, so ``generate(k, seed)`` equals the first ``k`` examples
  of ``generate(n, seed)`` for any ``k <= n``.  Within one example the draws are, in order:
  ``n_obj``, the polarity, the background level, then per object its type, its grey level and its
  geometry tries (6 uniforms per try).

Public API: :data:`N_CLASSES`, :data:`CLASS_NAMES`, :func:`generate`; helpers used by the tests
and handy for inspection: :func:`shape_vertices`, :func:`rasterize`, :func:`sample_scene`,
:func:`render`, :func:`scene_label`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SIZE",
    "KIND_NAMES",
    "MAX_TRIES",
    "N_CLASSES",
    "N_INPUTS",
    "Scene",
    "ShapeObject",
    "generate",
    "rasterize",
    "render",
    "sample_scene",
    "scene_label",
    "shape_vertices",
]

IMAGE_SIZE = 32
N_INPUTS = IMAGE_SIZE * IMAGE_SIZE
N_CLASSES = 9
MAX_TRIES = 50
MARGIN = 1.0
MIN_SCALE, MAX_SCALE = 0.2, 0.8  # fractions of IMAGE_SIZE
MAX_OVERLAP = 0.5  # fraction of the smaller object's pixel area
DARK_RANGE = (0.0, 0.45)
LIGHT_RANGE = (0.55, 1.0)

TRIANGLE, PARALLELOGRAM, ELLIPSE = 0, 1, 2
KIND_NAMES: tuple[str, ...] = ("triangle", "parallelogram", "ellipse")
N_VERTICES: tuple[int, ...] = (3, 4, 20)

CLASS_NAMES: tuple[str, ...] = (
    "triangle",
    "parallelogram",
    "ellipse",
    "triangle+parallelogram",
    "parallelogram+ellipse",
    "triangle+ellipse",
    "triangle+triangle",
    "parallelogram+parallelogram",
    "ellipse+ellipse",
)

# Unordered pair of kinds -> class index for two-object images.
_PAIR_CLASS: dict[frozenset[int], int] = {
    frozenset((TRIANGLE, PARALLELOGRAM)): 3,
    frozenset((PARALLELOGRAM, ELLIPSE)): 4,
    frozenset((TRIANGLE, ELLIPSE)): 5,
    frozenset((TRIANGLE,)): 6,
    frozenset((PARALLELOGRAM,)): 7,
    frozenset((ELLIPSE,)): 8,
}

# Regular n-gons of radius 0.5 around the origin, counter-clockwise, shape (n, 2).
_BASE_POLYGONS: tuple[np.ndarray, ...] = tuple(
    0.5 * np.stack([np.cos(a), np.sin(a)], axis=1)
    for a in (2.0 * np.pi * np.arange(n) / n for n in N_VERTICES)
)

# Homogeneous pixel-centre coordinates, rows (x, y, 1), shape (3, 1024), row-major pixel order.
_rows, _cols = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
_GRID: np.ndarray = np.stack([_cols.ravel() + 0.5, _rows.ravel() + 0.5, np.ones(N_INPUTS)], axis=0).astype(
    np.float64
)
del _rows, _cols


def _halfplanes(vertices: np.ndarray) -> np.ndarray:
    """Rows A_i with A_i @ (x, y, 1) >= 0 iff (x, y) is on the inner side of edge i of a convex
    counter-clockwise polygon: A_i = (-e_y, e_x, e_y v_x - e_x v_y), e_i = v_(i+1) - v_i."""
    e = np.roll(vertices, -1, axis=0) - vertices
    return np.stack([-e[:, 1], e[:, 0], e[:, 1] * vertices[:, 0] - e[:, 0] * vertices[:, 1]], axis=1)


_BASE_HALFPLANES: tuple[np.ndarray, ...] = tuple(_halfplanes(p) for p in _BASE_POLYGONS)


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: its kind (0/1/2), polygon vertices (n, 2) in (x, y) pixel coordinates,
    grey level in [0, 1], and its rasterised mask (flat bool array of length 1024)."""

    kind: int
    vertices: np.ndarray
    grey: float
    mask: np.ndarray


@dataclass(frozen=True)
class Scene:
    """A sampled image: background grey level in [0, 1], the objects actually drawn (back to front),
    and how many objects were requested before the overlap rule possibly dropped one."""

    background: float
    objects: tuple[ShapeObject, ...]
    n_requested: int


def shape_vertices(
    kind: int,
    s0: float,
    s1: float,
    prerot: float = 0.0,
    rot: float = 0.0,
    cx: float = 0.0,
    cy: float = 0.0,
) -> np.ndarray:
    """Vertices (n, 2), counter-clockwise in (x, y), of ``R(rot) diag(s0, s1) R(prerot) P + (cx, cy)``
    where ``P`` is the regular n-gon of radius 0.5 for ``kind`` (0 triangle, 1 parallelogram,
    2 ellipse).  Its area is ``s0 * s1 * (n / 8) * sin(2 pi / n)``."""
    m = _transform(s0, s1, prerot, rot)
    return _BASE_POLYGONS[kind] @ m.T + np.array([cx, cy])


def _transform(s0: float, s1: float, prerot: float, rot: float) -> np.ndarray:
    c0, n0 = math.cos(prerot), math.sin(prerot)
    c1, n1 = math.cos(rot), math.sin(rot)
    # diag(s0, s1) @ R(prerot)
    a, b, c, d = s0 * c0, -s0 * n0, s1 * n0, s1 * c0
    # R(rot) @ that
    return np.array([[c1 * a - n1 * c, c1 * b - n1 * d], [n1 * a + c1 * c, n1 * b + c1 * d]])


def rasterize(vertices: np.ndarray) -> np.ndarray:
    """Bool mask (32, 32), indexed [row, col], of the pixels whose centre lies in the convex polygon
    ``vertices`` (n, 2) given in (x, y) = (column, row) pixel coordinates, either orientation."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
        raise ValueError(f"vertices must have shape (n >= 3, 2), got {v.shape}")
    x, y = v[:, 0], v[:, 1]
    signed_area2 = float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    if signed_area2 < 0:
        v = v[::-1]
    return ((_halfplanes(v) @ _GRID).min(axis=0) >= 0.0).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _sample_geometry(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """Random placement of one shape of ``kind`` from 6 uniforms (pre-rotation, two scales,
    rotation, two translation fractions); returns its vertices (n, 2) and flat mask (1024,)."""
    u = rng.random(6)
    sa = (MIN_SCALE + (MAX_SCALE - MIN_SCALE) * u[1]) * IMAGE_SIZE
    sb = (MIN_SCALE + (MAX_SCALE - MIN_SCALE) * u[2]) * IMAGE_SIZE
    s0, s1 = (sa, sb) if sa >= sb else (sb, sa)
    m = _transform(s0, s1, 2.0 * math.pi * u[0], 2.0 * math.pi * u[3])
    v = _BASE_POLYGONS[kind] @ m.T
    lo = MARGIN - v.min(axis=0)
    hi = IMAGE_SIZE - MARGIN - v.max(axis=0)
    t = lo + u[4:6] * (hi - lo)
    # Pull the half-planes of the base polygon back through the affine map q = m p + t (det m > 0,
    # so orientation and the sign of every half-plane test are preserved): p = m^-1 (q - t).
    (a, b), (c, d) = m
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    tx, ty = float(t[0]), float(t[1])
    inv = np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)], [0.0, 0.0, 1.0]])
    mask = (_BASE_HALFPLANES[kind] @ inv @ _GRID).min(axis=0) >= 0.0
    return v + t, mask


def _grey(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * float(rng.random())


def sample_scene(rng: np.random.Generator, max_tries: int = MAX_TRIES) -> Scene:
    """Draw one Shapeset-3x2 scene from ``rng`` (see the module docstring for the recipe).

    ``max_tries`` is the number of placements tried for the second object before it is dropped."""
    n_obj = 1 + int(rng.integers(2))
    dark_background = bool(rng.random() < 0.5)
    bg_range, obj_range = (DARK_RANGE, LIGHT_RANGE) if dark_background else (LIGHT_RANGE, DARK_RANGE)
    background = _grey(rng, bg_range)
    objects: list[ShapeObject] = []
    for i in range(n_obj):
        kind = int(rng.integers(3))
        grey = _grey(rng, obj_range)
        if i == 0:
            v, mask = _sample_geometry(rng, kind)
            objects.append(ShapeObject(kind, v, grey, mask))
            continue
        first = objects[0].mask
        n_first = int(np.count_nonzero(first))
        for _ in range(max_tries):
            v, mask = _sample_geometry(rng, kind)
            inter = int(np.count_nonzero(first & mask))
            if inter <= MAX_OVERLAP * min(n_first, int(np.count_nonzero(mask))):
                objects.append(ShapeObject(kind, v, grey, mask))
                break
    return Scene(background, tuple(objects), n_obj)


def scene_label(scene: Scene) -> int:
    """Class index (0..8) of the objects actually drawn in ``scene``, ignoring their order."""
    kinds = [o.kind for o in scene.objects]
    if len(kinds) == 1:
        return kinds[0]
    if len(kinds) == 2:
        return _PAIR_CLASS[frozenset(kinds)]
    raise ValueError(f"a scene holds 1 or 2 objects, got {len(kinds)}")


def render(scene: Scene) -> np.ndarray:
    """Flat float64 image (1024,) in [0, 1]: background, then the objects painted back to front."""
    img = np.full(N_INPUTS, scene.background)
    for o in scene.objects:
        img[o.mask] = o.grey
    return img


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return X float32 of shape (n, 1024) with values in [-1, 1] and y int64 of shape (n,).

    Deterministic in ``(n, seed)``; all examples come from one ``default_rng(seed)`` stream in
    order, so ``generate(k, seed)`` is the first ``k`` rows of ``generate(n, seed)``."""
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    x = np.empty((n, N_INPUTS), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        scene = sample_scene(rng)
        x[i] = render(scene)
        y[i] = scene_label(scene)
    x *= 2.0
    x -= 1.0
    return x, y
