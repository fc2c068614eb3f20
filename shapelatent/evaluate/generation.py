"""The generation rows of ``evaluate``: the scale before the metrics, and the l-GMM codes delivered as meshes.

:func:`evaluate_run` scores the l-GMM codes three ways: the decoded points; through the occupancy head (implicit
mesh, then P area-weighted surface samples, :func:`implicit_generation`); and as Poisson meshes of the decoded
points, sampled the same way (:func:`meshed_generation`). Mesh generators (IM-NET, Occupancy Networks) are scored on
point-cloud metrics the same way: the surface is sampled as the reference clouds were sampled from their meshes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from shapelatent.data.format import ShapeDataset
from shapelatent.evaluate.config import EvalConfig, Progress
from shapelatent.models.load import LoadedModel

__all__ = [
    "IMPLICIT_GENERATION_RESOLUTION",
    "generation_scale",
    "implicit_generation",
    "meshed_generation",
    "staged",
    "unscale",
]

logger = logging.getLogger(__name__)

IMPLICIT_GENERATION_RESOLUTION = 128  # MISE grid of the implicit generation row


def staged(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """A ``(done, total)`` callback that reports to ``progress`` under ``stage``."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def generation_scale(ds: ShapeDataset, normalize: str) -> float:
    """Global scale of both sets before the generation metrics with ``normalize="none"``.

    JSD's occupancy grid spans the sphere of radius 0.5 (latent_3d_points' "unit sphere" has diameter 1);
    clouds normalised to ``unit_sphere`` (radius 1) are halved for it. ``unit_diagonal`` clouds already fit.
    """
    scale = ((ds.info.get("sampling") or {}).get("normalization") or {}).get("scale")
    return 0.5 if normalize == "none" and scale == "unit_sphere" else 1.0


def unscale(metrics: dict[str, float], s: float) -> dict[str, float]:
    """MMD back in the dataset's units (CD is squared: / s^2; EMD: / s); COV, 1-NNA and JSD do not scale."""
    out = dict(metrics)
    if "MMD-CD" in out:
        out["MMD-CD"] /= s * s
    if "MMD-EMD" in out:
        out["MMD-EMD"] /= s
    return out


def _surface_metrics(
    clouds: np.ndarray, ev_pts: np.ndarray, s: float, gen_kwargs: dict[str, Any], progress: Progress | None, stage: str
) -> dict[str, float]:
    """Generation metrics of clouds sampled from meshes (MMD back in the dataset's units)."""
    from shapelatent.metrics import generation_metrics, jsd_notes_to_log

    with jsd_notes_to_log(logger):
        metrics = generation_metrics(clouds * s, ev_pts * s, progress=staged(progress, stage), **gen_kwargs)
    return unscale(metrics, s)


def _oversample(ds: ShapeDataset) -> int | None:
    """The dataset's farthest-point ``oversample`` (None: plain area sampling)."""
    return (ds.info.get("sampling") or {}).get("oversample")


def _sampling_note(ds: ShapeDataset) -> str:
    oversample = _oversample(ds)
    return "area_weighted" + (f", farthest-point from {oversample}" if oversample else "")


def implicit_generation(
    loaded: LoadedModel,
    codes: np.ndarray,
    ev_pts: np.ndarray,
    ds: ShapeDataset,
    config: EvalConfig,
    s: float,
    gen_kwargs: dict[str, Any],
    progress: Progress | None,
) -> dict[str, Any] | None:
    """The same l-GMM codes through the occupancy head: implicit mesh, then P area-weighted surface samples.

    Returns the generation metrics with ``n`` (clouds scored), ``empty`` (codes without a surface, left out),
    ``resolution`` and ``sampling``; None when every code came out empty.
    """
    from shapelatent.evaluate.meshes import implicit_surface_samples

    clouds, empty = implicit_surface_samples(
        loaded.model,
        codes,
        ds.num_points,
        oversample=_oversample(ds),
        resolution=IMPLICIT_GENERATION_RESOLUTION,
        seed=config.seed,
        progress=staged(progress, "generation: implicit meshes"),
    )
    if len(clouds) == 0:
        logger.info("implicit generation: every l-GMM code gave an empty level set; the row is left out")
        return None
    return {
        "n": len(clouds),
        "empty": len(empty),
        "resolution": IMPLICIT_GENERATION_RESOLUTION,
        "sampling": _sampling_note(ds),
        **_surface_metrics(clouds, ev_pts, s, gen_kwargs, progress, "generation: implicit samples"),
    }


def meshed_generation(
    loaded: LoadedModel,
    codes: np.ndarray,
    ev_pts: np.ndarray,
    ds: ShapeDataset,
    config: EvalConfig,
    s: float,
    gen_kwargs: dict[str, Any],
    progress: Progress | None,
) -> dict[str, Any] | None:
    """The same l-GMM codes decoded to points, meshed by Poisson (as ``sample --mesher poisson`` delivers them),
    then P area-weighted surface samples (:func:`shapelatent.evaluate.meshes.poisson_surface_samples`).

    Returns the generation metrics with ``n`` (clouds scored), ``failed`` (clouds Poisson could not mesh, left
    out) and ``sampling``; None when none could be meshed.
    """
    from shapelatent.evaluate.meshes import poisson_surface_samples
    from shapelatent.latent.decode import decode_codes

    pts, nrm = decode_codes(loaded, codes)
    clouds, failed = poisson_surface_samples(
        pts,
        nrm,
        ds.num_points,
        oversample=_oversample(ds),
        seed=config.seed,
        progress=staged(progress, "generation: Poisson meshes"),
    )
    if len(clouds) == 0:
        logger.info("meshed generation: Poisson meshed none of the decoded l-GMM samples; the row is left out")
        return None
    return {
        "n": len(clouds),
        "failed": len(failed),
        "mesher": "poisson",
        "sampling": _sampling_note(ds),
        **_surface_metrics(clouds, ev_pts, s, gen_kwargs, progress, "generation: meshed samples"),
    }
