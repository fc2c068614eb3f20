"""Matplotlib figures written headlessly (Agg): the loss curve, and the short labels pictures use.

Pictures of 3-D shapes are not drawn here but by ``viewers`` (see :mod:`shapelatent.viz.drawer`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapelatent.io.atomic import atomic_write_bytes

__all__ = ["plot_implicit_curve", "plot_loss_curve", "save_figure", "short_label"]


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


def plot_implicit_curve(history: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Occupancy-head training: train BCE (log scale, left) and validation IoU (right) per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_bce"] for h in history], label="train BCE", marker=".", color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("binary cross-entropy")
    ax.grid(alpha=0.3, which="both")
    if any(h.get("val_iou") is not None for h in history):
        ax2 = ax.twinx()
        ax2.plot(epochs, [h.get("val_iou") for h in history], label="validation IoU", marker=".", color="tab:orange")
        ax2.set_ylabel("IoU (uniform queries)")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right")
    ax.legend(loc="upper right")
    ax.set_title("Occupancy head")
    return save_figure(fig, path)


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
