"""The latent map's pure parts, with no window and no Open3D: class colours, the 3-D PCA, the tour, the key state
and the scene layout. :mod:`viewers.map_view` draws them (and re-exports every name here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "GREY",
    "GREY_CLASSES",
    "SHAPE_SCALE",
    "MapLayout",
    "MapPCA",
    "MapState",
    "class_palette",
    "fit_map_pca",
    "latent_order",
    "map_layout",
    "map_tour",
]

logger = logging.getLogger(__name__)

GREY = (0.62, 0.62, 0.62)
GREY_CLASSES = ("", "other")
SHAPE_SCALE = 0.6  # shapes come normalised to the unit sphere; panels are 1.2 units wide


def class_palette(classes: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """``{class: (r, g, b)}`` in [0, 1] for class names (repeats allowed): the colours of the 2-D map
    (:func:`shapelatent.viz.latentmap.class_colours`: sorted names take its palette in order), so a class has the
    same colour in ``shapelatent map`` and in the viewer; '' and 'other' are grey."""
    from matplotlib.colors import to_rgb

    from shapelatent.viz.latentmap import PALETTE, class_colours

    present = {str(c) for c in classes}
    names = sorted(present - set(GREY_CLASSES))
    if len(names) > len(PALETTE):
        logger.warning("%d classes but %d palette colours: colours repeat", len(names), len(PALETTE))
    table = class_colours(names)
    colors = {n: to_rgb(table[n][0]) for n in names}
    colors.update({g: GREY for g in GREY_CLASSES if g in present})
    return colors


@dataclass(frozen=True)
class MapPCA:
    """A 3-D PCA fitted on codes, kept so that other codes (interpolation steps) land on the same map.

    Attributes:
        mean: (Z,) float64 mean code.
        axes: (3, Z) float64 orthonormal principal axes (zero rows when Z < 3); each axis's largest loading is
            positive, as in :func:`shapelatent.latent.project.project_codes`.
        center: (3,) float64 centre of the projected codes' bounding box.
        scale: half the longest side of that box; map = (projection - center) / scale lies in [-1, 1]^3.
        explained: (3,) float64 fraction of the variance along each axis.
    """

    mean: np.ndarray
    axes: np.ndarray
    center: np.ndarray
    scale: float
    explained: np.ndarray

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """Map coordinates of codes: (B, Z) float -> (B, 3) float32 (the fitted codes fill [-1, 1]^3)."""
        x = np.asarray(codes, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"codes must be (B, {len(self.mean)}); got shape {x.shape}")
        return (((x - self.mean) @ self.axes.T - self.center) / self.scale).astype(np.float32)


def fit_map_pca(codes: np.ndarray) -> MapPCA:
    """Fit :class:`MapPCA` on (N, Z) float codes, N >= 2 and finite (else ValueError naming the fix)."""
    from shapelatent.latent.project import fit_pca

    mean, axes, explained = fit_pca(codes, 3)  # (Z,), (3, Z), (3,)
    x = np.asarray(codes, dtype=np.float64)
    proj = (x - mean) @ axes.T  # (N, 3)
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    half = float((hi - lo).max()) / 2
    return MapPCA(mean, axes, (lo + hi) / 2, half if half > 0 else 1.0, explained)


def map_tour(coords: np.ndarray) -> np.ndarray:
    """The order Right/Left walk (N, 3) float map ``coords`` in: (N,) int64, a permutation of range(N) that starts at
    the smallest first coordinate and then goes to the nearest unvisited item each time (ties: the lowest row)."""
    from scipy.spatial import cKDTree

    x = np.asarray(coords, dtype=np.float64)
    n = len(x)
    tree = cKDTree(x)
    order = np.empty(n, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    cur = int(np.argmin(x[:, 0])) if n else 0
    for j in range(n):
        order[j] = cur
        visited[cur] = True
        k = min(16, n)
        while j + 1 < n:  # widen the search until it holds every unvisited item at the nearest distance
            d, idx = tree.query(x[cur], k=k)
            free = ~visited[idx]
            if free.any() and (k == n or d[-1] > d[free].min()):
                cur = int(idx[free & (d == d[free].min())].min())
                break
            k = min(2 * k, n)
    return order


def latent_order(codes: np.ndarray, i: int) -> np.ndarray:
    """Rows of (N, Z) ``codes`` but ``i``, nearest to ``codes[i]`` first (Euclidean; ties by row): (N-1,) int64."""
    x = np.asarray(codes, dtype=np.float64)
    d = ((x - x[i]) ** 2).sum(axis=1)  # (N,)
    order = np.argsort(d, kind="stable")
    return order[order != i].astype(np.int64)


class MapState:
    """What the keys change: the selection, the latent-neighbour jump and the A/B endpoints (no window needed).

    Args:
        codes: (N, Z) float codes of the shown items.
        tour: (N,) int64 from :func:`map_tour`.
    """

    def __init__(self, codes: np.ndarray, tour: np.ndarray) -> None:
        self.codes = np.asarray(codes)
        self.tour = np.asarray(tour, dtype=np.int64)
        self.pos = np.empty(len(self.tour), dtype=np.int64)  # (N,) place of each row on the tour
        self.pos[self.tour] = np.arange(len(self.tour))
        self.selected = int(self.tour[0])
        self.anchor: int | None = None  # where the current run of jumps started
        self.rank = 0  # the selection is the anchor's rank-th nearest neighbour (0: the anchor itself)
        self._order: np.ndarray | None = None
        self.a: int | None = None  # the endpoints, rows of codes
        self.b: int | None = None

    def step(self, d: int) -> None:
        """Move d items along the tour (wrapping around); ends a run of jumps."""
        self.selected = int(self.tour[(self.pos[self.selected] + d) % len(self.tour)])
        self.anchor, self.rank, self._order = None, 0, None

    def jump(self, d: int) -> None:
        """Go to the anchor's next (d=+1) or previous (d=-1) nearest neighbour in latent space."""
        if self.anchor is None or self._order is None:
            self.anchor = self.selected
            self._order = latent_order(self.codes, self.anchor)
        order = self._order  # (N - 1,) the anchor's neighbours, nearest first
        self.rank = int(np.clip(self.rank + d, 0, len(order)))
        self.selected = self.anchor if self.rank == 0 else int(order[self.rank - 1])

    def mark(self, which: str) -> None:
        """Make the selection endpoint ``'a'`` or ``'b'``."""
        setattr(self, which, self.selected)

    def clear(self) -> None:
        """Forget both endpoints."""
        self.a = self.b = None

    @property
    def line(self) -> tuple[int, int] | None:
        """(A, B) rows when both are marked and differ, else None."""
        return (self.a, self.b) if self.a is not None and self.b is not None and self.a != self.b else None


