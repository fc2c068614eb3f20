"""Checkpoints as safetensors (tensors) + JSON metadata. Nothing is ever unpickled.

A training checkpoint holds the model weights (``model.*``), the optimizer's tensors
(``optim.<param index>.<name>``) and, in the safetensors metadata, the format name and version,
the run config, the optimizer's param groups and the training state (epoch, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from shapelatent import __version__
from shapelatent.errors import CheckpointError
from shapelatent.io.atomic import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "shapelatent-checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint(NamedTuple):
    """A loaded checkpoint.

    Attributes:
        model_state: the model's ``state_dict``.
        optim_state: an optimizer ``state_dict`` or None (weights-only files).
        config: the run config as a dict.
        state: training state (epoch, best validation loss, ...).
    """

    model_state: dict[str, torch.Tensor]
    optim_state: dict[str, Any] | None
    config: dict[str, Any]
    state: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    config: dict[str, Any],
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a checkpoint atomically (a crash never leaves a half-written file)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, str] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_VERSION),
        "shapelatent_version": __version__,
        "config": json.dumps(config),
        "state": json.dumps(state),
    }
    if optimizer is not None:
        osd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in osd["state"].items():
            for name, value in pstate.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[name] = value
        meta["optim_param_groups"] = json.dumps(osd["param_groups"])
        meta["optim_scalars"] = json.dumps(scalars)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a safetensors file, truncated, not a shapelatent checkpoint, or of a
            newer format version.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such checkpoint file.")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{p}: not a readable safetensors checkpoint ({exc}); the file is truncated, corrupt, or not a "
            "shapelatent checkpoint (pickled .pt/.pth files are never loaded)."
        ) from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{p}: a safetensors file but not a shapelatent checkpoint (metadata format={meta.get('format')!r}); "
            "train a model with `shapelatent train`."
        )
    version = int(meta.get("format_version", "0"))
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint format version {version} is newer than this shapelatent reads "
            f"({CHECKPOINT_VERSION}); upgrade shapelatent."
        )
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optim_state = None
    if "optim_param_groups" in meta:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        for pid, scalars in json.loads(meta.get("optim_scalars", "{}")).items():
            state.setdefault(int(pid), {}).update(scalars)
        optim_state = {"state": state, "param_groups": json.loads(meta["optim_param_groups"])}
    return Checkpoint(
        model_state, optim_state, json.loads(meta.get("config", "{}")), json.loads(meta.get("state", "{}"))
    )
