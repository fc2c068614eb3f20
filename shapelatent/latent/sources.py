"""The points of a store item, recovered from its recorded source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shapelatent.data.build import SamplingConfig, sample_file

__all__ = ["source_points"]


def source_points(source: str, cls: str, cfg: SamplingConfig) -> np.ndarray | None:
    """Re-sample an item from its ``source``: a mesh/point file, or ``procedural:<seed>`` (regenerated from the seed
    and its family ``cls``).

    Returns:
        (P, 3) float32 points normalised by ``cfg``, or None when the source cannot be found on this machine.
    """
    if source.startswith("procedural:"):
        from shapelatent.data.procedural import FAMILIES, generate_chair
        from shapelatent.data.sampling import sample_surface

        seed = source.split(":", 1)[1]
        if not (seed.isdigit() and cls in FAMILIES):
            return None
        chair = generate_chair(int(seed), cls)
        cloud = sample_surface(chair.mesh, cfg.num_points, seed=cfg.seed, oversample=cfg.oversample)
        return cfg.normalization.apply(cloud.points).points
    if Path(source).is_file():
        return sample_file(source, cfg, seed=cfg.seed).points
    return None
