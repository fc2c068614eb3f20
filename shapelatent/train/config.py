"""Typed training configuration, loaded from TOML or JSON with safe loaders."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shapelatent.models.pointnet import ModelConfig

__all__ = ["AMP_DTYPES", "DEVICES", "LR_SCHEDULES", "RunConfig", "TrainConfig", "load_config"]

DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("auto", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: passes over the training split.
        batch_size: shapes per step.
        lr: Adam learning rate.
        seed: seeds initialisation, shuffling and augmentation (epoch e uses ``(seed, e)``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        augment_rotate: random rotation about the up (Y) axis.
        augment_scale: (low, high) range of a random isotropic scale, or None.
        augment_mirror: flip each shape left-right (x -> -x) with probability 1/2 (valid for furniture, whose
            mirror image is a shape of the same kind; the datasets' up axis is +Y and the front faces +-Z).
        augment_aniso: (low, high) range of a random per-axis scale (three independent factors), or None.
        chamfer_backend: see ``shapelatent.ops.chamfer.BACKENDS``.
        normal_weight: weight of the normal-consistency term (models with ``predict_normals``).
        threads: torch CPU threads (0: torch's default).
        workers: processes that read and augment batches (0: the training process itself); any value gives
            the same batches (see ``shapelatent.train.data``).
        amp: mixed precision: the network runs under ``torch.autocast``; the Chamfer loss stays float32.
        amp_dtype: ``auto`` (bfloat16 on the CPU and on GPUs that support it, else float16 with a gradient
            scaler), ``bfloat16`` or ``float16`` (CUDA only).
        sync_bn: with several processes (torchrun), batch norm statistics span the global batch; False keeps
            them per process (see ``shapelatent.train.distributed``).
        implicit_weight: weight w of the occupancy term in joint training (models with ``model.implicit``):
            loss = Chamfer (+ normal term) + w * BCE. Under Adam the head learns at the same pace for any w > 0
            (only the head sees BCE); w sets how much the shared encoder serves the head. Default 0.01: on 160
            procedural chairs, 20 epochs from scratch (``bench/implicit_head.py --joint``), the validation Chamfer
            was 0.00757 against 0.00754 without a head, at val IoU 0.361; w = 0.1 and 1 cost 4% and 13% Chamfer
            for IoU 0.381 and 0.391.
        implicit_queries: T, occupancy queries per shape per step (half uniform, half near the surface).
        lr_schedule: ``constant``, or ``cosine``: epoch e (0-based) of E runs at ``lr * (1 + cos(pi e / E)) / 2``
            (SGDR without restarts, Loshchilov & Hutter 2017), set from the epoch index so a resumed run matches.
        weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0 keeps plain Adam.
        emd_weight: w in loss = Chamfer + w * EMD (auction matching; see ``forward_loss_terms``), a term against
            decoded points bunching on large surfaces; 0 (default) trains on Chamfer alone.
    """

    epochs: int = 100
    batch_size: int = 50
    lr: float = 5e-4
    seed: int = 0
    device: str = "auto"
    augment_rotate: bool = False
    augment_scale: tuple[float, float] | None = None
    augment_mirror: bool = False
    augment_aniso: tuple[float, float] | None = None
    chamfer_backend: str = "auto"
    normal_weight: float = 0.1
    threads: int = 0
    workers: int = 0
    amp: bool = False
    amp_dtype: str = "auto"
    sync_bn: bool = True
    implicit_weight: float = 0.01
    implicit_queries: int = 2048
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    emd_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"train.{name} must be a positive integer; got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0; got {self.lr!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"train.workers must be an integer >= 0; got {self.workers!r}")
        if isinstance(self.implicit_queries, bool) or self.implicit_queries <= 0 or self.implicit_queries % 2:
            raise ValueError(f"train.implicit_queries must be a positive even integer; got {self.implicit_queries!r}")
        if not self.implicit_weight >= 0:
            raise ValueError(f"train.implicit_weight must be >= 0; got {self.implicit_weight!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}; got {self.lr_schedule!r}")
        if not self.emd_weight >= 0:
            raise ValueError(f"train.emd_weight must be >= 0; got {self.emd_weight!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"train.weight_decay must be >= 0; got {self.weight_decay!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"train.amp_dtype must be one of {AMP_DTYPES}; got {self.amp_dtype!r}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be one of {DEVICES}; got {self.device!r}")
        for name in ("augment_scale", "augment_aniso"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                lo, hi = (float(x) for x in value)
            except (TypeError, ValueError):
                raise ValueError(f"train.{name} must be (low, high); got {value!r}") from None
            if not 0 < lo <= hi:
                raise ValueError(f"train.{name} must be (low, high) with 0 < low <= high; got {value}")
            object.__setattr__(self, name, (lo, hi))


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (written to ``config.json`` in the run folder)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        t = asdict(self.train)
        t["augment_scale"] = list(self.train.augment_scale) if self.train.augment_scale else None
        t["augment_aniso"] = list(self.train.augment_aniso) if self.train.augment_aniso else None
        return {"model": self.model.to_dict(), "train": t}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown sections or keys are errors."""
        extra = set(data) - {"model", "train"}
        if extra:
            raise ValueError(f"unknown config sections {sorted(extra)}; allowed: model, train")
        tdata = dict(data.get("train", {}))
        known = set(TrainConfig.__dataclass_fields__)
        if set(tdata) - known:
            raise ValueError(f"unknown train config keys {sorted(set(tdata) - known)}; allowed: {sorted(known)}")
        for name in ("augment_scale", "augment_aniso"):
            if tdata.get(name) is not None:
                tdata[name] = tuple(tdata[name])
        return cls(model=ModelConfig.from_dict(dict(data.get("model", {}))), train=TrainConfig(**tdata))

    def with_overrides(self, model: dict[str, Any] | None = None, train: dict[str, Any] | None = None) -> RunConfig:
        """A copy with some fields replaced (None values are ignored)."""
        m = {k: v for k, v in (model or {}).items() if v is not None}
        t = {k: v for k, v in (train or {}).items() if v is not None}
        return RunConfig(model=replace(self.model, **m), train=replace(self.train, **t))


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Load a :class:`RunConfig` from a ``.toml`` or ``.json`` file with ``[model]``/``[train]`` tables."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such config file.")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML ({exc}).") from exc
    elif p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: invalid JSON ({exc}).") from exc
    else:
        raise ValueError(f"{p}: config files must be .toml or .json; got {p.suffix!r}.")
    try:
        return RunConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: {exc}") from exc
