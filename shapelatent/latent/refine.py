"""Test-time code refinement: optimise a shape's code, decoder frozen, to fit its points better.

The encoder maps a cloud to a code in one forward pass (amortised inference); the code it gives is good but not
the best the decoder can do for that cloud. Refinement starts from the encoder's code and runs Adam on the code
alone, with every weight frozen, to lower the Chamfer distance between the decoded cloud and the input points.
This is the inference of an auto-decoder (DeepSDF: J. J. Park, P. Florence, J. Straub, R. Newcombe, S. Lovegrove,
"DeepSDF: Learning Continuous Signed Distance Functions for Shape Representation", CVPR 2019, Sec. 4.2: at
inference the code is estimated by gradient descent on the reconstruction loss with the network fixed), started
from the encoder's code instead of a random one, since our autoencoder has an encoder. DeepSDF's prior pulls the
code towards zero (|z|^2); ours, optional, pulls it towards the encoder's code.

Per shape, for ``steps`` Adam steps on the code ``z`` (started at the encoder's ``z0``)::

    loss(z) = chamfer(decode(z), points) + prior * |z - z0|^2

Chamfer is the project's (:func:`shapelatent.ops.chamfer.chamfer_distance`: squared distances, mean per
direction, the two directions summed, as PyTorch3D). The code with the lowest Chamfer seen at any step (the start
included) is kept, so refinement never makes a shape worse than the encoder's code. Shapes are refined in
batches; each shape's loss and Adam state are its own, so a shape's result does not depend on its batch.

Defaults (:data:`DEFAULT_STEPS`, :data:`DEFAULT_LR`, :data:`DEFAULT_PRIOR`) were chosen on the Sweet Home 3D
test split with the shipped ``furniture`` model on a 2-core CPU (``bench/refine.py``; README "Test-time
refinement"): 100 steps at lr 0.1 halve the mean Chamfer (0.0120 -> 0.0061) at 0.22 s per shape in batches, well
under the 2 s per shape budget; more steps gain little (200: 0.0060). ``prior`` (an L2 pull towards the encoder's
code, which keeps the refined code near the codes the encoder makes, e.g. for retrieval against a store of encoder
codes) is off by default: at 1e-5 it shortens the move of the codes from 8.5 to 5.3 (|z| ~ 37) for 2% more
Chamfer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from shapelatent.errors import CheckpointError

if TYPE_CHECKING:
    import os

    from shapelatent.models.load import LoadedModel

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_PRIOR",
    "DEFAULT_STEPS",
    "RefineResult",
    "RefineSettings",
    "load_for_refinement",
    "refine_codes",
    "refine_summary",
    "require_decoder",
]

#: Adam steps that keep refinement well under 2 s per shape on 2 CPU cores (``bench/refine.py``).
DEFAULT_STEPS = 100
#: Adam learning rate on the codes (codes of the shipped model have per-entry std ~1.3).
DEFAULT_LR = 0.1
#: Weight of the L2 pull ``|z - z0|^2`` towards the encoder's code; 0 = none.
DEFAULT_PRIOR = 0.0
#: Shapes refined together (one decoder/Chamfer batch); larger batches use the cores better.
DEFAULT_BATCH = 64

#: ``progress(n)``: n more shapes were refined.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RefineSettings:
    """How codes are refined (what a store records for its refined codes).

    Attributes:
        steps: Adam steps per shape (>= 0; 0 only measures the Chamfer of the start codes).
        lr: Adam learning rate (> 0).
        prior: weight of ``|z - z0|^2`` in the loss (>= 0).
        batch_size: shapes per batch (>= 1); does not change the result.
        backend: Chamfer backend (:data:`shapelatent.ops.chamfer.BACKENDS` or ``"auto"``).
    """

    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    prior: float = DEFAULT_PRIOR
    batch_size: int = DEFAULT_BATCH
    backend: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"refinement steps (--refine) must be an integer >= 0; got {self.steps!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"refinement learning rate (--refine-lr) must be a finite number > 0; got {self.lr!r}")
        if not (isinstance(self.prior, int | float) and math.isfinite(self.prior) and self.prior >= 0):
            raise ValueError(f"refinement prior (--refine-prior) must be a finite number >= 0; got {self.prior!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"refinement batch size must be an integer >= 1; got {self.batch_size!r}")

    @property
    def key(self) -> str:
        """A short readable name of the settings that change the result, e.g. ``steps=100;lr=0.1;prior=0.0``."""
        return f"steps={self.steps};lr={float(self.lr)!r};prior={float(self.prior)!r}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the method and its reference."""
        return {
            "method": "adam on the code, decoder frozen, best Chamfer kept",
            "reference": "Park et al. 2019, DeepSDF (auto-decoder inference), from the encoder's code",
            "steps": self.steps,
            "lr": float(self.lr),
            "prior": float(self.prior),
            "batch_size": self.batch_size,
            "backend": self.backend,
        }

    def run(
        self,
        model: torch.nn.Module,
        points: np.ndarray,
        codes: np.ndarray,
        *,
        progress: Progress | None = None,
        model_name: str = "the model",
    ) -> RefineResult:
        """:func:`refine_codes` with these settings."""
        return refine_codes(
            model,
            points,
            codes,
            self.steps,
            lr=self.lr,
            prior=self.prior,
            batch_size=self.batch_size,
            backend=self.backend,
            progress=progress,
            model_name=model_name,
        )


