"""The training loop: deterministic per-epoch shuffling and augmentation, atomic checkpoints, exact resume.

Run folder layout::

    config.json            resolved run config + the dataset's sampling/normalisation
    provenance.json        config, seed, version, commit, command line
    checkpoints/last.safetensors   full state after the last finished epoch (model + optimizer)
    model.safetensors      the final weights (weights-only checkpoint, used by encode/interpolate)
    metrics.jsonl          one JSON line per epoch (train loss, validation Chamfer, time, shapes/s; with an
                           occupancy head also train BCE and validation IoU)
    metrics.json           final summary (test-split Chamfer, ...)
    loss_curve.png         train and validation loss per epoch

Batches come from :mod:`shapelatent.train.data` (positional reads, optional worker processes); under
``torchrun`` the same function trains data-parallel (:mod:`shapelatent.train.distributed`); ``train.amp``
runs the network under autocast while the loss stays float32 (:func:`shapelatent.train.losses.forward_loss`).

A model with an occupancy head (``model.implicit``) is trained jointly: each batch also carries
``train.implicit_queries`` stored occupancy queries per shape (:mod:`shapelatent.train.occupancy`), and the loss is
Chamfer (+ normal term) + ``train.implicit_weight`` * BCE-with-logits of the head on the same codes. To give an
already trained model a head without changing its codes, see :mod:`shapelatent.train.implicit`.
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
from shapelatent.data.merge import shape_weights
from shapelatent.errors import CheckpointError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.ops.chamfer import chamfer_distance
from shapelatent.provenance import provenance
from shapelatent.train.checkpoint import load_checkpoint, save_checkpoint
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.data import NpyRows, TrainLoader, split_batch
from shapelatent.train.distributed import DistContext, check_batch_size, env_ranks, init_distributed, wrap_model
from shapelatent.train.losses import forward_loss_terms
from shapelatent.train.malloc import release_freed_heap, tune_malloc
from shapelatent.train.occupancy import OccupancySource, decoded_points, encode_rows, occupancy_iou
from shapelatent.viz.figures import plot_loss_curve

logger = logging.getLogger(__name__)

__all__ = [
    "TrainResult",
    "evaluate_chamfer",
    "resolve_amp_dtype",
    "resolve_device",
    "train",
]

StepCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def epoch_lr(tc: TrainConfig, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` under ``tc.lr_schedule`` (see :class:`TrainConfig`)."""
    if tc.lr_schedule == "cosine":
        return float(tc.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / tc.epochs)))
    return float(tc.lr)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto.")
    return torch.device(device)


