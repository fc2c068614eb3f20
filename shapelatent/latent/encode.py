"""Encode shapes to latent codes, applying exactly the sampling and normalisation the model was trained with."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shapelatent.data.build import SamplingConfig, default_workers, parallel_map, sample_file
from shapelatent.data.format import ShapeDataset
from shapelatent.errors import DatasetFormatError, ShapelatentError
from shapelatent.io.atomic import atomic_write_json
from shapelatent.latent.refine import RefineResult, RefineSettings, load_for_refinement, refine_summary
from shapelatent.latent.store import LatentStore, RefinementRecord, model_fingerprint
from shapelatent.models.load import LoadedModel
from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.pretrained import resolve_model_path
from shapelatent.provenance import provenance

__all__ = [
    "EncodeInputs",
    "check_dataset_matches",
    "codes_for_points",
    "collect_inputs",
    "encode_to_store",
    "model_sampling",
]

Progress = Callable[[int], None]


def model_sampling(loaded: LoadedModel) -> SamplingConfig:
    """The sampling/normalisation the model was trained with (P = the model's ``num_points``)."""
    if not loaded.sampling:
        raise ShapelatentError("the checkpoint records no sampling/normalisation; it was not trained by shapelatent.")
    return SamplingConfig.from_dict(loaded.sampling)


def check_dataset_matches(
    loaded: LoadedModel, ds: ShapeDataset, model_path: str | os.PathLike[str], use: str = "Evaluate on"
) -> None:
    """The dataset must be sampled as the model's training data was (same P, sampling method and normalisation).

    Args:
        use: how the fix in the message starts (``"Evaluate on"``, ``"Fine-tune on"``).

    Raises:
        DatasetFormatError: naming both sides and the fix.
    """
    cfg = model_sampling(loaded).to_dict()
    got = ds.info.get("sampling") or {}
    checks = {
        "points per shape (P)": (ds.num_points, cfg["num_points"]),
        "sampling method": (got.get("method", cfg["method"]), cfg["method"]),
        "normalisation": (got.get("normalization"), cfg["normalization"]),
    }
    bad = {k: v for k, v in checks.items() if v[0] != v[1]}
    if bad:
        what = "; ".join(f"{k}: dataset {v[0]!r}, model {v[1]!r}" for k, v in bad.items())
        raise DatasetFormatError(
            f"{ds.root} does not match the model {model_path} ({what}). {use} a dataset built with the "
            f"model's sampling (`shapelatent data build ... --points {cfg['num_points']}` with the same "
            "normalisation), e.g. the dataset it was trained on."
        )


@torch.no_grad()
def codes_for_points(
    model: PointCloudAutoencoder,
    points: np.ndarray,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Encode normalised clouds.

    Args:
        points: (N, P, 3) float array (already normalised as the model expects).
        device: where the batches are encoded; the model must be there (default: the model's device).

    Returns:
        (N, Z) float32 codes.
    """
    model.eval()
    if device is None:
        device = next(model.parameters()).device
    out = []
    for start in range(0, len(points), batch_size):
        chunk = np.array(points[start : start + batch_size], dtype=np.float32)  # a writable copy
        x = torch.from_numpy(chunk).to(device)
        out.append(model.encode(x).cpu().numpy())
    z = getattr(getattr(model, "config", None), "latent_dim", 0)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, z), dtype=np.float32)


@dataclass
class EncodeInputs:
    """Inputs resolved from the command line: mesh/point files and built datasets."""

    files: list[tuple[str, str, str]]  # (id, path, class)
    datasets: list[Path]


def collect_inputs(paths: Sequence[str | os.PathLike[str]]) -> EncodeInputs:
    """Resolve files, folders (every mesh / point file under them; class = first sub-folder) and dataset folders.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    from shapelatent.data.sources.folder import list_inputs

    files: list[tuple[str, str, str]] = []
    datasets: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder.")
        if p.is_dir() and (p / "dataset.json").exists():
            datasets.append(p)
        elif p.is_dir():
            for f in list_inputs(p):
                rel = f.relative_to(p).as_posix()
                parts = rel.split("/")
                files.append((f"{p.name}/{rel}", str(f), parts[0] if len(parts) > 1 else ""))
        else:
            files.append((p.as_posix(), str(p), ""))
    return EncodeInputs(files, datasets)


@dataclass(frozen=True)
class _SampleTask:
    cfg: SamplingConfig

    def __call__(self, path: str) -> tuple[np.ndarray | None, str]:
        try:
            return sample_file(path, self.cfg, seed=self.cfg.seed).points, ""
        except (ShapelatentError, ValueError, OSError) as exc:
            return None, str(exc)


def _record(refine: RefineSettings | None, parts: Sequence[RefineResult]) -> RefinementRecord | None:
    """One store record of the refinement results of consecutive chunks (None without refinement)."""
    if refine is None:
        return None
    n = sum(len(p.codes) for p in parts)
    seconds = sum(p.seconds_per_shape * len(p.codes) for p in parts)
    return RefinementRecord(
        key=refine.key,
        settings=refine.to_dict(),
        chamfer_before=np.concatenate([p.chamfer_before for p in parts]).tolist(),
        chamfer_after=np.concatenate([p.chamfer_after for p in parts]).tolist(),
        seconds_per_shape=seconds / n if n else 0.0,
    )


def encode_to_store(
    model_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    append: bool = False,
    force: bool = False,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
    id_prefix: str = "",
    refine: RefineSettings | None = None,
    on_refined: Callable[[RefineResult], None] | None = None,
) -> tuple[LatentStore, list[dict[str, str]]]:
    """Encode files, folders and datasets into a store.

    Files are read and sampled in a process pool (all cores by default) exactly as the model's training
    data was (P points, same normalisation, fixed seed, so encoding a file twice gives the same code);
    datasets are encoded from their stored points, which must have been sampled the same way.

    Every check (the model, the datasets' sampling, ids that clash with the store or with each other) runs
    before anything is encoded.

    Args:
        id_prefix: stored ids are ``id_prefix + id`` (the item's id in its dataset, or its file path); use it
            to append a dataset whose ids are already in the store. The unprefixed id is kept as ``source_id``.
        refine: refine every code with the decoder frozen (:mod:`shapelatent.latent.refine`) before storing it; the
            store records which codes were refined, the settings and the Chamfer before and after. ``progress`` is
            then called once more per shape, as it is refined.
        on_refined: called with each batch's :class:`~shapelatent.latent.refine.RefineResult` (e.g. to report the
            gain with :func:`~shapelatent.latent.refine.refine_summary`).

    Returns:
        the store, and the inputs that could not be encoded (``{"source", "reason"}``).

    Raises:
        StoreError: ``append`` to a store made by another model, or ids already in the store or repeated.
        DatasetFormatError: a dataset sampled differently from the model's training data.
        CheckpointError: ``refine`` asked of a model without decoder weights.
        ValueError: an ``id_prefix`` with whitespace or control characters.
    """
    if any(c.isspace() or not c.isprintable() for c in id_prefix):
        raise ValueError(f"--id-prefix must not contain whitespace or control characters; got {id_prefix!r}")
    loaded = load_for_refinement(model_path, refine)
    cfg = model_sampling(loaded)
    fp = model_fingerprint(loaded.model)
    model = loaded.model.to(device)
    resolved = collect_inputs(inputs)
    model_info: dict[str, Any] = {
        "fingerprint": fp,
        "path": str(resolve_model_path(model_path).resolve()),
        "sampling": cfg.to_dict(),
    }
    if append and Path(out).exists():
        store = LatentStore.open(out)
        store.check_model(fp, str(model_path))
    else:
        store = LatentStore.create(out, latent_dim=model.config.latent_dim, model=model_info, force=force)
    failed: list[dict[str, str]] = []

    datasets = [ShapeDataset(p) for p in resolved.datasets]
    for ds_path, ds in zip(resolved.datasets, datasets, strict=True):
        ds_norm = ds.info.get("sampling", {}).get("normalization")
        if ds.num_points != cfg.num_points or ds_norm != cfg.normalization.to_dict():
            raise DatasetFormatError(
                f"{ds_path}: sampled with P={ds.num_points} and normalisation {ds_norm}, but the model expects "
                f"P={cfg.num_points} and {cfg.normalization.to_dict()}; rebuild the dataset with those settings "
                "or encode its source files instead."
            )
    planned = [m["id"] for ds in datasets for m in ds.meta] + [item_id for item_id, _, _ in resolved.files]
    store.check_new_ids([id_prefix + i for i in planned])  # fail before encoding anything

    refined: list[RefineResult] = []

    def maybe_refine(points: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, RefineResult | None]:
        if refine is None:
            return codes, None
        res = refine.run(model, points, codes, progress=progress, model_name=str(model_path))
        refined.append(res)
        if on_refined is not None:
            on_refined(res)
        return res.codes, res

    for ds in datasets:
        codes, parts = [], []
        for start in range(0, len(ds), 1024):
            chunk = np.asarray(ds.points[start : start + 1024])
            part_codes = codes_for_points(model, chunk, batch_size, device)
            if progress:
                progress(min(1024, len(ds) - start))
            part_codes, res = maybe_refine(chunk, part_codes)
            codes.append(part_codes)
            parts += [res] if res is not None else []
        store.append(
            np.concatenate(codes),
            [id_prefix + m["id"] for m in ds.meta],
            [m["source"] for m in ds.meta],
            [m["class"] for m in ds.meta],
            [m["split"] for m in ds.meta],
            source_ids=[m["id"] for m in ds.meta],
            refinement=_record(refine, parts),
        )

    if resolved.files:
        task = _SampleTask(cfg)
        per_chunk = 256
        for start in range(0, len(resolved.files), per_chunk):
            part = resolved.files[start : start + per_chunk]
            clouds, keep = [], []
            for (item_id, path, cls), (pts, err) in zip(
                part, parallel_map(task, [p for _, p, _ in part], default_workers(workers)), strict=True
            ):
                if pts is None:
                    failed.append({"source": path, "reason": err})
                else:
                    clouds.append(pts)
                    keep.append((item_id, path, cls))
                if progress:
                    progress(1)
            if keep:
                stacked = np.stack(clouds)
                file_codes, res = maybe_refine(stacked, codes_for_points(model, stacked, batch_size, device))
                store.append(
                    file_codes,
                    [id_prefix + k[0] for k in keep],
                    [k[1] for k in keep],
                    [k[2] for k in keep],
                    source_ids=[k[0] for k in keep],
                    refinement=_record(refine, [res] if res is not None else []),
                )
    record = {"model": model_info, "inputs": [str(i) for i in inputs], "append": append, "id_prefix": id_prefix}
    if refine is not None:
        record["refine"] = refine_summary(refined)
    atomic_write_json(store.path / "provenance.json", provenance(record, cfg.seed))
    if len(store) == 0:
        reasons = "; ".join(f"{f['source']}: {f['reason']}" for f in failed[:3])
        raise ShapelatentError(f"nothing could be encoded ({reasons}).")
    return store, failed