class RefineResult(NamedTuple):
    """Refined codes and what refinement gained.

    Attributes:
        codes: (N, Z) float32, the refined codes (per shape, the best seen; the start code when nothing was better).
        chamfer_before: (N,) float64, Chamfer of each start code's decoded cloud to its points.
        chamfer_after: (N,) float64, the same for the refined codes (never above ``chamfer_before``).
        seconds_per_shape: wall time of the refinement divided by N.
        settings: :meth:`RefineSettings.to_dict` of the settings used.
    """

    codes: np.ndarray
    chamfer_before: np.ndarray
    chamfer_after: np.ndarray
    seconds_per_shape: float
    settings: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """:func:`refine_summary` of this result."""
        return refine_summary([self])


_FIX = (
    "test-time refinement optimises the code through the decoder, so it needs the full autoencoder: pass the run "
    "folder (its model.safetensors or checkpoints/last.safetensors) of a trained model, or leave out --refine."
)


def refine_summary(results: Sequence[RefineResult]) -> dict[str, Any]:
    """Mean Chamfer before and after, their ratio and seconds per shape over several refinement results.

    Returns:
        ``{shapes, chamfer_before, chamfer_after, ratio, seconds_per_shape, settings}`` (means over
        all shapes; ``ratio`` is after/before); all None but ``shapes`` for no results.
    """
    n = sum(len(r.codes) for r in results)
    if n == 0:
        return dict.fromkeys(("chamfer_before", "chamfer_after", "ratio", "seconds_per_shape", "settings"), None) | {
            "shapes": 0
        }
    before = float(np.concatenate([r.chamfer_before for r in results]).mean())
    after = float(np.concatenate([r.chamfer_after for r in results]).mean())
    return {
        "shapes": n,
        "chamfer_before": before,
        "chamfer_after": after,
        "ratio": after / before if before > 0 else None,
        "seconds_per_shape": sum(r.seconds_per_shape * len(r.codes) for r in results) / n,
        "settings": results[0].settings,
    }


