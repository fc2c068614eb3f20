"""Implicit (occupancy) heads: f(z, x) -> logit of "x is inside the shape whose code is z".

A second head on the autoencoder's code, so stores, neighbours and the point decoder stay as they are. Three
architectures, chosen by :class:`ImplicitConfig`'s ``kind``:

* ``concat``: an MLP on the query concatenated with the code, as IM-NET's decoder (Chen & Zhang 2019, "Learning
  Implicit Fields for Generative Shape Modeling"), with leaky ReLU (slope 0.02) as there. The code enters the first
  layer only; its share of that layer (``W_z z``) is computed once per shape, not once per query.
* ``cbn``: the Occupancy Networks decoder ``DecoderCBatchNorm`` (Mescheder et al. 2019, "Occupancy Networks",
  ``im2mesh/onet/models/decoder.py``): the query lifted to ``hidden`` channels (``fc_p``), ``blocks`` ResNet blocks
  ``CResnetBlockConv1d`` (conditional batch norm, ReLU, linear, twice; the second linear starts at zero), a last
  conditional batch norm, ReLU and one logit. Conditional batch norm normalises each channel with batch statistics
  (running statistics in eval mode) and applies a scale and shift computed from the code (initialised to 1 and 0).
  ONet's size is ``hidden`` 256, ``blocks`` 5, no Fourier features.
* ``film``: the same ResNet blocks with the normalisation left out (FiLM, Perez et al. 2018): needs no batch
  statistics, so train and eval mode compute the same function.

Every kind computes the code's share of the network (:meth:`OccupancyDecoder.condition`) once per shape, and
can lift the query with Fourier features (``fourier`` > 0 bands: ``[x, sin(2^k pi x), cos(2^k pi x)]``, Tancik et
al. 2020).

**Local features from the decoded points** (``local`` = k > 0). The point decoder's cloud D(z) is a function of the
same code, and it says where the surface is far more precisely than a global code can tell a small MLP. With
``local`` = k, each query x also sees its k nearest decoded points y_1..y_k: the offsets (y_i - x) / s (s =
:data:`LOCAL_SCALE`) and their lengths go through a shared two-layer MLP (4 -> 64 -> 64, ReLU), max-pooled over the
k (a PointNet over the neighbourhood, as the local encoders of ConvONet (Peng et al. 2020) and POCO (Boulch & Marlet
2022), here on the decoded cloud instead of the input), and the result is concatenated with the lifted query before
``fc_x``. The head stays f(z, x): D(z) is computed from z (detached: the occupancy loss does not train the point
decoder). The idea: a leg with a handful of decoded points is a line of points a head can learn to thicken into a
leg, where Poisson needs a dense sample. Measured with head-only training on the demo's procedural chairs (600
shapes, P = 1024, cbn 128x3, 4 bands, 1 thread): validation IoU 0.59 after 10 epochs with k = 8 against 0.52
without, level by epoch 40 (0.64 vs 0.65); on Sweet Home 3D a local head on the shipped model's frozen codes reaches
test IoU 0.39 (its joint head: 0.35) but the same mesh F-score (README, "Implicit meshes"). Default 0.

The default, ``cbn`` with ``hidden`` 128, 3 blocks and 4 Fourier bands, is what ``bench/implicit_head.py``
measured best on a CPU budget (head-only training on 128 procedural chairs with the ``furniture`` encoder, 2 CPU
threads, scored on 32 held-out chairs). After 900 CPU-s: cbn-128x3-f4 IoU 0.632, F@2% 0.779; concat-256x4-f4
0.632, 0.661; film-128x4-f4 0.622, 0.644. After 240 CPU-s the same order on F@2% (0.604, 0.538, 0.456), while
ONet's cbn-256x5 (3.6 s per step of 16 x 1024 queries) had not left "all outside" (IoU 0) and the variants
without Fourier features trailed (IoU 0.26-0.43). Forward of B = 32 x T = 2048 queries: 0.4-0.6 s for the
three, 1.7 s for cbn-256x5 (2 shared cores).

Queries live in the normalised frame of the dataset (shapes inside the unit sphere), in the box of half-extent
:data:`BOX` where the occupancy samples lie (see the dataset format's ``occupancy.json``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

__all__ = [
    "BOX",
    "IMPLICIT_KINDS",
    "LOCAL_SCALE",
    "ImplicitConfig",
    "OccupancyDecoder",
    "build_implicit",
    "implicit_fn",
    "nearest_points",
    "nearest_points_blocked",
]

BOX = 1.1
IMPLICIT_KINDS = ("cbn", "concat", "film")
# hidden width and blocks (ResNet blocks, or hidden layers for concat) when not given: the sizes
# bench/implicit_head.py compared (ONet's DecoderCBatchNorm is cbn with hidden 256, 5 blocks).
_KIND_SIZES = {"cbn": (128, 3), "concat": (256, 4), "film": (128, 4)}
LOCAL_SCALE = 0.05  #: offsets to the decoded neighbours are divided by this (normalised units: the unit sphere)
_LOCAL_WIDTH = 64  # channels of the neighbourhood MLP
_MAX_LOCAL = 64


@dataclass(frozen=True)
class ImplicitConfig:
    """Architecture of the occupancy head.

    Attributes:
        kind: ``cbn`` (Occupancy Networks' conditional-batch-norm ResNet), ``concat`` (MLP on [x, z], IM-NET) or
            ``film`` (the ResNet with FiLM and no normalisation).
        hidden: width of the hidden layers; None: the kind's default (cbn 128, concat 256, film 128).
        blocks: ResNet blocks (cbn, film) or hidden layers (concat); None: the kind's default (cbn 3, concat 4,
            film 4).
        fourier: Fourier-feature bands of the query (0: the raw coordinates, as ONet and IM-NET).
        local: k, how many nearest decoded points condition each query (0: the code alone; see the module
            docstring). Checkpoints written before this field load with 0.
    """

    kind: str = "cbn"
    hidden: int | None = None
    blocks: int | None = None
    fourier: int = 4
    local: int = 0

    def __post_init__(self) -> None:
        if self.kind not in IMPLICIT_KINDS:
            raise ValueError(f"implicit.kind must be one of {IMPLICIT_KINDS}; got {self.kind!r}")
        sizes = dict(zip(("hidden", "blocks"), _KIND_SIZES[self.kind], strict=True))
        for name in ("hidden", "blocks"):
            v = getattr(self, name)
            if v is None:
                object.__setattr__(self, name, sizes[name])
            elif isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"implicit.{name} must be a positive integer; got {v!r}")
        if isinstance(self.fourier, bool) or not isinstance(self.fourier, int) or not 0 <= self.fourier <= 12:
            raise ValueError(f"implicit.fourier must be an integer in 0..12; got {self.fourier!r}")
        if isinstance(self.local, bool) or not isinstance(self.local, int) or not 0 <= self.local <= _MAX_LOCAL:
            raise ValueError(f"implicit.local must be an integer in 0..{_MAX_LOCAL}; got {self.local!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sizes resolved)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImplicitConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        extra = set(data) - set(cls.__dataclass_fields__)
        if extra:
            raise ValueError(
                f"unknown implicit config keys {sorted(extra)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


class _Fourier(nn.Module):
    """x (..., 3) -> (..., 3 + 6F): the coordinates, then sin and cos of 2^k pi x for k < F."""

    freqs: torch.Tensor

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(bands, dtype=torch.float32)) * math.pi, persistent=False)
        self.out_dim = 3 + 6 * bands

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freqs.numel() == 0:
            return x
        xf = (x.unsqueeze(-1) * self.freqs).flatten(-2)  # (..., 3F)
        return torch.cat([x, torch.sin(xf), torch.cos(xf)], dim=-1)


def nearest_points(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each query's k nearest points (Euclidean), per batch element.

    Args:
        points: (B, P, 3) float, P >= k.
        queries: (B, T, 3) float, same device.
        k: neighbours per query.

    Returns:
        (B, T, k) int64 on the queries' device, nearest first. On the CPU a k-d tree per batch element
        (``scipy.spatial.cKDTree``); elsewhere an exact blocked search (squared distances, ``topk``). Both return the
        exact k nearest (ties broken arbitrarily).

    Raises:
        ValueError: P < k or mismatched shapes.
    """
    if points.ndim != 3 or queries.ndim != 3 or points.shape[0] != queries.shape[0] or points.shape[-1] != 3:
        raise ValueError(
            f"points (B, P, 3) and queries (B, T, 3) expected; got {tuple(points.shape)}, {tuple(queries.shape)}"
        )
    b, p = points.shape[:2]
    if p < k:
        raise ValueError(f"{k} nearest decoded points asked for, but the cloud has {p}")
    if points.device.type == "cpu":
        from scipy.spatial import cKDTree

        pts_np = points.detach().to(torch.float32).numpy()
        qs_np = queries.detach().to(torch.float32).numpy()
        out = np.empty((b, qs_np.shape[1], k), dtype=np.int64)
        for j in range(b):
            out[j] = cKDTree(pts_np[j]).query(qs_np[j], k=k)[1].reshape(qs_np.shape[1], k)
        return torch.from_numpy(out)
    return nearest_points_blocked(points, queries, k)


