"""Explicit, recorded per-shape normalisation.

Conventions: Y is up and the front of a shape faces +Z (as Sweet Home 3D models come). Normalisation
translates and scales uniformly; it never rotates, so proportions and orientation are kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CENTERS", "SCALES", "Normalization", "NormalizedCloud"]

#: ``bbox``: centre of the axis-aligned bounding box; ``mean``: centroid of the points.
CENTERS = ("bbox", "mean")
#: ``unit_sphere``: farthest point at distance 1 from the centre;
#: ``unit_diagonal``: bounding-box diagonal of length 1.
SCALES = ("unit_sphere", "unit_diagonal")


class NormalizedCloud(NamedTuple):
    """Result of :meth:`Normalization.apply`.

    Attributes:
        points: (P, 3) float32 normalised points, ``(raw - center) / scale``.
        center: (3,) float64 centre that was subtracted.
        scale: the divisor (> 0).
    """

    points: np.ndarray
    center: np.ndarray
    scale: float


@dataclass(frozen=True)
class Normalization:
    """How each shape is centred and scaled before it reaches the model.

    The same object is stored in ``dataset.json`` and in every model config, and applied identically
    when new shapes are encoded.
    """

    center: str = "bbox"
    scale: str = "unit_sphere"

    def __post_init__(self) -> None:
        if self.center not in CENTERS:
            raise ValueError(f"normalization center must be one of {CENTERS}; got {self.center!r}")
        if self.scale not in SCALES:
            raise ValueError(f"normalization scale must be one of {SCALES}; got {self.scale!r}")

    def apply(self, points: np.ndarray) -> NormalizedCloud:
        """Normalise one cloud.

        Args:
            points: (P, 3) float array, finite, P >= 1.
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
            raise ValueError(f"points must have shape (P, 3) with P >= 1; got {pts.shape}")
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        center = (lo + hi) / 2.0 if self.center == "bbox" else pts.mean(axis=0)
        if self.scale == "unit_sphere":
            scale = float(np.sqrt(((pts - center) ** 2).sum(axis=1).max()))
        else:
            scale = float(np.linalg.norm(hi - lo))
        if not scale > 0:
            raise ValueError("all points coincide; a shape with zero extent cannot be normalised")
        return NormalizedCloud(((pts - center) / scale).astype(np.float32), center, scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`."""
        return cls(center=str(data["center"]), scale=str(data["scale"]))