def require_decoder(model: torch.nn.Module, model_name: str = "the model") -> torch.nn.Module:
    """The model's decoder, checked to have finite weights.

    Raises:
        CheckpointError: the model has no decoder (an encoder-only module), a decoder without weights, or
            non-finite decoder weights; the message names ``model_name`` and the fix.
    """
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, torch.nn.Module) or not list(decoder.parameters()):
        raise CheckpointError(f"{model_name}: the model has no decoder weights; {_FIX}")
    if not all(bool(torch.isfinite(p).all()) for p in decoder.parameters()):
        raise CheckpointError(f"{model_name}: the model's decoder weights are not finite (NaN or inf); {_FIX}")
    return decoder


def load_for_refinement(model_path: str | os.PathLike[str], refine: RefineSettings | None) -> LoadedModel:
    """:func:`shapelatent.models.load.load_model`, and with ``refine``, a check that the decoder can be refined.

    Raises:
        CheckpointError: as ``load_model``; with ``refine``, a checkpoint without (finite) decoder weights gets a
            message that says refinement needs them (:func:`require_decoder`).
    """
    from shapelatent.models.load import load_model

    try:
        loaded = load_model(model_path)
    except CheckpointError as exc:
        if refine is not None and "decoder." in str(exc):  # load_state_dict names the missing decoder.* tensors
            raise CheckpointError(
                f"{model_path}: the checkpoint has no usable decoder weights ({exc}); {_FIX}"
            ) from exc
        raise
    if refine is not None:
        require_decoder(loaded.model, str(model_path))
    return loaded


def _check_inputs(model: torch.nn.Module, points: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points)
    z = np.asarray(codes)
    if pts.ndim != 3 or pts.shape[2] != 3 or pts.shape[1] == 0:
        raise ValueError(f"points must be an (N, P, 3) array of point clouds; got shape {pts.shape}")
    latent = getattr(getattr(model, "config", None), "latent_dim", None)
    if z.ndim != 2 or len(z) != len(pts) or (latent is not None and z.shape[1] != latent):
        want = f"({len(pts)}, {latent if latent is not None else 'Z'})"
        raise ValueError(f"codes must have shape {want}, one per cloud; got {z.shape}")
    pts = pts.astype(np.float32, copy=False)
    z = z.astype(np.float32, copy=False)
    if not (np.isfinite(pts).all() and np.isfinite(z).all()):
        raise ValueError("points and codes must be finite (no NaN or inf)")
    return pts, z


