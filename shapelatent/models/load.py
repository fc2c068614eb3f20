"""Load a trained model from a run folder or a checkpoint file."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from shapelatent.errors import CheckpointError
from shapelatent.models.pointnet import ModelConfig, PointCloudAutoencoder
from shapelatent.pretrained import resolve_model_path
from shapelatent.train.checkpoint import load_checkpoint

__all__ = ["LoadedModel", "load_model"]


class LoadedModel(NamedTuple):
    """A model ready for inference, with what it was trained on.

    Attributes:
        model: the autoencoder in eval mode, on the CPU.
        config: the stored checkpoint config (``run`` and ``data`` sections).
        sampling: the training data's sampling/normalisation dict (apply it to new shapes).
    """

    model: PointCloudAutoencoder
    config: dict[str, Any]
    sampling: dict[str, Any] | None


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load ``RUN/model.safetensors`` (or ``RUN/checkpoints/last.safetensors``), a checkpoint file, or a shipped model
    by name (``furniture``; see :mod:`shapelatent.pretrained`).

    Raises:
        FileNotFoundError: nothing to load at ``path``.
        CheckpointError: the file is not a shapelatent checkpoint or does not match its config.
    """
    p = resolve_model_path(path)
    if p.is_dir():
        for cand in (p / "model.safetensors", p / "checkpoints" / "last.safetensors"):
            if cand.exists():
                p = cand
                break
        else:
            raise FileNotFoundError(
                f"{path}: no model.safetensors or checkpoints/last.safetensors; is it a run folder?"
            )
    ckpt = load_checkpoint(p)
    try:
        mcfg = ModelConfig.from_dict(dict(ckpt.config["run"]["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: the checkpoint's model config is missing or invalid ({exc}).") from exc
    model = PointCloudAutoencoder(mcfg)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: weights do not match the stored model config ({exc}).") from exc
    model.eval()
    auto = ckpt.config.get("auto_mesher")
    if auto is not None:
        from shapelatent.latent.implicit_mesh import IMPLICIT
        from shapelatent.meshing.reconstruct import MESHERS

        if auto not in (IMPLICIT, *MESHERS) or (auto == "implicit" and not model.has_implicit):
            raise CheckpointError(f"{p}: auto_mesher {auto!r} in its config is not a mesher this model can use.")
        model.auto_mesher = str(auto)
    threshold = ckpt.config.get("implicit_threshold")
    if threshold is not None:
        if not model.has_implicit or isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise CheckpointError(f"{p}: implicit_threshold {threshold!r} in its config needs a head and a number.")
        model.implicit_threshold = float(threshold)
    return LoadedModel(model, ckpt.config, (ckpt.config.get("data") or {}).get("sampling"))
