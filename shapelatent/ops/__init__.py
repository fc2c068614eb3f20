"""Geometric operators with a plain-PyTorch reference beside every fast backend."""

from shapelatent.ops.chamfer import (
    BACKENDS,
    ChamferResult,
    available_backends,
    chamfer_distance,
    chamfer_reference,
    nearest_neighbors,
)

__all__ = [
    "BACKENDS",
    "ChamferResult",
    "available_backends",
    "chamfer_distance",
    "chamfer_reference",
    "nearest_neighbors",
]
