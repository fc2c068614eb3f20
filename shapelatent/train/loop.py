"""The training loop: deterministic per-epoch shuffling and augmentation, atomic checkpoints, exact resume.

Run folder layout::

    config.json            resolved run config + the dataset's sampling/normalisation
    provenance.json        config, seed, version, commit, command line
    checkpoints/last.safetensors   full state after the last finished epoch (model + optimizer)
    model.safetensors      the final weights (weights-only checkpoint, used by encode/interpolate)
    metrics.jsonl          one JSON line per epoch (train loss, validation Chamfer, time, shapes/s)
    metrics.json           final summary (test-split Chamfer, ...)
    loss_curve.png         train and validation loss per epoch
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shapelatent.data.format import ShapeDataset
from shapelatent.errors import CheckpointError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.ops.chamfer import chamfer_distance
from shapelatent.provenance import provenance
from shapelatent.train.checkpoint import load_checkpoint, save_checkpoint
from shapelatent.train.config import RunConfig
from shapelatent.viz.figures import plot_loss_curve

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "evaluate_chamfer", "normal_consistency", "resolve_device", "train"]

StepCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto.")
    return torch.device(device)


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


def _augment(
    points: np.ndarray, normals: np.ndarray, rng: np.random.Generator, rotate: bool, scale: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """points, normals: (B, P, 3) -> augmented copies (rotation about +Y, isotropic scale)."""
    if rotate:
        theta = rng.uniform(0.0, 2.0 * math.pi, size=len(points))
        c, s = np.cos(theta), np.sin(theta)
        rot = np.zeros((len(points), 3, 3), dtype=np.float32)
        rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1.0, -s, c
        points = np.einsum("bij,bpj->bpi", rot, points).astype(np.float32)
        normals = np.einsum("bij,bpj->bpi", rot, normals).astype(np.float32)
    if scale is not None:
        k = rng.uniform(scale[0], scale[1], size=(len(points), 1, 1)).astype(np.float32)
        points = points * k
    return points, normals


def _batch(ds: ShapeDataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.sort(idx)  # sorted reads from the memory map are sequential
    inv = np.argsort(np.argsort(idx))
    return np.asarray(ds.points[order])[inv], np.asarray(ds.normals[order])[inv]


@torch.no_grad()
def evaluate_chamfer(
    model: PointCloudAutoencoder,
    ds: ShapeDataset,
    indices: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    backend: str = "auto",
) -> np.ndarray:
    """Per-shape Chamfer distance between each shape and its reconstruction.

    Returns:
        (M,) float64, one value per index, in the order given.
    """
    model.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        pts, _ = _batch(ds, indices[start : start + batch_size])
        x = torch.from_numpy(pts).to(device)
        rec = model(x)
        out.append(chamfer_distance(rec.points, x, reduction="none", backend=backend).loss.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _read_history(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= upto_epoch]


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in history))


def train(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: RunConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    on_step: StepCallback | None = None,
    on_epoch: StepCallback | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train the autoencoder on a dataset's train split, validating on its val split each epoch.

    Args:
        data_dir: a dataset folder (see ``shapelatent.data.format``).
        out_dir: the run folder.
        config: the run config (defaults; the model's ``num_points`` is set from the dataset).
        resume: continue from ``out_dir/checkpoints/last.safetensors`` with the config stored there;
            the losses are the same as an uninterrupted run with the same seed (same device and threads).
        force: start afresh in an existing run folder, replacing its files.
        on_step: called after each step with ``{"epoch", "step", "steps", "loss"}`` (progress bars).
        on_epoch: called after each epoch with that epoch's metrics.
        stop_after_epochs: stop (as if interrupted) after this many epochs of this call; for tests.

    Raises:
        OutputExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``force`` was given.
        CheckpointError: ``resume`` without a checkpoint, or a checkpoint of a different model.
    """
    from dataclasses import replace

    ds = ShapeDataset(data_dir)
    run = Path(out_dir)
    ckpt_path = run / "checkpoints" / "last.safetensors"
    start_epoch = 0
    ckpt = None
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume from; start a new run without --resume.")
        ckpt = load_checkpoint(ckpt_path)
        stored = RunConfig.from_dict(ckpt.config["run"])
        if config is not None and config.train.epochs != stored.train.epochs:
            stored = stored.with_overrides(train={"epochs": config.train.epochs})
        config = stored
        start_epoch = int(ckpt.state["epoch"])
    elif (run / "config.json").exists() and not force:
        raise OutputExistsError(
            f"{run}: already holds a run; pass --resume to continue it or --force to start over, "
            "or choose another --out."
        )
    config = config or RunConfig()
    if config.model.num_points != ds.num_points:
        config = RunConfig(model=replace(config.model, num_points=ds.num_points), train=config.train)
    tc = config.train
    device = resolve_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    if len(train_idx) == 0:
        raise ValueError(f"{ds.root}: the train split is empty; build a larger dataset.")
    if config.model.predict_normals and not ds.info.get("has_normals", True):
        raise ValueError(f"{ds.root}: predict_normals needs a dataset with normals.")

    torch.manual_seed(tc.seed)
    model = PointCloudAutoencoder(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    full_config = {
        "run": config.to_dict(),
        "data": {
            "path": str(ds.root.resolve()),
            "sampling": ds.info.get("sampling"),
            "classes": ds.info.get("classes"),
        },
    }
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt.model_state)
        except RuntimeError as exc:
            raise CheckpointError(f"{ckpt_path}: weights do not match the model config ({exc}).") from exc
        if ckpt.optim_state is not None:
            optimizer.load_state_dict(ckpt.optim_state)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", full_config)
    atomic_write_json(run / "provenance.json", provenance(full_config, tc.seed))
    history = _read_history(run / "metrics.jsonl", start_epoch) if resume else []
    best = min((h["val_chamfer"] for h in history if h.get("val_chamfer") is not None), default=math.inf)
    ckpt_meta = {"run": config.to_dict(), "data": full_config["data"]}
    steps = math.ceil(len(train_idx) / tc.batch_size)
    end_epoch = tc.epochs if stop_after_epochs is None else min(tc.epochs, start_epoch + stop_after_epochs)
    logger.info(
        "training on %s: %d train / %d val shapes, epochs %d..%d",
        device,
        len(train_idx),
        len(val_idx),
        start_epoch + 1,
        end_epoch,
    )

    for epoch in range(start_epoch, end_epoch):
        rng = np.random.default_rng([tc.seed, epoch])
        order = rng.permutation(train_idx)
        model.train()
        t0 = time.perf_counter()
        loss_sum, cd_sum, seen = 0.0, 0.0, 0
        for step in range(steps):
            idx = order[step * tc.batch_size : (step + 1) * tc.batch_size]
            pts, nrm = _batch(ds, idx)
            pts, nrm = _augment(pts, nrm, rng, tc.augment_rotate, tc.augment_scale)
            x = torch.from_numpy(pts).to(device)
            out = model(x)
            cd = chamfer_distance(out.points, x, reduction="mean", backend=tc.chamfer_backend)
            loss = cd.loss
            if out.normals is not None:
                n = torch.from_numpy(nrm).to(device)
                loss = loss + tc.normal_weight * normal_consistency(out.normals, n, cd.idx_xy, cd.idx_yx).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            cd_sum += cd.loss.item() * len(idx)
            seen += len(idx)
            if on_step:
                on_step({"epoch": epoch + 1, "step": step + 1, "steps": steps, "loss": loss.item()})
        elapsed = time.perf_counter() - t0
        val = evaluate_chamfer(model, ds, val_idx, device, backend=tc.chamfer_backend) if len(val_idx) else None
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_chamfer": cd_sum / seen,
            "val_chamfer": float(val.mean()) if val is not None else None,
            "time_s": round(elapsed, 3),
            "shapes_per_s": round(seen / elapsed, 1),
        }
        history.append(row)
        if row["val_chamfer"] is not None and row["val_chamfer"] < best:
            best = row["val_chamfer"]
            save_checkpoint(run / "checkpoints" / "best.safetensors", model, ckpt_meta, {"epoch": epoch + 1})
        save_checkpoint(ckpt_path, model, ckpt_meta, {"epoch": epoch + 1, "best_val": best}, optimizer)
        _write_history(run / "metrics.jsonl", history)
        if on_epoch:
            on_epoch(row)

    summary: dict[str, Any] = {"epochs_done": history[-1]["epoch"] if history else 0, "device": str(device)}
    if history and history[-1]["epoch"] == tc.epochs:
        save_checkpoint(run / "model.safetensors", model, ckpt_meta, {"epoch": tc.epochs})
        test_idx = ds.indices("test")
        if len(test_idx):
            test = evaluate_chamfer(model, ds, test_idx, device, backend=tc.chamfer_backend)
            summary["test_chamfer"] = float(test.mean())
            summary["test_chamfer_median"] = float(np.median(test))
            summary["test_shapes"] = len(test_idx)
        summary["final_train_loss"] = history[-1]["train_loss"]
        summary["final_val_chamfer"] = history[-1]["val_chamfer"]
        summary["best_val_chamfer"] = None if best == math.inf else best
        summary["chamfer_definition"] = (
            "squared L2, mean over points per direction, two directions summed; shapes normalised as in dataset.json"
        )
        summary["train_time_s"] = round(sum(h["time_s"] for h in history), 2)
        atomic_write_json(run / "metrics.json", summary)
    plot_loss_curve(history, run / "loss_curve.png")
    return TrainResult(run, history, summary)