def nearest_points_blocked(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`nearest_points` on any device: exact distances in query blocks of at most 2^24 pairs, ``topk``.

    points (B, P, 3), queries (B, T, 3) -> (B, T, k) int64 indices, nearest first.
    """
    b, p = points.shape[:2]
    pts, qs = points.detach().float(), queries.detach().float()
    step = max(1, (1 << 24) // max(b * p, 1))
    chunks = []
    for s in range(0, qs.shape[1], step):
        d = torch.cdist(qs[:, s : s + step], pts)  # (B, t, P)
        chunks.append(d.topk(k, dim=-1, largest=False).indices)
    return torch.cat(chunks, dim=1) if chunks else torch.zeros(b, 0, k, dtype=torch.long, device=qs.device)


def _batch_stats(x: torch.Tensor, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance that ``bn`` (affine=False) normalises (B, T, H) features with: (H,), (H,).

    In training mode the statistics of the B*T queries, and the running statistics are updated as
    ``nn.BatchNorm1d`` does (momentum, unbiased running variance); in eval mode the running statistics. The
    same numbers as ONet's ``BatchNorm1d`` on (B, H, T); returned instead of applied so that the normalisation and
    the code's scale and shift take one pass over the features.
    """
    running_mean, running_var, tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    if running_mean is None or running_var is None or tracked is None:
        raise ValueError("the head's batch norms must track running statistics")
    if not bn.training:
        return running_mean, running_var
    flat = x.reshape(-1, x.shape[-1])  # (B*T, H)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))  # statistics at least float32 under autocast
    var, mean = torch.var_mean(flat, dim=0, unbiased=False)
    with torch.no_grad():
        n = flat.shape[0]
        m = float(bn.momentum if bn.momentum is not None else 0.1)
        running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
        running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        tracked.add_(1)
    return mean, var


class OccupancyDecoder(nn.Module):
    """f(z, x): codes (B, Z) float32, queries (B, T, 3) float32 -> (B, T) float32 logits (sigmoid: P(inside)).

    With ``config.local`` > 0 every call also takes the code's decoded points (B, P, 3) (``points=``; see
    :attr:`needs_points`).

    Args:
        latent_dim: Z.
        config: the architecture.
    """

    def __init__(self, latent_dim: int, config: ImplicitConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Fourier(config.fourier)
        h, nb = int(config.hidden or 0), int(config.blocks or 0)
        local_dim = _LOCAL_WIDTH if config.local else 0
        self.local_net = (
            nn.Sequential(nn.Linear(4, _LOCAL_WIDTH), nn.ReLU(), nn.Linear(_LOCAL_WIDTH, _LOCAL_WIDTH))
            if config.local
            else None
        )
        self.fc_x = nn.Linear(self.embed.out_dim + local_dim, h)
        if config.kind == "concat":
            self.fc_z = nn.Linear(latent_dim, h, bias=False)
            self.layers = nn.ModuleList(nn.Linear(h, h) for _ in range(nb - 1))
        else:
            fc2 = [nn.Linear(h, h) for _ in range(nb)]
            for fc in fc2:  # ONet's blocks: the residual branch starts at zero
                nn.init.zeros_(fc.weight)
            self.fc1 = nn.ModuleList(nn.Linear(h, h) for _ in range(nb))
            self.fc2 = nn.ModuleList(fc2)
            # per normalisation site (2 per block, + 1 before the output for cbn): a scale and a shift from z,
            # starting at scale 1, shift 0 (ONet's CBatchNorm1d.reset_parameters)
            self.sites = 2 * nb + 1 if config.kind == "cbn" else nb
            self.cond = nn.Linear(latent_dim, 2 * h * self.sites)
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)
            if config.kind == "cbn":
                self.bns = nn.ModuleList(nn.BatchNorm1d(h, affine=False) for _ in range(self.sites))
        self.fc_out = nn.Linear(h, 1)

    @property
    def needs_points(self) -> bool:
        """True when the head reads the code's decoded points (``config.local`` > 0)."""
        return self.local_net is not None

    def lift(self, queries: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """The query's input features: queries (B, T, 3) [+ decoded points (B, P, 3)] -> (B, T, E) float32.

        Raises:
            ValueError: the head needs the decoded points and ``points`` is None.
        """
        feats = self.embed(queries)
        if self.local_net is None:
            return feats
        if points is None:
            raise ValueError(
                f"this occupancy head reads the {self.config.local} nearest decoded points of each query "
                "(implicit.local); pass the code's decoded points (B, P, 3)"
            )
        pts = points.detach().to(queries.dtype)
        idx = nearest_points(pts, queries, self.config.local).to(queries.device)  # (B, T, k)
        b, t, k = idx.shape
        nbr = torch.gather(pts, 1, idx.reshape(b, t * k, 1).expand(-1, -1, 3)).view(b, t, k, 3)
        off = (nbr - queries.unsqueeze(2)) / LOCAL_SCALE  # (B, T, k, 3)
        local = self.local_net(torch.cat([off, off.norm(dim=-1, keepdim=True)], dim=-1)).amax(dim=2)  # (B, T, L)
        return torch.cat([feats, local], dim=-1)

    def condition(self, codes: torch.Tensor) -> torch.Tensor:
        """The per-shape part of the network: codes (B, Z) float32 -> (B, C) float32, computed once per shape."""
        if self.config.kind == "concat":
            return self.fc_z(codes)
        return self.cond(codes)

    def decode_conditioned(
        self, cond: torch.Tensor, queries: torch.Tensor, points: torch.Tensor | None = None
    ) -> torch.Tensor:
        """cond (B, C) from :meth:`condition`, queries (B, T, 3) float32 [, decoded points (B, P, 3)] -> (B, T)."""
        net = self.fc_x(self.lift(queries, points))  # (B, T, H)
        if self.config.kind == "concat":
            net = nn.functional.leaky_relu(net + cond.unsqueeze(1), 0.02)
            for layer in self.layers:
                net = nn.functional.leaky_relu(layer(net), 0.02)
            return self.fc_out(net).squeeze(-1)
        h = int(self.config.hidden or 0)
        mod = cond.view(-1, self.sites, 2, 1, h)  # (B, sites, scale/shift, 1, H)
        cbn = self.config.kind == "cbn"

        def modulate(x: torch.Tensor, site: int) -> torch.Tensor:
            scale, shift = 1.0 + mod[:, site, 0], mod[:, site, 1]  # (B, 1, H) each
            if cbn:  # normalisation folded into the scale and shift: one pass over x
                bn = cast(nn.BatchNorm1d, self.bns[site])
                mean, var = _batch_stats(x, bn)  # (H,)
                scale = scale * torch.rsqrt(var + bn.eps)
                shift = shift - mean * scale
            return torch.addcmul(shift, x, scale)

        # in-place ReLUs act on fresh tensors whose producers (addcmul, linear) do not keep them for backward
        for i in range(len(self.fc1)):
            if cbn:  # CResnetBlockConv1d: fc_1(relu(bn_1(fc_0(relu(bn_0(x)))))) + x
                dx = self.fc1[i](modulate(net, 2 * i).relu_())
                net = net + self.fc2[i](modulate(dx, 2 * i + 1).relu_())
            else:
                dx = self.fc1[i](modulate(net, i).relu_())
                net = net + self.fc2[i](dx.relu_())
        net = modulate(net, self.sites - 1).relu_() if cbn else torch.relu(net)
        return self.fc_out(net).squeeze(-1)

    def forward(self, codes: torch.Tensor, queries: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """codes (B, Z) float32, queries (B, T, 3) float32 [, decoded points (B, P, 3)] -> logits (B, T) float32."""
        if queries.ndim != 3 or queries.shape[-1] != 3 or queries.shape[0] != codes.shape[0]:
            raise ValueError(
                f"queries must have shape (B, T, 3) with B = {codes.shape[0]} codes; got {tuple(queries.shape)}"
            )
        return self.decode_conditioned(self.condition(codes), queries, points)


def build_implicit(latent_dim: int, config: ImplicitConfig) -> OccupancyDecoder:
    """The occupancy head for codes of size Z = ``latent_dim``."""
    return OccupancyDecoder(latent_dim, config)


def implicit_fn(
    model: nn.Module, code: torch.Tensor, batch_points: int = 65536, points: torch.Tensor | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The occupancy function of one shape, for mesh extraction (``shapelatent.meshing.implicit.extract_mesh``).

    Args:
        model: an autoencoder with an occupancy head (``PointCloudAutoencoder`` whose ``implicit`` is set), or
            the head itself; it is put in eval mode (cbn then uses its running statistics, so a shape decodes the
            same alone as in a batch).
        code: (Z,) or (1, Z) float32 code.
        batch_points: queries per forward pass; larger M are decoded in chunks of this many.
        points: (P, 3) the code's decoded points, for a head with ``local`` > 0; None: decoded here when ``model``
            is the autoencoder.

    Returns:
        fn mapping queries (M, 3) float32 -> logits (M,) float32 on the queries' device, without gradient; the
        code's share of the network is computed once.

    Raises:
        ValueError: the model has no occupancy head (the message says how to add one), a bad ``batch_points``, or
            a head that reads decoded points given neither them nor the autoencoder that decodes them.
    """
    head = getattr(model, "implicit", model)
    if not isinstance(head, OccupancyDecoder):
        raise ValueError(
            "this model has no implicit (occupancy) head; add one with `shapelatent train-implicit --model RUN "
            "--data DATASET --out RUN2` (the encoder stays frozen, so stores keep matching)."
        )
    if batch_points <= 0:
        raise ValueError(f"batch_points must be positive; got {batch_points}")
    head.eval()
    device = next(head.parameters()).device
    cloud: torch.Tensor | None = None
    with torch.no_grad():
        z = code.reshape(1, -1).to(device, torch.float32)
        cond = head.condition(z)  # (1, C)
        if head.needs_points:
            if points is not None:
                cloud = torch.as_tensor(points).reshape(1, -1, 3).to(device, torch.float32)
            elif head is not model and hasattr(model, "decode"):
                model.eval()
                cloud = cast(Any, model).decode(z).points.float()  # (1, P, 3)
            else:
                raise ValueError(
                    "this occupancy head reads the code's decoded points (implicit.local); pass the autoencoder, "
                    "or the decoded points as points="
                )

    def fn(x: torch.Tensor) -> torch.Tensor:
        pts = torch.as_tensor(x).reshape(-1, 3)
        out = torch.empty(len(pts), dtype=torch.float32, device=pts.device)
        with torch.no_grad():
            for s in range(0, len(pts), batch_points):
                chunk = pts[s : s + batch_points].to(device, torch.float32).unsqueeze(0)  # (1, m, 3)
                out[s : s + batch_points] = head.decode_conditioned(cond, chunk, cloud)[0].to(out.device)
        return out

    return fn