class MapLayout(NamedTuple):
    """Where things go in the scene (x right, y up, z towards the viewer; the map is the cube [-1, 1]^3).

    Attributes:
        shape: (3,) centre of the selected item's true shape.
        recon: (3,) centre of its reconstruction.
        shape_scale: scale of those two (shapes come normalised to the unit sphere).
        steps: (S, 3) centres of the interpolation steps, left to right.
        step_scale: scale of an interpolation step.
        legend: (3,) top-left corner of the class legend.
        frames: ``{"legend", "map", "shapes", "steps", "keys"}`` -> (2, 2) float [[x0, y0], [x1, y1]] rectangles
            that do not overlap; the panels' titles hang below their top edge.
    """

    shape: np.ndarray
    recon: np.ndarray
    shape_scale: float
    steps: np.ndarray
    step_scale: float
    legend: np.ndarray
    frames: dict[str, np.ndarray]


def map_layout(steps: int) -> MapLayout:
    """The scene layout: legend left of the map, true shape and reconstruction right of it, S steps in a row below."""
    if isinstance(steps, bool) or int(steps) < 2:
        raise ValueError(f"an interpolation needs steps >= 2 (both ends included); got {steps!r}")
    frames = {
        "legend": np.array([[-2.5, -1.0], [-1.15, 1.0]]),
        "map": np.array([[-1.0, -1.0], [1.0, 1.0]]),
        "shapes": np.array([[1.2, -0.8], [4.0, 1.3]]),
        "steps": np.array([[-1.0, -2.8], [4.0, -1.2]]),
        "keys": np.array([[-2.5, -2.8], [-1.15, -1.2]]),
    }
    (x0, _), (x1, _) = frames["steps"]
    step_scale = min(0.5, 0.42 * (x1 - x0) / steps)
    xs = x0 + (x1 - x0) * (np.arange(steps) + 0.5) / steps
    row = np.stack([xs, np.full(steps, -2.05), np.zeros(steps)], axis=1)
    sh, rec = np.array([1.9, 0.15, 0.0]), np.array([3.3, 0.15, 0.0])
    return MapLayout(sh, rec, SHAPE_SCALE, row, float(step_scale), np.array([-2.5, 1.0, 0.0]), frames)