def _decode_points(model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """(B, Z) -> decoded (B, P, 3), through ``model.decode`` when it has one, else ``model.decoder``."""
    decode: Any = getattr(model, "decode", None)
    if decode is not None:
        return decode(z).points
    out = require_decoder(model)(z)
    return out[0] if isinstance(out, tuple) else out


def _refine_batch(
    model: torch.nn.Module,
    target: torch.Tensor,
    z0: torch.Tensor,
    settings: RefineSettings,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Refine one batch: target (B, P, 3), z0 (B, Z) -> best codes (B, Z), Chamfer before (B,), best Chamfer (B,)."""
    from shapelatent.ops.chamfer import chamfer_distance

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=settings.lr)
    best_z = z0.clone()
    best_cd = torch.full((len(z0),), float("inf"), dtype=torch.float64, device=z0.device)
    before: torch.Tensor | None = None
    for step in range(settings.steps + 1):  # the last pass only scores the final code
        cd = chamfer_distance(_decode_points(model, z), target, reduction="none", backend=settings.backend).loss  # (B,)
        cd_now = cd.detach().double()
        if before is None:
            before = cd_now.clone()
        better = cd_now < best_cd  # (B,); strict: the earlier code keeps a tie
        best_cd = torch.where(better, cd_now, best_cd)
        best_z = torch.where(better[:, None], z.detach(), best_z)
        if step == settings.steps:
            break
        loss = cd.sum()
        if settings.prior > 0:
            loss = loss + settings.prior * ((z - z0) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert before is not None  # the loop runs at least once
    return best_z, before, best_cd


def refine_codes(
    model: torch.nn.Module,
    points: np.ndarray,
    codes: np.ndarray,
    steps: int = DEFAULT_STEPS,
    *,
    lr: float = DEFAULT_LR,
    prior: float = DEFAULT_PRIOR,
    batch_size: int = DEFAULT_BATCH,
    backend: str = "auto",
    progress: Progress | None = None,
    model_name: str = "the model",
) -> RefineResult:
    """Refine codes with the decoder frozen so their decoded clouds fit the points better (module docstring).

    The model's weights are frozen during the call (no gradient, eval mode) and their ``requires_grad`` flags and
    training mode are restored afterwards. Runs on the model's device; on the CPU, torch runs on one thread during
    the call (the Chamfer search has its own threads; ``torch.set_num_threads`` is restored afterwards).

    Args:
        model: an autoencoder (``decode(codes).points``, ``decoder``; e.g. a
            :class:`~shapelatent.models.pointnet.PointCloudAutoencoder`).
        points: (N, P', 3) float, the target clouds in the model's normalised frame (any P').
        codes: (N, Z) float, the start codes (the encoder's codes of ``points``).
        steps: Adam steps per shape (0: only score the start codes).
        lr: Adam learning rate on the codes.
        prior: weight of the L2 pull ``|z - z0|^2`` towards the start code (0: none).
        batch_size: shapes per batch (the result does not depend on it).
        backend: Chamfer backend, as in :func:`shapelatent.ops.chamfer.chamfer_distance`.
        progress: called with the number of shapes done after each batch.
        model_name: the model's file or name, for error messages.

    Returns:
        :class:`RefineResult` (refined (N, Z) float32 codes, (N,) Chamfer before and after, seconds per shape,
        settings).

    Raises:
        CheckpointError: the model has no (finite) decoder weights (:func:`require_decoder`).
        ValueError: bad shapes, non-finite inputs, or bad settings.
    """
    settings = RefineSettings(steps=steps, lr=lr, prior=prior, batch_size=batch_size, backend=backend)
    require_decoder(model, model_name)
    pts, z_all = _check_inputs(model, points, codes)
    n = len(pts)
    device = next(model.parameters()).device
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    out_z: list[np.ndarray] = []
    out_before: list[np.ndarray] = []
    out_after: list[np.ndarray] = []
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        if device.type == "cpu":
            # The numba Chamfer search runs its own threads on every core; torch's would compete with them for the
            # small decoder matmuls (one shape on 2 busy cores: 0.8 s per 100 steps with 1 torch thread, up to 9 s
            # with 2). Restored below.
            torch.set_num_threads(1)
        model.eval()
        model.requires_grad_(False)
        for lo in range(0, n, settings.batch_size):
            target = torch.tensor(pts[lo : lo + settings.batch_size], device=device)  # a copy: inputs may be read-only
            z0 = torch.tensor(z_all[lo : lo + settings.batch_size], device=device)
            best_z, before, after = _refine_batch(model, target, z0, settings)
            out_z.append(best_z.cpu().numpy().astype(np.float32))
            out_before.append(before.cpu().numpy())
            out_after.append(after.cpu().numpy())
            if progress is not None:
                progress(len(z0))
    finally:
        torch.set_num_threads(threads)
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    seconds = time.perf_counter() - start
    z_dim = z_all.shape[1]
    result = RefineResult(
        codes=np.concatenate(out_z) if out_z else np.zeros((0, z_dim), dtype=np.float32),
        chamfer_before=np.concatenate(out_before) if out_before else np.zeros(0),
        chamfer_after=np.concatenate(out_after) if out_after else np.zeros(0),
        seconds_per_shape=seconds / n if n else 0.0,
        settings=settings.to_dict(),
    )
    if n:
        s = result.summary()
        logger.info(
            "refined %d codes (%s): mean Chamfer %.6g -> %.6g, %.3f s per shape",
            n,
            settings.key,
            s["chamfer_before"],
            s["chamfer_after"],
            result.seconds_per_shape,
        )
    return result
