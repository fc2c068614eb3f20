"""Pretrained models shipped inside the package, addressed by name (``--model furniture``).

Each model is a folder ``shapelatent/pretrained/<name>/`` holding ``model.safetensors`` (weights stored as
float16 to keep the wheel small; they load into the float32 model), its dataset card ``CARD.md``, the data's
``ATTRIBUTION.md`` and its evaluation (``evaluation.json``/``evaluation.md``). A name is used only when no file or
folder of that name exists, so a local run folder called ``furniture`` still wins.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRETRAINED", "pretrained_dir", "resolve_model_path"]

_ROOT = Path(__file__).resolve().parent

PRETRAINED: dict[str, str] = {
    "furniture": "PointNet AE (Z=128, P=2048, decoded normals) trained on the Sweet Home 3D furniture build "
    "(336 models, 11 classes)",
}


def pretrained_dir(name: str) -> Path:
    """The folder of a shipped model.

    Raises:
        KeyError: no shipped model of that name (the message lists the names).
        FileNotFoundError: the name is known but its weights are missing from this installation.
    """
    if name not in PRETRAINED:
        raise KeyError(f"no pretrained model {name!r}; shipped models: {sorted(PRETRAINED)}")
    folder = _ROOT / name
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(
            f"{folder / 'model.safetensors'}: the pretrained model {name!r} is missing from this installation; "
            "reinstall shapelatent (pip install --force-reinstall shapelatent)."
        )
    return folder


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A run folder, checkpoint file or shipped model name -> a path on disk.

    An existing file or folder is returned unchanged; otherwise a bare name of a shipped model (see
    :data:`PRETRAINED`) resolves to its folder. Anything else is returned unchanged, so the caller's
    "not found" error names what the user typed.
    """
    p = Path(path)
    if p.exists() or str(path) not in PRETRAINED:
        return p
    return pretrained_dir(str(path))
