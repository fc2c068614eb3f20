"""Evaluation metrics: EMD (exact and auction), distance matrices, generation, latent-code and mesh metrics.

Imports stay light: numba, scipy and scikit-learn load when a function first needs them.
"""

from shapelatent.metrics.emd import EMD_METHODS, AuctionResult, emd, emd_auction, emd_matching
from shapelatent.metrics.generation import (
    GENERATION_METRICS,
    NORMALIZATIONS,
    coverage,
    generation_metrics,
    jsd,
    jsd_notes_to_log,
    mmd,
    normalize_clouds,
    one_nna,
)
from shapelatent.metrics.latent import precision_at_k, svm_accuracy
from shapelatent.metrics.mesh import (
    FScore,
    MeshMetrics,
    chamfer_l1,
    fscore,
    inside_mesh,
    is_closed,
    mesh_metrics,
    nearest_distances,
    normal_consistency,
    volume_iou,
)
from shapelatent.metrics.pairwise import pairwise_chamfer, pairwise_emd
from shapelatent.ops.chamfer import chamfer_distance

__all__ = [
    "EMD_METHODS",
    "GENERATION_METRICS",
    "NORMALIZATIONS",
    "AuctionResult",
    "FScore",
    "MeshMetrics",
    "chamfer_distance",
    "chamfer_l1",
    "coverage",
    "emd",
    "emd_auction",
    "emd_matching",
    "fscore",
    "generation_metrics",
    "inside_mesh",
    "is_closed",
    "jsd",
    "jsd_notes_to_log",
    "mesh_metrics",
    "mmd",
    "nearest_distances",
    "normalize_clouds",
    "normal_consistency",
    "one_nna",
    "pairwise_chamfer",
    "pairwise_emd",
    "precision_at_k",
    "svm_accuracy",
    "volume_iou",
]
