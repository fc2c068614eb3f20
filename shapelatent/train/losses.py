"""The training objective: Chamfer (+ normal consistency, + occupancy BCE, + EMD), computed in float32.

Used by :func:`shapelatent.train.loop.train` once per step, and by the benchmarks and tests that time or check a
step on its own.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch

from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.ops.chamfer import chamfer_distance
from shapelatent.train.occupancy import masked_bce

__all__ = ["LossTerms", "forward_loss", "forward_loss_terms", "normal_consistency"]


def normal_consistency(
    pred_normals: torch.Tensor, gt_normals: torch.Tensor, idx_pg: torch.Tensor, idx_gp: torch.Tensor
) -> torch.Tensor:
    """Unoriented normal consistency, ``1 - |cos|`` between matched points, mean of both directions.

    Args:
        pred_normals: (B, P, 3) unit normals of the decoded points.
        gt_normals: (B, Q, 3) unit normals of the target points.
        idx_pg: (B, P) int64 nearest target index of each decoded point.
        idx_gp: (B, Q) int64 nearest decoded index of each target point.

    Returns:
        (B,) loss per shape.
    """
    g = torch.gather(gt_normals, 1, idx_pg.clamp_min(0).unsqueeze(-1).expand(-1, -1, 3))  # (B, P, 3)
    p = torch.gather(pred_normals, 1, idx_gp.clamp_min(0).unsqueeze(-1).expand(-1, -1, 3))  # (B, Q, 3)
    a = 1.0 - (pred_normals * g).sum(-1).abs()  # (B, P)
    b = 1.0 - (gt_normals * p).sum(-1).abs()  # (B, Q)
    return a.mean(1) + b.mean(1)


class LossTerms(NamedTuple):
    """A training forward's loss and its terms: float32 scalars; ``bce`` None without occupancy supervision."""

    loss: torch.Tensor
    chamfer: torch.Tensor
    bce: torch.Tensor | None


def forward_loss(
    net: torch.nn.Module,
    points: torch.Tensor,
    normals: torch.Tensor | None,
    amp_dtype: torch.dtype | None,
    normal_weight: float = 0.1,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training forward without occupancy: (loss, chamfer), see :func:`forward_loss_terms`."""
    terms = forward_loss_terms(net, points, normals, amp_dtype, normal_weight, backend)
    return terms.loss, terms.chamfer


def forward_loss_terms(
    net: torch.nn.Module,
    points: torch.Tensor,
    normals: torch.Tensor | None,
    amp_dtype: torch.dtype | None,
    normal_weight: float = 0.1,
    backend: str = "auto",
    occupancy: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    implicit_weight: float = 0.0,
    emd_weight: float = 0.0,
) -> LossTerms:
    """One training forward: the network (under autocast when ``amp_dtype``), then the loss in float32.

    Args:
        net: the autoencoder (or its DDP wrapper).
        points: (B, P, 3) float32 input and target.
        normals: (B, P, 3) float32 target normals, used when the model decodes normals.
        amp_dtype: autocast dtype, or None for float32 throughout.
        occupancy: for joint training of the occupancy head: queries (B, T, 3), labels (B, T) float32 0/1 and
            valid (B,) bool; the loss gains ``implicit_weight`` times the mean BCE-with-logits over valid shapes.
        emd_weight: w > 0 adds ``w * EMD`` against point bunching: the auction matching (within 5% of the optimum,
            :func:`shapelatent.metrics.emd.emd_matching`, found without gradients) fixes which target point each
            decoded point pays for, and the term is the mean Euclidean distance of the matched pairs (EMD per point,
            as in latent_3d_points' ``match_cost / P``), so every decoded point must cover its own share of the
            surface instead of piling onto large parts as Chamfer allows.

    Returns:
        :class:`LossTerms`: the training loss, its Chamfer term and its BCE term (batch means).
    """
    bce = None
    with torch.autocast(points.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = net(points)
        if occupancy is not None:
            model = cast(PointCloudAutoencoder, getattr(net, "module", net))  # DDP wraps it in .module
            logits = model.occupancy(out.codes, occupancy[0], out.points).float()  # (B, T)
            bce = masked_bce(logits, occupancy[1], occupancy[2])
    cd = chamfer_distance(out.points.float(), points, reduction="mean", backend=backend)
    loss = cd.loss
    if out.normals is not None:
        if normals is None:
            raise ValueError("the model decodes normals; pass the target normals (B, P, 3).")
        loss = loss + normal_weight * normal_consistency(out.normals.float(), normals, cd.idx_xy, cd.idx_yx).mean()
    if bce is not None:
        loss = loss + implicit_weight * bce
    if emd_weight > 0:
        from shapelatent.metrics.emd import emd_matching

        pred = out.points.float()
        match = torch.from_numpy(emd_matching(pred.detach().cpu(), points.cpu(), "auction", rtol=0.05))
        target = torch.gather(points, 1, match.to(points.device).unsqueeze(-1).expand(-1, -1, 3))  # (B, P, 3)
        loss = loss + emd_weight * (pred - target).norm(dim=-1).mean()
    return LossTerms(loss, cd.loss, bce)