def resolve_amp_dtype(amp: bool, amp_dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp``/``train.amp_dtype`` on ``device``, or None without mixed precision.

    Raises:
        ValueError: float16 asked for on the CPU, or bfloat16 on a GPU without bfloat16 support.
    """
    if not amp:
        return None
    if amp_dtype == "float16":
        if device.type != "cuda":
            raise ValueError(
                "train.amp_dtype='float16' needs a CUDA device (it trains with a gradient scaler); "
                "use amp_dtype 'bfloat16' or 'auto' on the CPU."
            )
        return torch.float16
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if amp_dtype == "bfloat16":
        if not bf16_ok:
            raise ValueError(f"train.amp_dtype='bfloat16' is not supported on {device}; use 'float16' or 'auto'.")
        return torch.bfloat16
    dtype = torch.bfloat16 if bf16_ok else torch.float16
    logger.info("mixed precision: autocast to %s on %s (Chamfer loss in float32)", dtype, device.type)
    return dtype


@torch.no_grad()
def evaluate_chamfer(
    model: PointCloudAutoencoder,
    ds: ShapeDataset,
    indices: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    backend: str = "auto",
) -> np.ndarray:
    """Per-shape Chamfer distance between each shape and its reconstruction (float32 model, eval mode).

    Args:
        indices: (M,) int64 shape indices.

    Returns:
        (M,) float64, one value per index, in the order given.
    """
    model.eval()
    reader = NpyRows(ds.root / "points.npy")
    out = []
    for start in range(0, len(indices), batch_size):
        x = torch.from_numpy(reader.read(indices[start : start + batch_size])).to(device)
        rec = model(x)
        out.append(chamfer_distance(rec.points, x, reduction="none", backend=backend).loss.double().cpu().numpy())
    reader.close()
    return np.concatenate(out) if out else np.zeros(0)


def _evaluate(ctx: DistContext, model: PointCloudAutoencoder, ds: ShapeDataset, idx: np.ndarray, backend: str):
    """evaluate_chamfer on this rank's shard of ``idx``, gathered in order on every rank: (M,) float64."""
    lo, hi = split_batch(len(idx), ctx.rank, ctx.world_size)
    out = ctx.gather_concat(evaluate_chamfer(model, ds, idx[lo:hi], ctx.device, backend=backend))
    release_freed_heap()  # evaluation batches leave freed heap behind; keep the trainer's RSS flat
    return out


def _occupancy_row(model, ds, occupancy, val_idx, train_bce: float) -> dict[str, Any]:
    """Joint training's epoch columns: train BCE and Occupancy Networks' IoU on the val split."""
    codes = encode_rows(model, ds.root, val_idx)
    pts = decoded_points(model, codes)
    iou = occupancy_iou(model.implicit, codes, occupancy, val_idx, points=pts) if len(val_idx) else np.zeros(0)
    return {"train_bce": train_bce, "val_iou": float(iou.mean()) if len(iou) else None}


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
    init_from: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train the autoencoder on a dataset's train split, validating on its val split each epoch.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this; they train one model data-parallel
    and rank 0 alone writes the run folder (see :mod:`shapelatent.train.distributed`).

    Args:
        data_dir: a dataset folder (see ``shapelatent.data.format``).
        out_dir: the run folder.
        config: the run config (defaults; the model's ``num_points`` is set from the dataset).
        resume: continue from ``out_dir/checkpoints/last.safetensors`` with the config stored there (but
            ``train.epochs`` and ``train.workers`` from ``config``); the losses are the same as an uninterrupted
            run with the same seed (same device, threads and number of processes).
        force: start afresh in an existing run folder, replacing its files.
        on_step: called after each step with ``{"epoch", "step", "steps", "loss"}`` (progress bars).
        on_epoch: called after each epoch with that epoch's metrics.
        stop_after_epochs: stop (as if interrupted) after this many epochs of this call; for tests.
        init_from: start a new run from this model's weights (a run folder, checkpoint or shipped model name;
            see :mod:`shapelatent.train.finetune`): fresh optimiser and schedule; ``config=None`` takes its model
            config. A resumed run continues from its own checkpoint, so not with ``resume``.

    Raises:
        OutputExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``force`` was given.
        CheckpointError: ``resume`` without a checkpoint, or a checkpoint of a different model; ``init_from``
            not loadable or of another architecture.
        ValueError: a bad config, or a global batch not divisible by the number of processes.
    """
    from dataclasses import replace

    ds = ShapeDataset(data_dir)
    run = Path(out_dir)
    ckpt_path = run / "checkpoints" / "last.safetensors"
    start_epoch = 0
    ckpt = None
    if resume and init_from is not None:
        raise ValueError(
            f"{run}: init_from starts a new run from another model's weights and resume continues this run's own "
            "checkpoint; drop one of them."
        )
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume from; start a new run without --resume.")
        ckpt = load_checkpoint(ckpt_path)
        stored = RunConfig.from_dict(ckpt.config["run"])
        if config is not None:  # more epochs may be asked for; reader processes never change the batches
            stored = stored.with_overrides(train={"epochs": config.train.epochs, "workers": config.train.workers})
        config = stored
        start_epoch = int(ckpt.state["epoch"])
    elif (run / "config.json").exists() and not force:
        raise OutputExistsError(
            f"{run}: already holds a run; pass --resume to continue it or --force to start over, "
            "or choose another --out."
        )
    init = None
    if init_from is not None:
        from shapelatent.train.finetune import initial_weights

        init_state, config, init_record = initial_weights(init_from, config, ds)
        init = (init_state, init_record)
    config = config or RunConfig()
    if config.model.num_points != ds.num_points:
        config = RunConfig(model=replace(config.model, num_points=ds.num_points), train=config.train)
    tc = config.train
    device = resolve_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    tune_malloc()  # activations reused from the heap (shapelatent.train.malloc)
    train_idx = ds.indices("train")
    if len(train_idx) == 0:
        raise ValueError(f"{ds.root}: the train split is empty; build a larger dataset.")
    world = env_ranks()[1]
    check_batch_size(tc.batch_size, world)
    if len(train_idx) < world:
        raise ValueError(f"{ds.root}: the train split has {len(train_idx)} shapes, fewer than the {world} processes.")
    if config.model.predict_normals and not ds.info.get("has_normals", True):
        raise ValueError(f"{ds.root}: predict_normals needs a dataset with normals.")
    amp_dtype = resolve_amp_dtype(tc.amp, tc.amp_dtype, device)
    ctx = init_distributed(device)
    try:
        return _fit(ds, run, config, ckpt, start_epoch, ctx, amp_dtype, on_step, on_epoch, stop_after_epochs, init)
    finally:
        ctx.close()


def _fit(ds, run, config, ckpt, start_epoch, ctx, amp_dtype, on_step, on_epoch, stop_after_epochs, init) -> TrainResult:
    tc, device = config.train, ctx.device
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    ckpt_path = run / "checkpoints" / "last.safetensors"
    torch.manual_seed(tc.seed)
    model = PointCloudAutoencoder(config.model).to(device)
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt.model_state)
        except RuntimeError as exc:
            raise CheckpointError(f"{ckpt_path}: weights do not match the model config ({exc}).") from exc
    elif init is not None:
        model.load_state_dict(init[0])  # fine-tuning: the source's weights (shapelatent.train.finetune)
    net = wrap_model(model, ctx, tc.sync_bn)  # DDP wrapper (or model itself); checkpoints hold `model`
    if tc.weight_decay > 0:
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    if ckpt is not None:
        if ckpt.optim_state is not None:
            optimizer.load_state_dict(ckpt.optim_state)
        if scaler is not None and ckpt.state.get("grad_scaler"):
            scaler.load_state_dict(ckpt.state["grad_scaler"])
    data_info = {"path": str(ds.root.resolve()), "sampling": ds.info.get("sampling"), "classes": ds.info.get("classes")}
    if ds.info.get("merged_from"):
        data_info["merged_from"] = [
            {k: e.get(k) for k in ("path", "num_shapes", "weight")} for e in ds.info["merged_from"]
        ]
    full_config = {"run": config.to_dict(), "data": data_info}
    if init is not None:
        full_config["init_from"] = init[1]
    elif ckpt is not None and ckpt.config.get("init_from"):
        full_config["init_from"] = ckpt.config["init_from"]  # a resumed fine-tuning run keeps its record
    history = _read_history(run / "metrics.jsonl", start_epoch) if ckpt is not None else []
    ctx.barrier()  # every rank has read the old run folder before rank 0 writes to it
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "config.json", full_config)
        atomic_write_json(run / "provenance.json", provenance(full_config, tc.seed))
    best = min((h["val_chamfer"] for h in history if h.get("val_chamfer") is not None), default=math.inf)
    ckpt_meta = {k: v for k, v in full_config.items() if k in ("run", "data", "init_from")}
    aug = {
        "rotate": tc.augment_rotate,
        "scale": tc.augment_scale,
        "mirror": tc.augment_mirror,
        "aniso": tc.augment_aniso,
        "weights": shape_weights(ds, train_idx),
        "with_normals": config.model.predict_normals,
    }
    place = {"rank": ctx.rank, "world_size": ctx.world_size, "workers": tc.workers, "pin_memory": device.type == "cuda"}
    occupancy = None
    if config.model.implicit is not None:  # joint training: Chamfer + implicit_weight * BCE
        if ctx.distributed:
            raise ValueError(
                "joint training of the occupancy head runs in one process; train the autoencoder with torchrun, "
                "then add the head with `shapelatent train-implicit`."
            )
        occupancy = OccupancySource(ds.root, len(ds))
        occupancy.check_queries(tc.implicit_queries, "train.implicit_queries")
        place["occupancy"], place["occupancy_queries"] = occupancy, tc.implicit_queries
    loader = TrainLoader(ds.root, train_idx, tc.batch_size, tc.seed, **aug, **place)
    end_epoch = tc.epochs if stop_after_epochs is None else min(tc.epochs, start_epoch + stop_after_epochs)
    if ctx.is_main:
        logger.info(
            "training on %s: %d train / %d val shapes, epochs %d..%d, %d process(es) x %d shapes per step",
            device,
            len(train_idx),
            len(val_idx),
            start_epoch + 1,
            end_epoch,
            ctx.world_size,
            tc.batch_size // ctx.world_size,
        )

    for epoch in range(start_epoch, end_epoch):
        net.train()
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(tc, epoch)
        t0 = time.perf_counter()
        loss_sum, cd_sum, seen, bce_sum = 0.0, 0.0, 0.0, 0.0
        for step, batch in enumerate(loader.epoch(epoch)):
            x = batch.points.to(device, non_blocking=True)
            n = None if batch.normals is None else batch.normals.to(device, non_blocking=True)
            occ = None
            if batch.queries is not None:
                assert batch.occupancy is not None and batch.occupancy_valid is not None  # drawn together
                occ = (batch.queries.to(device), batch.occupancy.to(device), batch.occupancy_valid.to(device))
            terms = forward_loss_terms(
                net, x, n, amp_dtype, tc.normal_weight, tc.chamfer_backend, occ, tc.implicit_weight, tc.emd_weight
            )
            loss, cd = terms.loss, terms.chamfer
            if terms.bce is not None:
                bce_sum += terms.bce.item() * len(x)
            # DDP averages gradients over ranks; weighting by this rank's share makes that the global-batch mean
            objective = loss * (len(x) * ctx.world_size / batch.global_size) if ctx.distributed else loss
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(objective).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                objective.backward()
                optimizer.step()
            sums = ctx.all_reduce_sum([loss.item() * len(x), cd.item() * len(x), float(len(x))])
            loss_sum, cd_sum, seen = loss_sum + sums[0], cd_sum + sums[1], seen + sums[2]
            if on_step:
                on_step({"epoch": epoch + 1, "step": step + 1, "steps": loader.steps, "loss": sums[0] / sums[2]})
        elapsed = time.perf_counter() - t0
        val = _evaluate(ctx, model, ds, val_idx, tc.chamfer_backend) if len(val_idx) else None
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_chamfer": cd_sum / seen,
            "val_chamfer": float(val.mean()) if val is not None else None,
            **(_occupancy_row(model, ds, occupancy, val_idx, bce_sum / seen) if occupancy is not None else {}),
            "time_s": round(elapsed, 3),
            "shapes_per_s": round(seen / elapsed, 1),
        }
        if tc.lr_schedule != "constant":
            row["lr"] = epoch_lr(tc, epoch)
        history.append(row)
        ctx.check_replicas(model, f"after epoch {epoch + 1}", buffers=tc.sync_bn)
        improved = row["val_chamfer"] is not None and row["val_chamfer"] < best
        state = {"epoch": epoch + 1, "best_val": row["val_chamfer"] if improved else best}
        if scaler is not None:
            state["grad_scaler"] = scaler.state_dict()
        if ctx.is_main:
            if improved:
                save_checkpoint(run / "checkpoints" / "best.safetensors", model, ckpt_meta, {"epoch": epoch + 1})
            save_checkpoint(ckpt_path, model, ckpt_meta, state, optimizer)
            _write_history(run / "metrics.jsonl", history)
        best = state["best_val"]
        ctx.barrier()
        if on_epoch:
            on_epoch(row)

    summary: dict[str, Any] = {
        "epochs_done": history[-1]["epoch"] if history else 0,
        "device": str(device),
        "processes": ctx.world_size,
        "amp_dtype": str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
    }
    if history and history[-1]["epoch"] == tc.epochs:
        test_idx = ds.indices("test")
        if len(test_idx):
            test = _evaluate(ctx, model, ds, test_idx, tc.chamfer_backend)
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
        if ctx.is_main:
            save_checkpoint(run / "model.safetensors", model, ckpt_meta, {"epoch": tc.epochs})
            atomic_write_json(run / "metrics.json", summary)
    if ctx.is_main:
        plot_loss_curve(history, run / "loss_curve.png")
    ctx.dump_replica(model)
    ctx.barrier()
    return TrainResult(run, history, summary)
