"""The latent map figure: projected codes coloured by class, with point-cloud thumbnails of a few shapes.

Drawn headlessly with matplotlib (Agg), never with ``viewers/``. Colours come from a fixed qualitative palette
given to the classes in sorted name order, so the same store always gets the same colours; a class named
``other`` is grey, items without a class are light grey. Points are drawn in one seeded random order (not class
by class), so no class hides the others where they overlap.

Thumbnails sit in a frame of slots around the map, each joined to its point by a thin leader line. Shapes are
matched to slots by a minimum-total-length assignment, which never crosses two leader lines. A thumbnail
is part of this 2-D figure: the points projected orthographically from the front-left and above (Y up,
:func:`view_2d`), in their class colour, darker further away.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.io.atomic import atomic_write_bytes

__all__ = [
    "OTHER_CLASS",
    "PALETTE",
    "UNLABELLED",
    "Thumbnail",
    "class_colours",
    "plot_latent_map",
    "spread_indices",
    "view_2d",
]

#: Qualitative palette (Tableau 10 without its grey, then the Tableau 20 dark and light tones), in the order
#: given to classes sorted by name. Grey is kept for ``other`` and unlabelled items.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
    "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
OTHER_CLASS = "other"
UNLABELLED = "(no class)"
_GREYS = {OTHER_CLASS: "#7f7f7f", UNLABELLED: "#c7c7c7"}
_MARKERS = ("o", "s", "^", "D", "v", "P")  # classes beyond the palette cycle its colours with another marker

# Layout, in inches.
_AX_W, _AX_H = 6.4, 5.2
_THUMB, _GAP = 1.2, 0.1
_M_LEFT, _M_BOTTOM, _M_TOP, _M_RIGHT = 0.72, 0.5, 0.12, 0.12  # room for ticks and axis labels
_TITLE_H, _PAD = 0.5, 0.18


@dataclass(frozen=True)
class Thumbnail:
    """A shape drawn beside the map.

    Attributes:
        row: the row of ``coords`` (and ``classes``) the shape belongs to.
        points: (P, 3) float points, normalised (about [-1, 1]), Y up.
        label: a short caption (e.g. the item id).
    """

    row: int
    points: np.ndarray
    label: str


def class_colours(classes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The colour and marker of every class, in legend order.

    Args:
        classes: class names (repeats allowed).

    Returns:
        ``{class: (colour, marker)}``: the classes sorted by name take ``PALETTE`` in order (a 24th class starts
        over with squares, and so on), then ``other`` in grey and ``UNLABELLED`` in light grey when present.
    """
    names = sorted({str(c) for c in classes} - set(_GREYS))
    out = {c: (PALETTE[i % len(PALETTE)], _MARKERS[(i // len(PALETTE)) % len(_MARKERS)]) for i, c in enumerate(names)}
    for name, grey in _GREYS.items():
        if name in set(classes):
            out[name] = (grey, "o")
    return out


def spread_indices(coords: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows spread over the map: farthest-point sampling from a seeded random first row.

    Args:
        coords: (N, D) float map coordinates.
        n: rows to pick (at most N).
        seed: picks the first row; the same seed gives the same rows.

    Returns:
        (min(n, N),) int64 row indices, in the order picked.
    """
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"coords must be (N, D) with N >= 1; got shape {x.shape}")
    n = int(min(max(n, 0), len(x)))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    picked = [int(np.random.default_rng(seed).integers(len(x)))]
    dist = np.linalg.norm(x - x[picked[0]], axis=1)  # (N,) distance to the nearest picked row
    for _ in range(n - 1):
        nxt = int(dist.argmax())
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return np.asarray(picked, dtype=np.int64)


def view_2d(points: np.ndarray, elev: float = 22.0, azim: float = -125.0) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic view of a Y-up cloud from the front-left and above (elevation 22, azimuth -125 degrees).

    Args:
        points: (P, 3) float, Y up, front +Z.

    Returns:
        (P, 2) screen coordinates (right, up) and (P,) depth towards the viewer.
    """
    p = np.asarray(points, dtype=np.float64)
    x, y, z = p[:, 0], -p[:, 2], p[:, 1]  # matplotlib's 3-D frame: Z up
    a, e = np.radians(azim), np.radians(elev)
    right = -np.sin(a) * x + np.cos(a) * y
    up = -np.cos(a) * np.sin(e) * x - np.sin(a) * np.sin(e) * y + np.cos(e) * z
    depth = np.cos(a) * np.cos(e) * x + np.sin(a) * np.cos(e) * y + np.sin(e) * z
    return np.stack([right, up], axis=1), depth


def _marker_size(n: int) -> float:
    return float(np.clip(300.0 / np.sqrt(max(n, 1)), 3.0, 40.0))


def _slots(fig_w: float, ax_box: tuple[float, float, float, float]) -> np.ndarray:
    """Centres (inches) of the thumbnail slots around the axes box (x0, y0, x1, y1): (S, 2)."""
    x0, y0, x1, y1 = ax_box
    step = _THUMB + _GAP
    lo, hi = _PAD + _THUMB / 2, fig_w - _PAD - _THUMB / 2
    cols = np.linspace(lo, hi, int((hi - lo) // step) + 1)
    bottom_y = y0 - _M_BOTTOM - _GAP - _THUMB / 2
    top_y = y1 + _M_TOP + _GAP + _THUMB / 2
    rows = np.linspace(y0 + _THUMB / 2, y1 - _THUMB / 2, int((y1 - y0 - _THUMB) // step) + 1)
    left_x = x0 - _M_LEFT - _GAP - _THUMB / 2
    right_x = x1 + _M_RIGHT + _GAP + _THUMB / 2
    slots = [(c, top_y) for c in cols] + [(c, bottom_y) for c in cols]
    slots += [(left_x, r) for r in rows] + [(right_x, r) for r in rows]
    return np.asarray(slots, dtype=np.float64)


def _draw_thumbnail(fig, rect: tuple[float, float, float, float], thumb: Thumbnail, colour: str) -> None:
    from matplotlib.colors import to_rgb

    ax = fig.add_axes(rect, zorder=3)
    pts = np.asarray(thumb.points, dtype=np.float64)
    if len(pts) > 1500:  # enough to read the shape; keeps the PNG small
        pts = pts[np.linspace(0, len(pts) - 1, 1500).astype(np.int64)]
    xy, depth = view_2d(pts)
    order = np.argsort(depth)  # far first (painter's order)
    near = (depth[order] - depth.min()) / max(np.ptp(depth), 1e-9)  # 0 far .. 1 near
    shade = (0.45 + 0.55 * near)[:, None]
    rgb = np.clip(np.asarray(to_rgb(colour))[None] * shade + (1 - shade) * 0.15, 0, 1)
    ax.scatter(xy[order, 0], xy[order, 1], s=float(np.clip(1650 / len(pts), 1.1, 4.0)), c=rgb, linewidths=0)
    ax.set_xlim(-1.08, 1.08)
    ax.set_ylim(-1.36, 1.08)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("white")
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(1.3)
    ax.text(0.5, 0.02, thumb.label, transform=ax.transAxes, ha="center", va="bottom", fontsize=7.5, color="#333")


def plot_latent_map(
    coords: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    axis_labels: Sequence[str],
    title: str,
    caption: str,
    thumbnails: Sequence[Thumbnail] = (),
    show_ticks: bool = True,
    seed: int = 0,
    dpi: int = 150,
) -> tuple[Path, tuple[int, int]]:
    """Draw projected codes coloured by class, with a legend, a caption and optional thumbnails; write a PNG.

    Args:
        coords: (N, D) float map coordinates, D = 2 or 3 (3 gives a 3-D scatter).
        classes: N class names (``UNLABELLED`` for items without one).
        path: PNG to write (atomically; its folder is created).
        axis_labels: D axis labels, e.g. ``PC1 (23.1% var)``.
        title: the title above the map.
        caption: the text under the map (wrapped to the figure width).
        thumbnails: shapes to draw around the map (at most as many as there are slots: 24 or so; the rest are
            left out).
        show_ticks: tick labels on the axes (meaningless for t-SNE and UMAP).
        seed: the order points are drawn in.
        dpi: resolution.

    Returns:
        The path written and the image size (width, height) in pixels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from scipy.optimize import linear_sum_assignment

    xy = np.asarray(coords, dtype=np.float64)
    labels = np.asarray([str(c) for c in classes], dtype=object)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3) or len(xy) == 0:
        raise ValueError(f"coords must be (N, 2) or (N, 3) with N >= 1; got shape {xy.shape}")
    if len(labels) != len(xy) or len(axis_labels) != xy.shape[1]:
        raise ValueError(
            f"got {len(labels)} classes and {len(axis_labels)} axis labels for coords of shape {xy.shape}; "
            "give one class per row and one label per column."
        )
    dims = xy.shape[1]
    palette = class_colours(list(labels))
    counts = {c: int((labels == c).sum()) for c in palette}
    entries = [f"{c} ({counts[c]})" for c in palette]
    leg_w = float(np.clip(0.6 + 0.08 * max(len(e) for e in entries), 1.4, 3.6))
    leg_cols = 1 if len(entries) <= 26 else 2
    band = _THUMB + _GAP if thumbnails else 0.0
    x0 = _PAD + band + _M_LEFT
    fig_w = x0 + _AX_W + _M_RIGHT + band + 0.2 + leg_w * leg_cols
    wrap = max(40, int((fig_w - 2 * _PAD) * 13.0))
    text = caption.replace(" = ", "\u00a0=\u00a0")  # keep 'name = value' on one line
    cap_lines = textwrap.wrap(text, wrap, break_on_hyphens=False)
    cap_h = 0.24 + 0.21 * len(cap_lines)
    y0 = cap_h + band + _M_BOTTOM
    fig_h = y0 + _AX_H + _M_TOP + band + _TITLE_H
    box = (x0, y0, x0 + _AX_W, y0 + _AX_H)

    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    rect = (x0 / fig_w, y0 / fig_h, _AX_W / fig_w, _AX_H / fig_h)
    ax: Any = fig.add_axes(rect, projection="3d" if dims == 3 else None, zorder=1)  # Axes or Axes3D
    order = np.random.default_rng(seed).permutation(len(xy))
    colours = np.asarray([palette[c][0] for c in labels], dtype=object)
    size = _marker_size(len(xy))
    edge = 0.3 if len(xy) <= 2000 else 0.0
    style: dict[str, Any] = {"s": size, "linewidths": edge, "edgecolors": "white", "alpha": 0.9}
    for marker in dict.fromkeys(m for _, m in palette.values()):  # one call per marker, seeded order within
        sel = order[np.asarray([palette[labels[i]][1] == marker for i in order], dtype=bool)]
        cols = list(colours[sel])
        if dims == 3:
            ax.scatter(xy[sel, 0], xy[sel, 1], xy[sel, 2], c=cols, marker=marker, depthshade=True, **style)
        else:
            ax.scatter(xy[sel, 0], xy[sel, 1], c=cols, marker=marker, **style)
    for i, name in enumerate(axis_labels):
        getattr(ax, f"set_{'xyz'[i]}label")(name, fontsize=11, labelpad=10 if dims == 3 else 4)
    if dims == 2:
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_axisbelow(True)
    else:
        ax.view_init(elev=20, azim=-60)
    if not show_ticks:
        ax.tick_params(labelbottom=False, labelleft=False, length=0)
        if dims == 3:
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
    ax.tick_params(labelsize=9)

    handles = [
        Line2D([], [], ls="", marker=m, color=col, markeredgecolor="white", markersize=7.5)
        for col, m in palette.values()
    ]
    fig.legend(
        handles,
        entries,
        loc="upper left",
        bbox_to_anchor=((x0 + _AX_W + _M_RIGHT + band + 0.2) / fig_w, (y0 + _AX_H) / fig_h),
        frameon=False,
        fontsize=10,
        ncols=leg_cols,
        title="class (items)",
        title_fontsize=10,
        alignment="left",
        handletextpad=0.3,
        borderaxespad=0.0,
    )
    fig.text(0.5, 1 - 0.32 / fig_h, title, ha="center", va="center", fontsize=14, weight="bold")
    fig.text(_PAD / fig_w, (cap_h - 0.12) / fig_h, "\n".join(cap_lines), ha="left", va="top", fontsize=10,
             color="#222", linespacing=1.35)  # fmt: skip

    if thumbnails:
        fig.canvas.draw()  # fixes the data limits (equal aspect) and the 3-D projection
        rows = np.asarray([t.row for t in thumbnails], dtype=np.int64)
        if dims == 3:
            from mpl_toolkits.mplot3d import proj3d

            px, py, _ = proj3d.proj_transform(xy[rows, 0], xy[rows, 1], xy[rows, 2], ax.get_proj())
            display = ax.transData.transform(np.stack([px, py], axis=1))
        else:
            display = ax.transData.transform(xy[rows])
        targets = display / dpi  # (T, 2) inches
        slots = _slots(fig_w, box)
        keep = min(len(thumbnails), len(slots))
        cost = np.linalg.norm(targets[:keep, None, :] - slots[None, :, :], axis=2)  # (T, S)
        t_idx, s_idx = linear_sum_assignment(cost)
        for t, s in zip(t_idx, s_idx, strict=True):
            thumb, (cx, cy), (tx, ty) = thumbnails[t], slots[s], targets[t]
            colour = palette[labels[thumb.row]][0]
            fig.add_artist(
                Line2D([cx / fig_w, tx / fig_w], [cy / fig_h, ty / fig_h], transform=fig.transFigure,
                       color="#444", lw=0.6, alpha=0.8, zorder=2)
            )  # fmt: skip
            fig.add_artist(
                Line2D([tx / fig_w], [ty / fig_h], transform=fig.transFigure, ls="", marker="o", markersize=6.5,
                       markerfacecolor="none", markeredgecolor="#111", markeredgewidth=1.0, zorder=2.5)
            )  # fmt: skip
            half = _THUMB / 2
            _draw_thumbnail(fig, ((cx - half) / fig_w, (cy - half) / fig_h, _THUMB / fig_w, _THUMB / fig_h),
                            thumb, colour)  # fmt: skip

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    data = buf.getvalue()
    size_px = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))  # the PNG's IHDR
    return atomic_write_bytes(path, data), size_px
