"""Train the occupancy head of an already trained autoencoder, its encoder and point decoder frozen.

The codes do not change (the source's weights are copied bit for bit and never updated), so the new model's
fingerprint equals the source's and every store made with the source keeps working with it. Run folder layout,
as ``train`` writes it::

    config.json, provenance.json          the resolved configs (source model + head, ``implicit_train``) and provenance
    checkpoints/last.safetensors          model + optimizer after the last finished epoch (resume)
    model.safetensors                     the final model: the source's weights + the head
    metrics.jsonl, metrics.json           per-epoch train BCE and validation IoU; the final summary
    loss_curve.png                        training BCE and validation IoU per epoch

Supervision (:mod:`shapelatent.train.occupancy`): each step takes B shapes in the epoch's seeded order and T of each
shape's Q stored queries (half uniform, half near the surface, drawn from ``(seed, epoch, 2, step)``); the loss is
binary cross-entropy on logits, averaged over queries and valid shapes. The codes are the frozen encoder's (eval
mode) on the stored points, computed once, without augmentation. Validation IoU is Occupancy Networks' measure on
the stored uniform queries (logit > 0 vs label), averaged over shapes.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shapelatent.data.format import ShapeDataset
from shapelatent.errors import CheckpointError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.models.implicit import ImplicitConfig
from shapelatent.models.pointnet import ModelConfig, PointCloudAutoencoder
from shapelatent.provenance import provenance
from shapelatent.train.checkpoint import load_checkpoint, save_checkpoint
from shapelatent.train.config import DEVICES
from shapelatent.train.loop import _read_history, _write_history, resolve_device
from shapelatent.train.malloc import tune_malloc
from shapelatent.train.occupancy import OccupancySource, decoded_points, encode_rows, masked_bce, occupancy_iou

logger = logging.getLogger(__name__)

__all__ = ["ImplicitTrainConfig", "ImplicitTrainResult", "train_implicit"]

_OCCUPANCY_STREAM = 2  # third entropy word of the query generator, as in shapelatent.train.data


@dataclass(frozen=True)
class ImplicitTrainConfig:
    """Settings of head-only training (``[implicit_train]`` in the run's config.json).

    Attributes:
        epochs: passes over the train split.
        batch_size: B, shapes per step.
        queries: T, occupancy queries per shape per step (half uniform, half near the surface).
        lr: Adam learning rate.
        seed: seeds the head's initialisation, the shuffling and the query sampling.
        threads: torch CPU threads (0: torch's default).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; the run's results do not depend on where the
            head was trained beyond floating-point rounding.
    """

    epochs: int = 100
    batch_size: int = 32
    queries: int = 2048
    lr: float = 5e-4
    seed: int = 0
    threads: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if self.queries % 2:
            raise ValueError(f"queries must be even (half uniform, half near the surface); got {self.queries}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0; got {self.threads!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}; got {self.device!r}")


@dataclass
class ImplicitTrainResult:
    """What :func:`train_implicit` produced: the run folder, per-epoch rows and the summary."""

    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def _rows(points: torch.Tensor | None, idx: np.ndarray) -> torch.Tensor | None:
    return points[idx] if points is not None else None


def _start(
    model_path, head: ImplicitConfig | None, seed: int, replace_head: bool = False
) -> tuple[PointCloudAutoencoder, dict[str, Any]]:
    """The source model with a head added (or its own head), and the source's config with the new model config."""
    from shapelatent.models.load import load_model

    loaded = load_model(model_path)
    mcfg = loaded.model.config
    state = loaded.model.state_dict()
    if replace_head and mcfg.implicit is not None:
        logger.info("%s: its occupancy head (%s) is replaced by a new one", model_path, mcfg.implicit)
        mcfg = replace(mcfg, implicit=None)
        state = {k: v for k, v in state.items() if not k.startswith("implicit.")}
    if mcfg.implicit is None:
        mcfg = replace(mcfg, implicit=head or ImplicitConfig())
    elif head is not None and head != mcfg.implicit:
        logger.info("%s already has an occupancy head (%s); training that head further", model_path, mcfg.implicit)
    torch.manual_seed(seed)
    model = PointCloudAutoencoder(mcfg)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or any(not k.startswith("implicit.") for k in result.missing_keys):
        raise CheckpointError(f"{model_path}: its weights do not fit the model with a head ({result}).")
    config = {**loaded.config, "source_model": str(model_path)}
    config["run"] = {**config.get("run", {}), "model": mcfg.to_dict()}
    return model, config


def train_implicit(
    model_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    head: ImplicitConfig | None = None,
    config: ImplicitTrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    stop_after_epochs: int | None = None,
    replace_head: bool = False,
) -> ImplicitTrainResult:
    """Give a trained model an occupancy head (or train its head further), the encoder and point decoder frozen.

    Args:
        model_path: a run folder, checkpoint or shipped model name (``furniture``).
        data_dir: a dataset with occupancy samples, sampled and normalised as the model's training data.
        out_dir: the new run folder.
        head: the head's architecture (default :class:`ImplicitConfig`); ignored when the model already has a head
            (that head is trained further, unless ``replace_head``) and when resuming.
        config: training settings (default :class:`ImplicitTrainConfig`); when resuming, only its ``epochs`` is
            used (None: the stored run's).
        resume: continue from ``out_dir/checkpoints/last.safetensors``; the losses are those of an uninterrupted run.
        force: start over in an existing run folder.
        on_step: called after each step with ``{"epoch", "step", "steps", "loss"}`` (progress bars).
        on_epoch: called after each epoch with its metrics row.
        stop_after_epochs: stop as if interrupted after this many epochs of this call (tests).
        replace_head: when the model already has a head, start a new one of architecture ``head`` instead of
            training that one further (the encoder and point decoder, hence the codes, stay the source's).

    Raises:
        DatasetFormatError: the dataset has no occupancy samples (the message names the commands that add them),
            or they do not match the dataset.
        OutputExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``force`` was given.
        CheckpointError: ``resume`` without a checkpoint, or a source whose weights do not fit.
        ValueError: T larger than the stored samples allow, or an empty train split.
    """
    ds = ShapeDataset(data_dir)
    source = OccupancySource(ds.root, len(ds))
    run = Path(out_dir)
    ckpt_path = run / "checkpoints" / "last.safetensors"
    cfg = config or ImplicitTrainConfig()
    start_epoch, ckpt = 0, None
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume from; start a new run without --resume.")
        ckpt = load_checkpoint(ckpt_path)
        try:
            stored = dict(ckpt.config["implicit_train"])
            model = PointCloudAutoencoder(ModelConfig.from_dict(dict(ckpt.config["run"]["model"])))
            model.load_state_dict(ckpt.model_state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{ckpt_path}: not a train-implicit checkpoint ({exc}).") from exc
        cfg = ImplicitTrainConfig(**{**stored, "epochs": config.epochs if config is not None else stored["epochs"]})
        start_epoch = int(ckpt.state["epoch"])
        run_config = {k: v for k, v in ckpt.config.items() if k != "implicit_train"}
    else:
        if (run / "config.json").exists() and not force:
            raise OutputExistsError(
                f"{run}: already holds a run; pass --resume to continue it or --force to start over, "
                "or choose another --out."
            )
        model, run_config = _start(model_path, head, cfg.seed, replace_head)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tune_malloc()  # activations reused from the heap (shapelatent.train.malloc)
    device = resolve_device(cfg.device)
    model.to(device)
    implicit = model.implicit
    if implicit is None:  # _start always adds one; a checkpoint config without one is not ours
        raise CheckpointError(f"{ckpt_path}: the stored model has no occupancy head.")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("implicit."))
    optimizer = torch.optim.Adam(implicit.parameters(), lr=cfg.lr)
    if ckpt is not None and ckpt.optim_state is not None:
        optimizer.load_state_dict(ckpt.optim_state)
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    if len(train_idx) == 0:
        raise ValueError(f"{ds.root}: the train split is empty; build a larger dataset.")
    source.check_queries(cfg.queries, "queries")
    codes = encode_rows(model, ds.root, np.arange(len(ds)))  # (N, Z): the frozen encoder's codes, as a store holds
    points = decoded_points(model, codes)  # (N, P, 3) the frozen decoder's clouds, for a head with local > 0
    full_config = {**run_config, "implicit_train": asdict(cfg)}
    history = _read_history(run / "metrics.jsonl", start_epoch) if ckpt is not None else []
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", full_config)
    atomic_write_json(run / "provenance.json", provenance(full_config, cfg.seed))
    steps = math.ceil(len(train_idx) / cfg.batch_size)
    end_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, start_epoch + stop_after_epochs)
    logger.info(
        "training the occupancy head (%s) on %s: %d train / %d val shapes, epochs %d..%d, %d shapes x %d queries "
        "per step",
        implicit.config.kind,
        device,
        len(train_idx),
        len(val_idx),
        start_epoch + 1,
        end_epoch,
        cfg.batch_size,
        cfg.queries,
    )
    for epoch in range(start_epoch, end_epoch):
        implicit.train()
        t0 = time.perf_counter()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
        loss_sum, seen = 0.0, 0
        for step in range(steps):
            batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            occ = source.draw(batch, cfg.queries, np.random.default_rng([cfg.seed, epoch, _OCCUPANCY_STREAM, step]))
            logits = implicit(codes[batch], torch.from_numpy(occ.queries).to(device), _rows(points, batch))
            loss = masked_bce(logits, torch.from_numpy(occ.labels).to(device), torch.from_numpy(occ.valid).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum, seen = loss_sum + loss.item() * len(batch), seen + len(batch)
            if on_step:
                on_step({"epoch": epoch + 1, "step": step + 1, "steps": steps, "loss": loss.item()})
        elapsed = time.perf_counter() - t0
        val = occupancy_iou(implicit, codes[val_idx], source, val_idx, points=_rows(points, val_idx))
        row = {
            "epoch": epoch + 1,
            "train_bce": loss_sum / max(seen, 1),
            "val_iou": float(val.mean()) if len(val) else None,
            "time_s": round(elapsed, 3),
            "shapes_per_s": round(seen / max(elapsed, 1e-9), 1),
        }
        history.append(row)
        save_checkpoint(ckpt_path, model, full_config, {"epoch": epoch + 1}, optimizer)
        _write_history(run / "metrics.jsonl", history)
        if on_epoch:
            on_epoch(row)
    summary: dict[str, Any] = {
        "epochs_done": history[-1]["epoch"] if history else 0,
        "head": implicit.config.to_dict(),
        "device": str(device),
    }
    if history and history[-1]["epoch"] == cfg.epochs:
        test_idx = ds.indices("test")
        if len(test_idx):
            test = occupancy_iou(implicit, codes[test_idx], source, test_idx, points=_rows(points, test_idx))
            summary["test_iou"] = float(test.mean()) if len(test) else None
            summary["test_shapes"] = int(len(test))
        summary["final_train_bce"] = history[-1]["train_bce"]
        summary["final_val_iou"] = history[-1]["val_iou"]
        summary["iou_definition"] = (
            "IoU of logit>0 vs stored labels over the uniform queries in the box, mean over shapes"
        )
        summary["train_time_s"] = round(sum(h["time_s"] for h in history), 2)
        save_checkpoint(run / "model.safetensors", model, full_config, {"epoch": cfg.epochs})
        atomic_write_json(run / "metrics.json", summary)
    if history:
        from shapelatent.viz.figures import plot_implicit_curve

        plot_implicit_curve(history, run / "loss_curve.png")
    return ImplicitTrainResult(run, history, summary)
