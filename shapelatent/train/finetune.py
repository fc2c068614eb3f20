"""Start a training run from another model's weights (fine-tuning): ``train(..., init_from=RUN)``.

The new run keeps the source's architecture and takes its weights as the starting point; everything else is new:
a fresh optimiser, the new run's learning rate, schedule and epoch count (epoch 0 of the new run), its loss terms
and augmentation. This is how a schedule in stages is run (e.g. Chamfer first, then Chamfer + EMD against point
bunching: README, "Fine-tuning") and how the shipped model is adapted to a user's own data.

Checked before anything is written: the source loads (a run folder, a checkpoint file or a shipped model's name),
its model config equals the new run's (same latent size, decoder, points, head), and the dataset was sampled and
normalised as the source's training data was (the codes would mean something else otherwise).
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from typing import Any

import torch

from shapelatent.data.format import ShapeDataset
from shapelatent.errors import CheckpointError
from shapelatent.pretrained import resolve_model_path
from shapelatent.train.config import RunConfig

__all__ = ["initial_weights"]


def initial_weights(
    init_from: str | os.PathLike[str], config: RunConfig | None, ds: ShapeDataset
) -> tuple[dict[str, torch.Tensor], RunConfig, dict[str, Any]]:
    """The source model's weights, the run config to train with, and what to record about the source.

    Args:
        init_from: a run folder, a checkpoint file, or a shipped model's name (``furniture``).
        config: the new run's config; None takes the source's model config with default training settings.
        ds: the dataset the new run trains on.

    Returns:
        (state dict, config whose model is the source's (``num_points`` from ``ds`` as ``train`` does), record
        ``{"path", "model_config", "data"}`` for the run's config.json).

    Raises:
        CheckpointError: nothing loadable at ``init_from``, or its model config differs from ``config.model``
            (the message names the differing fields).
        DatasetFormatError: ``ds`` was sampled or normalised differently from the source's training data.
    """
    from shapelatent.latent.encode import check_dataset_matches
    from shapelatent.models.load import load_model

    try:
        loaded = load_model(init_from)
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{init_from}: nothing to start from ({exc}); pass a run folder or a model name."
        ) from exc
    src = loaded.model.config
    if config is None:
        config = RunConfig(model=src)
    want = replace(config.model, num_points=ds.num_points)
    if want != src:
        a, b = asdict(src), asdict(want)
        diff = ", ".join(f"{k} {a[k]!r} (this run: {b[k]!r})" for k in a if a[k] != b.get(k))
        raise CheckpointError(
            f"{init_from}: its model differs from this run's: {diff}. Fine-tuning keeps the architecture: pass the "
            "source's model options (or none: `shapelatent train --init-from` takes them from the source)."
        )
    check_dataset_matches(loaded, ds, init_from, use="Fine-tune on")
    record = {
        "path": str(resolve_model_path(init_from).resolve()),  # a shipped name: its folder
        "model_config": asdict(src),
        "data": (loaded.config.get("data") or {}).get("path"),
    }
    return loaded.model.state_dict(), RunConfig(model=want, train=config.train), record
