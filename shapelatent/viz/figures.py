"""Matplotlib figures written headlessly (Agg): loss curves and point-cloud comparisons.

Points are drawn with Y up (matplotlib's vertical axis), seen from the front-left and above with the same
camera as the mesh renders of ``shapelatent.viz.meshplot``, coloured by height.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.io.atomic import atomic_write_bytes

__all__ = ["plot_loss_curve", "plot_point_grid", "save_figure", "short_label"]


def short_label(item_id: str, width: int = 22) -> str:
    """A picture-sized label for an item id: its last ``/`` or ``#`` segment, cut to ``width`` characters."""
    tail = item_id.replace("\\", "/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] or item_id
    return tail if len(tail) <= width else tail[: width - 1] + "…"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_loss_curve(history: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Train loss and validation Chamfer per epoch (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_chamfer"] for h in history], label="train Chamfer", marker=".")
    if any(h.get("val_chamfer") is not None for h in history):
        ax.plot(epochs, [h.get("val_chamfer") for h in history], label="validation Chamfer", marker=".")
    if any(abs(h["train_loss"] - h["train_chamfer"]) > 1e-12 for h in history):
        ax.plot(epochs, [h["train_loss"] for h in history], label="train loss (with normals)", ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Chamfer (squared L2, sum of means)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("Training curve")
    return save_figure(fig, path)


def _scatter(ax, points: np.ndarray, size: float) -> None:
    # Same camera as shapelatent.viz.meshplot: data (x, y, z) with Y up -> matplotlib (x, -z, y), seen from
    # the front-left and above, orthographic.
    ax.scatter(
        points[:, 0], -points[:, 2], points[:, 1], c=points[:, 1], cmap="viridis", s=size, linewidths=0, depthshade=True
    )
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_zlim(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    ax.set_proj_type("ortho")
    ax.view_init(elev=22, azim=-125)
    ax.set_axis_off()


def plot_point_grid(
    rows: Sequence[Sequence[np.ndarray]],
    path: str | os.PathLike[str],
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    point_size: float = 1.5,
    title: str | None = None,
) -> Path:
    """A grid of point clouds, e.g. inputs in one column and reconstructions in the next.

    Args:
        rows: rows of clouds, each (P, 3) float, in normalised coordinates (about [-1, 1]).
        path: PNG to write.
        row_titles: one label per row.
        col_titles: one label per column.
    """
    plt = _pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = plt.figure(figsize=(2.6 * n_cols, 2.6 * n_rows))
    for r, row in enumerate(rows):
        for c, pts in enumerate(row):
            ax = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1, projection="3d")
            _scatter(ax, np.asarray(pts), point_size)
            if r == 0 and col_titles:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_titles:
                ax.text2D(
                    -0.02, 0.5, row_titles[r], transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=10
                )
    if title:
        fig.suptitle(title, y=1.0 + 0.12 / n_rows, fontsize=12)
    fig.subplots_adjust(wspace=0.0, hspace=0.08)
    return save_figure(fig, path)
