"""The reconstruction rows of an evaluation: per-shape Chamfer and EMD, test-time refined codes, the oracle ratio.

:func:`pairwise_metrics` scores clouds against their references (Chamfer as PyTorch3D and latent_3d_points:
squared distances, mean per direction, summed; EMD per point); :func:`refined_reconstruction` refines each code
with the decoder frozen (DeepSDF-style inference, :mod:`shapelatent.latent.refine`) and scores its decoded cloud;
:func:`ratio_to_nearest` compares a row with the nearest-training-shape oracle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from shapelatent.evaluate.config import EvalConfig, Progress
from shapelatent.latent.decode import decode_codes
from shapelatent.models.load import LoadedModel
from shapelatent.ops.chamfer import chamfer_distance

__all__ = ["CHUNK", "decode_clouds", "pairwise_metrics", "ratio_to_nearest", "refined_reconstruction", "summary"]

CHUNK = 64  # clouds per decode / per-shape metric batch (and per progress update)


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values))}


def decode_clouds(loaded: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """(N, Z) codes -> (N, P, 3) float32 clouds, decoded in chunks."""
    parts = [decode_codes(loaded, codes[s : s + CHUNK])[0] for s in range(0, len(codes), CHUNK)]
    return np.concatenate(parts).astype(np.float32)


def pairwise_metrics(
    x: np.ndarray, y: np.ndarray, config: EvalConfig, stage: str, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair Chamfer and EMD of (M, P, 3) x[i] against (M, P, 3) y[i]; (M,) float64 each."""
    from shapelatent.metrics import emd

    cds, emds = [], []
    for start in range(0, len(x), CHUNK):
        a = torch.from_numpy(np.require(x[start : start + CHUNK], np.float32, ["C", "W"]))
        b = torch.from_numpy(np.require(y[start : start + CHUNK], np.float32, ["C", "W"]))
        with torch.no_grad():
            res = chamfer_distance(
                a.to(config.device), b.to(config.device), reduction="none", backend=config.chamfer_backend
            )
        cds.append(res.loss.double().cpu().numpy())
        emds.append(np.asarray(emd(a, b, method=config.emd_method), dtype=np.float64))
        if progress is not None:
            progress(stage, min(start + CHUNK, len(x)), len(x))
    return np.concatenate(cds), np.concatenate(emds)


def ratio_to_nearest(cd: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
    """Reconstruction Chamfer against the nearest-training-shape oracle: ratio of means, mean/median of ratios."""
    per = np.asarray(cd, np.float64) / np.maximum(np.asarray(oracle, np.float64), 1e-12)
    return {
        "of_means": float(np.mean(cd) / max(float(np.mean(oracle)), 1e-12)),
        "mean": float(per.mean()),
        "median": float(np.median(per)),
    }


def refined_reconstruction(
    loaded: LoadedModel,
    model_path: str | os.PathLike[str],
    ev_pts: np.ndarray,
    ev_codes: np.ndarray,
    config: EvalConfig,
    progress: Progress | None,
) -> dict[str, Any]:
    """The reconstruction row from test-time refined codes (:func:`shapelatent.latent.refine.refine_codes`).

    Each evaluated shape's encoder code is refined for ``config.refine`` Adam steps towards the shape's own
    points (the decoder frozen; DeepSDF-style inference), then decoded and scored like the model row.
    """
    from shapelatent.latent.refine import refine_codes

    stage = f"refinement ({config.refine} steps)"
    report = None if progress is None else _counter(progress, stage, len(ev_pts))
    model = loaded.model.to(config.device)
    try:
        res = refine_codes(
            model,
            ev_pts,
            ev_codes,
            config.refine,
            lr=config.refine_lr,
            backend=config.chamfer_backend,
            progress=report,
            model_name=str(model_path),
        )
    finally:
        loaded.model.to("cpu")
    cd, emd = pairwise_metrics(decode_clouds(loaded, res.codes), ev_pts, config, "reconstruction: refined", progress)
    return {
        "cd": summary(cd),
        "emd": summary(emd),
        "steps": int(config.refine),
        "lr": float(config.refine_lr),
        "seconds_per_shape": float(res.seconds_per_shape),
        "per_shape_cd": cd,
    }


def _counter(progress: Progress, stage: str, total: int) -> Callable[[int], None]:
    """A ``progress(n more done)`` callback that reports the running count to ``progress`` under ``stage``."""
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(stage, done, total)

    return step
