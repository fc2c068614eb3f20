"""PointNet autoencoder as in Achlioptas et al. 2018 (latent_3d_points).

Encoder: shared per-point layers (1x1 convolutions with batch norm and ReLU) 64-128-128-256-Z, then a
max-pool over points. Decoder: an MLP 256-256-(P*3), or (P*6) when it also predicts normals; the last
layer has no batch norm and no activation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from shapelatent.models.implicit import ImplicitConfig, build_implicit

__all__ = ["AEOutput", "ModelConfig", "MLPDecoder", "PointCloudAutoencoder", "PointNetEncoder"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the autoencoder.

    Attributes:
        num_points: P, points decoded per shape.
        latent_dim: Z, size of the code.
        encoder_channels: widths of the shared per-point layers before the last (Z) one.
        decoder_hidden: widths of the decoder's hidden layers.
        predict_normals: also decode a unit normal per point (P*6 outputs).
        implicit: the occupancy head on the same code (:mod:`shapelatent.models.implicit`), or None.
    """

    num_points: int = 2048
    latent_dim: int = 128
    encoder_channels: tuple[int, ...] = (64, 128, 128, 256)
    decoder_hidden: tuple[int, ...] = (256, 256)
    predict_normals: bool = False
    implicit: ImplicitConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.implicit, dict):
            object.__setattr__(self, "implicit", ImplicitConfig.from_dict(self.implicit))
        if self.implicit is not None and not isinstance(self.implicit, ImplicitConfig):
            raise ValueError(f'model.implicit must be a table like {{kind = "cbn"}} or absent; got {self.implicit!r}')
        for name in ("num_points", "latent_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer; got {value!r}")
        object.__setattr__(self, "encoder_channels", tuple(int(c) for c in self.encoder_channels))
        object.__setattr__(self, "decoder_hidden", tuple(int(c) for c in self.decoder_hidden))
        if any(c <= 0 for c in self.encoder_channels + self.decoder_hidden):
            raise ValueError("model layer widths must be positive integers")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["encoder_channels"] = list(self.encoder_channels)
        d["decoder_hidden"] = list(self.decoder_hidden)
        if self.implicit is None:
            d.pop("implicit")  # configs without a head read exactly as before the head existed
        else:
            d["implicit"] = self.implicit.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown model config keys {sorted(extra)}; allowed: {sorted(known)}")
        return cls(**data)


class AEOutput(NamedTuple):
    """Autoencoder output.

    Attributes:
        points: (B, P, 3) decoded points.
        normals: (B, P, 3) unit normals, or None without ``predict_normals``.
        codes: (B, Z) latent codes.
    """

    points: torch.Tensor
    normals: torch.Tensor | None
    codes: torch.Tensor


class PointNetEncoder(nn.Module):
    """Per-point shared MLP + max-pool: (B, P, 3) -> (B, Z).

    The shared layers are 1x1 convolutions written as ``nn.Linear`` on the flattened (B*P, C) points
    (the same function, about 1.5x faster than ``Conv1d`` on the CPU), each followed by batch norm
    over all points of the batch and ReLU.
    """

    def __init__(self, latent_dim: int = 128, channels: tuple[int, ...] = (64, 128, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in (*channels, latent_dim):
            layers += [nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points: (B, P, 3) -> codes (B, Z)."""
        b, p, _ = points.shape
        feats = self.net(points.reshape(b * p, 3)).view(b, p, -1)  # (B, P, Z)
        return feats.max(dim=1).values


class MLPDecoder(nn.Module):
    """MLP from a code to a point cloud: (B, Z) -> (B, P, 3) [+ normals (B, P, 3)]."""

    def __init__(
        self, latent_dim: int, num_points: int, hidden: tuple[int, ...] = (256, 256), predict_normals: bool = False
    ) -> None:
        super().__init__()
        self.num_points = num_points
        self.channels = 6 if predict_normals else 3
        layers: list[nn.Module] = []
        c_in = latent_dim
        for c_out in hidden:
            layers += [nn.Linear(c_in, c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        layers.append(nn.Linear(c_in, num_points * self.channels))
        self.net = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """codes: (B, Z) -> points (B, P, 3), normals (B, P, 3) unit length or None."""
        out = self.net(codes).view(codes.shape[0], self.num_points, self.channels)  # (B, P, C)
        if self.channels == 3:
            return out, None
        return out[..., :3], nn.functional.normalize(out[..., 3:], dim=-1)


class PointCloudAutoencoder(nn.Module):
    """PointNet encoder + MLP decoder, and optionally an occupancy head on the same code (``implicit``)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.encoder = PointNetEncoder(c.latent_dim, c.encoder_channels)
        self.decoder = MLPDecoder(c.latent_dim, c.num_points, c.decoder_hidden, c.predict_normals)
        self.implicit = build_implicit(c.latent_dim, c.implicit) if c.implicit is not None else None
        # what ``--mesher auto`` means for this model when its checkpoint says (``auto_mesher`` in its config, set by
        # load_model); None: implicit when the model has a head, else poisson
        self.auto_mesher: str | None = None
        # the head's surface is extracted at this logit (``implicit_threshold`` in the checkpoint config, set by
        # load_model; 0.0 = probability 0.5 when the checkpoint does not say)
        self.implicit_threshold: float = 0.0

    @property
    def has_implicit(self) -> bool:
        """True when the model has an occupancy head."""
        return self.implicit is not None

    def occupancy(self, codes: torch.Tensor, queries: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """codes (B, Z), queries (B, T, 3) in the normalised frame -> occupancy logits (B, T).

        A head with ``local`` > 0 also reads the codes' decoded points: ``points`` (B, P, 3) when the caller has
        them (they must be ``decode(codes).points``), else they are decoded here. They enter detached.

        Raises:
            ValueError: the model has no occupancy head.
        """
        if self.implicit is None:
            raise ValueError(
                "this model has no implicit (occupancy) head; add one with "
                "`shapelatent train-implicit --model RUN --data DATASET --out RUN2` (the encoder stays frozen)."
            )
        if self.implicit.needs_points and points is None:
            points = self.decoder(codes)[0]
        return self.implicit(codes, queries, points)

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """points: (B, P', 3) (any P') -> codes (B, Z)."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (B, P, 3); got {tuple(points.shape)}")
        return self.encoder(points)

    def decode(self, codes: torch.Tensor) -> AEOutput:
        """codes: (B, Z) -> :class:`AEOutput`."""
        if codes.ndim != 2 or codes.shape[1] != self.config.latent_dim:
            raise ValueError(f"codes must have shape (B, {self.config.latent_dim}); got {tuple(codes.shape)}")
        pts, nrm = self.decoder(codes)
        return AEOutput(pts, nrm, codes)

    def forward(self, points: torch.Tensor) -> AEOutput:
        """points: (B, P, 3) -> :class:`AEOutput` with the reconstruction and the codes."""
        return self.decode(self.encode(points))
