"""Options, definitions and checks of an evaluation (:class:`EvalConfig`, :func:`check_dataset_matches`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.data.format import SPLITS
from shapelatent.latent.encode import check_dataset_matches
from shapelatent.latent.refine import DEFAULT_LR

__all__ = [
    "CHAMFER_DEFINITION",
    "EMD_DEFINITION",
    "EVAL_FORMAT",
    "EVAL_VERSION",
    "EvalConfig",
    "Evaluation",
    "Progress",
    "check_dataset_matches",
    "default_out",
]

EVAL_FORMAT = "shapelatent-evaluation"
EVAL_VERSION = 1
CHAMFER_DEFINITION = (
    "squared L2, mean over the points of each cloud, the two directions summed (as PyTorch3D and latent_3d_points)"
)
EMD_DEFINITION = (
    "per point: mean Euclidean (not squared) distance between matched points under the optimal one-to-one "
    "matching of two P-point clouds"
)

#: ``progress(stage, done, total)``: the CLI turns it into a progress bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how (the CLI options of ``shapelatent evaluate``).

    Attributes:
        split: evaluated split (``train``, ``val`` or ``test``).
        classes: restrict every step (evaluated shapes, training shapes, codes) to these classes; None: all.
        emd_method: ``shapelatent.metrics.EMD_METHODS`` (``auction`` or ``exact``).
        normalize: ``shapelatent.metrics.NORMALIZATIONS``, applied to both sets of the generation metrics.
        samples: l-GMM samples to draw (default: as many as evaluated shapes).
        seed: seeds the barycentre, the l-GMM, the training subset and the interpolation pairs.
        device: torch device for the model and the Chamfer searches.
        k: neighbours of class precision@k.
        barycenter_steps: Adam steps of the Chamfer barycentre (the mean training shape).
        mesh_shapes: evaluated shapes whose meshes (implicit, Poisson on decoded points, Poisson on the true points)
            are compared with the true source mesh (``shapelatent.evaluate.meshes``); 0 skips the mesh metrics.
        archives: Sweet Home 3D libraries the dataset was built from (their rows name the archive only).
        implicit_generation: when the model has an occupancy head, also score the l-GMM codes through it
            (implicit mesh, then P area-weighted surface samples per code; about 1 s per sample on 2 cores).
        meshed_generation: also score the l-GMM codes as the meshes ``sample --mesher poisson`` delivers: decoded
            points meshed by Poisson, then P area-weighted surface samples per code (about 0.5 s per sample on 2
            cores).
        refine: also reconstruct every evaluated shape from its code refined for this many Adam steps with the
            decoder frozen (:func:`shapelatent.latent.refine.refine_codes`, learning rate ``refine_lr``); 0 skips.
            The refined codes serve only that row: every other figure uses the encoder's codes.
        The other fields tune the steps (batch sizes, l-GMM, barycentre, interpolation pairs, pictures).
    """

    split: str = "test"
    classes: tuple[str, ...] | None = None
    emd_method: str = "auction"
    normalize: str = "none"
    samples: int | None = None
    seed: int = 0
    device: str = "cpu"
    k: int = 5
    batch_size: int = 64
    chamfer_backend: str = "auto"
    gmm_components: int = 32
    gmm_covariance: str = "full"
    barycenter_steps: int = 200
    barycenter_lr: float = 5e-3
    barycenter_batch: int = 64
    medoid_subset: int = 64
    interpolation_pairs: int = 10
    interpolation_steps: int = 8
    num_sample_pictures: int = 8
    mesh_shapes: int = 16
    archives: tuple[str, ...] = ()
    implicit_generation: bool = True
    meshed_generation: bool = True
    refine: int = 0
    refine_lr: float = DEFAULT_LR

    def validate(self) -> None:
        """Check the options against their allowed values (raises ``ValueError`` naming the option)."""
        from shapelatent.metrics import EMD_METHODS, NORMALIZATIONS

        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.emd_method not in EMD_METHODS:
            raise ValueError(f"--emd-method must be one of {', '.join(EMD_METHODS)}; got {self.emd_method!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}; got {self.normalize!r}")
        if self.samples is not None and self.samples < 2:
            raise ValueError(f"--samples must be at least 2 (1-NNA needs two samples); got {self.samples}")
        if self.barycenter_steps < 0:
            raise ValueError(f"--barycenter-steps must be >= 0; got {self.barycenter_steps}")
        if self.refine < 0:
            raise ValueError(f"--refine must be >= 0 (Adam steps; 0 skips refinement); got {self.refine}")
        if not self.refine_lr > 0:
            raise ValueError(f"--refine-lr must be > 0; got {self.refine_lr}")
        if self.k < 1:
            raise ValueError(f"--k must be at least 1; got {self.k}")
        if self.classes is not None and not self.classes:
            raise ValueError("--classes is empty; give a comma-separated list such as chair,table, or leave it out")


class Evaluation(NamedTuple):
    """An evaluation ready to write.

    Attributes:
        result: the JSON record (``evaluation.json``).
        samples: (S, P, 3) float32 decoded l-GMM samples.
        sample_titles: S picture titles (index and nearest training class).
    """

    result: dict[str, Any]
    samples: np.ndarray
    sample_titles: list[str]


def default_out(model_path: str | os.PathLike[str]) -> Path:
    """``RUN/eval`` for a run folder or a file inside it (``RUN/model.safetensors``, ``RUN/checkpoints/*``)."""
    p = Path(model_path)
    if p.is_dir():
        return p / "eval"
    run = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return run / "eval"
