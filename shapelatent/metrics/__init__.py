"""Evaluation metrics: EMD (exact and auction), distance matrices, generation metrics, latent-code metrics.

Imports stay light: numba, scipy and scikit-learn load when a function first needs them.
"""

from shapelatent.metrics.emd import EMD_METHODS, AuctionResult, emd, emd_auction, emd_matching
from shapelatent.metrics.generation import (
    GENERATION_METRICS,
    NORMALIZATIONS,
    coverage,
    generation_metrics,
    jsd,
    mmd,
    normalize_clouds,
    one_nna,
)
from shapelatent.metrics.latent import precision_at_k, svm_accuracy
from shapelatent.metrics.pairwise import pairwise_chamfer, pairwise_emd
from shapelatent.ops.chamfer import chamfer_distance

__all__ = [
    "EMD_METHODS",
    "GENERATION_METRICS",
    "NORMALIZATIONS",
    "AuctionResult",
    "chamfer_distance",
    "coverage",
    "emd",
    "emd_auction",
    "emd_matching",
    "generation_metrics",
    "jsd",
    "mmd",
    "normalize_clouds",
    "one_nna",
    "pairwise_chamfer",
    "pairwise_emd",
    "precision_at_k",
    "svm_accuracy",
]
