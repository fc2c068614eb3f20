"""Evaluate a trained run on a dataset split: reconstruction, baselines, l-GMM generation and latent metrics.

:func:`evaluate_run` computes everything and returns it as a JSON-ready record plus the decoded samples;
:func:`write_evaluation` writes ``evaluation.json``, ``evaluation.md``, ``provenance.json`` and (drawn by the
``draw`` it is given) ``samples.png`` into an output folder; :func:`run_evaluation` does both (``shapelatent
evaluate``).

Protocol, on the evaluated shapes (a split, optionally restricted to some classes):

1. Reconstruction: Chamfer and EMD between each shape and its reconstruction (encode, then decode); with
   ``refine`` N, also from each shape's code refined for N Adam steps towards its own points with the decoder
   frozen (test-time refinement, DeepSDF-style; :mod:`shapelatent.latent.refine`), and the time per shape.
2. Mean training shape: the Chamfer barycentre of the training shapes of the same classes, against each shape.
3. Nearest training shape by Chamfer, against each shape (an oracle that memorises the training set), and the
   reconstructions' Chamfer as a ratio to it (ratio of the means; mean and median of the per-shape ratios).
4. Generation: an l-GMM (Achlioptas et al. 2018) fitted on the training codes, sampled and decoded, against
   the evaluated shapes (MMD, COV, 1-NNA, JSD); and a training subset of the same size against them, as a
   reference line of what matching the data distribution scores.
5. Latent: class precision@k (leave-one-out), linear-SVM accuracy, interpolation class consistency.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.format import ShapeDataset
from shapelatent.evaluate.baselines import chamfer_barycenter, nearest_by_chamfer
from shapelatent.evaluate.config import (
    CHAMFER_DEFINITION,
    EMD_DEFINITION,
    EVAL_FORMAT,
    EVAL_VERSION,
    EvalConfig,
    Evaluation,
    Progress,
    check_dataset_matches,
    default_out,
)
from shapelatent.evaluate.generation import (
    generation_scale,
    implicit_generation,
    meshed_generation,
    staged,
    unscale,
)
from shapelatent.evaluate.latent import class_precision, interpolation_consistency, linear_svm, sample_titles
from shapelatent.evaluate.output import check_out, write_evaluation
from shapelatent.evaluate.reconstruction import (
    decode_clouds,
    pairwise_metrics,
    ratio_to_nearest,
    refined_reconstruction,
    summary,
)
from shapelatent.latent.encode import codes_for_points
from shapelatent.latent.generate import LatentGMM
from shapelatent.latent.store import model_fingerprint
from shapelatent.models.load import load_model
from shapelatent.pretrained import resolve_model_path
from shapelatent.viz.drawer import StripDrawer

__all__ = ["evaluate_run", "run_evaluation"]

logger = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """JSON-safe numbers: NaN and inf become None, numpy scalars become Python ones (recursively)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _select(ds: ShapeDataset, config: EvalConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (all shapes of the chosen classes, the evaluated split, the training split)."""
    classes = np.array(ds.classes(), dtype=object)
    keep = np.ones(len(ds), dtype=bool)
    if config.classes is not None:
        known = sorted(set(classes.tolist()))
        unknown = [c for c in config.classes if c not in known]
        if unknown:
            raise ValueError(
                f"{ds.root}: no class {', '.join(map(repr, unknown))}; classes in the dataset: {', '.join(known)}"
            )
        keep = np.isin(classes, list(config.classes))
    chosen = np.flatnonzero(keep)
    evaluated = np.intersect1d(ds.indices(config.split), chosen)
    train = np.intersect1d(ds.indices("train"), chosen)
    where = f" of classes {', '.join(config.classes)}" if config.classes else ""
    if len(evaluated) < 2:
        raise ValueError(
            f"{ds.root}: the {config.split!r} split has {len(evaluated)} shapes{where}; evaluation needs at least 2 "
            "(choose another --split or more --classes)"
        )
    if len(train) < 2:
        raise ValueError(f"{ds.root}: the 'train' split has {len(train)} shapes{where}; the baselines need at least 2")
    if config.split == "train":
        logger.warning("evaluating on the training split: the nearest-training-shape baseline is 0 by construction")
    return chosen, evaluated, train


def evaluate_run(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    config: EvalConfig | None = None,
    *,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate a trained model on a dataset split (see the module docstring for the protocol).

    Args:
        model_path: a run folder or a model/checkpoint file.
        data_path: a dataset folder sampled like the model's training data.
        config: what to evaluate; defaults to :class:`EvalConfig` ().
        progress: ``progress(stage, done, total)`` after each chunk of work.

    Returns:
        :class:`Evaluation`.

    Raises:
        DatasetFormatError: the dataset does not match the model.
        ValueError: bad options, unknown classes, too few shapes in the split.
    """
    config = config or EvalConfig()
    config.validate()
    from shapelatent.metrics import generation_metrics, jsd_notes_to_log

    timing: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timing[name] = round(now - clock, 3)
        clock = now

    loaded = load_model(model_path)
    ds = ShapeDataset(data_path)
    check_dataset_matches(loaded, ds, model_path)
    chosen, ev_idx, tr_idx = _select(ds, config)
    meta = ds.meta
    ev_classes = [meta[i]["class"] for i in ev_idx]
    tr_classes = [meta[i]["class"] for i in tr_idx]
    ev_pts = np.asarray(ds.points[ev_idx], dtype=np.float32)  # (M, P, 3)
    tr_pts = np.asarray(ds.points[tr_idx], dtype=np.float32)  # (N, P, 3)

    # Codes of every chosen shape (all splits), encoded on the device, then the model back on the CPU.
    codes_all = []
    model = loaded.model.to(config.device)
    for start in range(0, len(chosen), 1024):
        part = np.asarray(ds.points[chosen[start : start + 1024]])
        codes_all.append(codes_for_points(model, part, config.batch_size, config.device))
        if progress is not None:
            progress("encoding", min(start + 1024, len(chosen)), len(chosen))
    loaded.model.to("cpu")
    codes_all_arr = np.concatenate(codes_all)  # (C, Z)
    pos = {int(i): k for k, i in enumerate(chosen)}
    ev_codes = codes_all_arr[[pos[int(i)] for i in ev_idx]]  # (M, Z)
    tr_codes = codes_all_arr[[pos[int(i)] for i in tr_idx]]  # (N, Z)
    lap("encode")

    recon = decode_clouds(loaded, ev_codes)
    rec_cd, rec_emd = pairwise_metrics(recon, ev_pts, config, "reconstruction", progress)
    lap("reconstruction")
    refined = refined_reconstruction(loaded, model_path, ev_pts, ev_codes, config, progress) if config.refine else None
    if refined is not None:
        lap("refinement")

    bary = chamfer_barycenter(
        tr_pts,
        steps=config.barycenter_steps,
        lr=config.barycenter_lr,
        batch_size=config.barycenter_batch,
        medoid_subset=config.medoid_subset,
        seed=config.seed,
        backend=config.chamfer_backend,
        device=config.device,
        progress=staged(progress, "mean training shape"),
    )
    mean_shape = np.broadcast_to(bary.points, ev_pts.shape)
    mean_cd, mean_emd = pairwise_metrics(mean_shape, ev_pts, config, "mean shape vs shapes", progress)
    lap("mean_shape")

    nearest = nearest_by_chamfer(
        ev_pts,
        tr_pts,
        backend=config.chamfer_backend,
        device=config.device,
        progress=staged(progress, "nearest training shape"),
    )
    near_cd, near_emd = pairwise_metrics(tr_pts[nearest.indices], ev_pts, config, "nearest vs shapes", progress)
    lap("nearest_train")
    ratios = {"model": ratio_to_nearest(rec_cd, near_cd)}
    if refined is not None:
        ratios["refined"] = ratio_to_nearest(refined["per_shape_cd"], near_cd)

    n_samples = config.samples or len(ev_idx)
    components = min(config.gmm_components, len(tr_codes))
    gmm = LatentGMM(components, config.gmm_covariance, config.seed).fit(tr_codes)
    gen_codes = gmm.sample(n_samples)
    gen_pts = decode_clouds(loaded, gen_codes)
    gen_kwargs: dict[str, Any] = {
        "metrics": ("cd", "emd"),
        "normalize": config.normalize,
        "emd_method": config.emd_method,
        "backend": config.chamfer_backend,
        "device": config.device,
    }
    s = generation_scale(ds, config.normalize)
    rng = np.random.default_rng(config.seed)
    subset = np.sort(rng.choice(len(tr_pts), min(n_samples, len(tr_pts)), replace=False))
    with jsd_notes_to_log(logger):
        gen_metrics = unscale(
            generation_metrics(gen_pts * s, ev_pts * s, progress=staged(progress, "generation: l-GMM"), **gen_kwargs),
            s,
        )
        train_metrics = unscale(
            generation_metrics(
                tr_pts[subset] * s,
                ev_pts * s,
                progress=staged(progress, "generation: train vs reference"),
                **gen_kwargs,
            ),
            s,
        )
    lap("generation")
    gen_implicit = None
    if config.implicit_generation and loaded.model.has_implicit:
        gen_implicit = implicit_generation(loaded, gen_codes, ev_pts, ds, config, s, gen_kwargs, progress)
        lap("generation_implicit")
    gen_meshed = None
    if config.meshed_generation:
        gen_meshed = meshed_generation(loaded, gen_codes, ev_pts, ds, config, s, gen_kwargs, progress)
        lap("generation_meshed")

    if progress is not None:
        progress("latent metrics", 0, 1)
    all_classes = [meta[i]["class"] for i in chosen]
    latent = {
        "precision_split": class_precision(ev_codes, ev_classes, config.k, f"{config.split} split"),
        "precision_all": class_precision(codes_all_arr, all_classes, config.k, "all splits"),
        "svm": linear_svm(tr_codes, tr_classes, ev_codes, ev_classes, seed=config.seed),
        "interpolation": interpolation_consistency(
            loaded,
            ev_codes,
            ev_classes,
            tr_codes,
            tr_classes,
            n_pairs=config.interpolation_pairs,
            steps=config.interpolation_steps,
            k=config.k,
            seed=config.seed,
        ),
    }
    for row in latent["interpolation"].get("per_pair", []):
        row["a"], row["b"] = meta[ev_idx[row["a"]]]["id"], meta[ev_idx[row["b"]]]["id"]
    titles = sample_titles(loaded, gen_pts[: config.num_sample_pictures], tr_codes, tr_classes, config.k)
    lap("latent")
    meshes = None
    if config.mesh_shapes > 0:
        from shapelatent.evaluate.meshes import mesh_quality, summarize_mesh_quality

        pick = [int(i) for i in ev_idx[: config.mesh_shapes]]  # dataset rows
        mesh_rows = mesh_quality(
            loaded.model,
            data_path,
            pick,
            archives=config.archives,
            seed=config.seed,
            progress=staged(progress, "meshes"),
        )
        meshes = {
            "n_shapes": len(pick),
            "definition": "F-score at 1%/2% of the reference bbox diagonal (Tatarchenko et al. 2019); Chamfer-L1, "
            "normal consistency and IoU as in Occupancy Networks; meshes vs the true source mesh, normalised frame",
            "summary": summarize_mesh_quality(mesh_rows, by_class=True),
            "per_shape": mesh_rows,
        }
        lap("meshes")
    if progress is not None:
        progress("done", 1, 1)

    ids = [meta[i]["id"] for i in ev_idx]
    result = {
        "format": EVAL_FORMAT,
        "format_version": EVAL_VERSION,
        "protocol": {
            "split": config.split,
            "n_shapes": len(ev_idx),
            "n_train": len(tr_idx),
            "n_codes_all": len(chosen),
            "classes": list(config.classes) if config.classes else "all",
            "class_counts": {c: ev_classes.count(c) for c in sorted(set(ev_classes))},
            "points": ds.num_points,
            "dataset_normalization": (ds.info.get("sampling") or {}).get("normalization"),
            "normalize": config.normalize,
            "normalize_applies_to": "generation metrics (both sets); the other metrics use the dataset's clouds",
            "generation_scale": s,
            "generation_scale_note": (
                "with normalize 'none', both sets are scaled by generation_scale before the generation metrics so "
                "that JSD's grid (sphere of radius 0.5) holds them; MMD is scaled back to the dataset's units "
                "(COV and 1-NNA do not change under a global scale). With 'per_shape' every cloud is rescaled to "
                "radius 0.5 and MMD is in those units."
            ),
            "chamfer_definition": CHAMFER_DEFINITION,
            "emd_definition": EMD_DEFINITION,
            "emd_method": config.emd_method,
            "seed": config.seed,
            "model": {
                "path": str(resolve_model_path(model_path).resolve()),  # a shipped name: its folder
                "fingerprint": model_fingerprint(loaded.model),
                "latent_dim": int(loaded.model.config.latent_dim),
            },
            "dataset": {"path": str(Path(data_path).resolve()), "num_shapes": len(ds)},
            "config": asdict(config),
        },
        "reconstruction": {
            "model": {"cd": summary(rec_cd), "emd": summary(rec_emd)},
            "mean_shape": {"cd": summary(mean_cd), "emd": summary(mean_emd)},
            "nearest_train": {"cd": summary(near_cd), "emd": summary(near_emd)},
            **({"refined": {k: v for k, v in refined.items() if k != "per_shape_cd"}} if refined else {}),
            "ratio_to_nearest": ratios,
            "ratio_definition": "Chamfer of the reconstruction over Chamfer of the nearest training shape (the "
            "oracle): of_means = mean CD / mean oracle CD; mean and median of the per-shape ratios. < 1: better "
            "than looking up the closest memorised shape.",
        },
        "barycenter": {
            "init_id": meta[tr_idx[bary.init_index]]["id"],
            "medoid_subset": len(bary.subset),
            "steps": bary.steps,
            "lr": bary.lr,
            "batch_size": bary.batch_size,
            "train_mean_cd_init": bary.mean_cd_init,
            "train_mean_cd_final": bary.mean_cd_final,
        },
        "generation": {
            "n_samples": n_samples,
            "n_ref": len(ev_idx),
            "gmm": {"components": components, "covariance": config.gmm_covariance, "fitted_on": len(tr_codes)},
            "l_gmm": gen_metrics,
            "train_vs_ref": {"n": len(subset), **train_metrics},
            **({"l_gmm_implicit": gen_implicit} if gen_implicit is not None else {}),
            **({"l_gmm_meshed": gen_meshed} if gen_meshed is not None else {}),
        },
        "latent": latent,
        **({"meshes": meshes} if meshes is not None else {}),
        "per_shape": [
            {
                "id": ids[i],
                "class": ev_classes[i],
                "cd": rec_cd[i],
                "emd": rec_emd[i],
                **({"refined_cd": refined["per_shape_cd"][i]} if refined else {}),
                "mean_shape_cd": mean_cd[i],
                "mean_shape_emd": mean_emd[i],
                "nearest_train_id": meta[tr_idx[nearest.indices[i]]]["id"],
                "nearest_train_cd": near_cd[i],
                "nearest_train_emd": near_emd[i],
            }
            for i in range(len(ids))
        ],
        "timing_s": timing,
    }
    return Evaluation(_finite(result), gen_pts[: config.num_sample_pictures], titles)


def run_evaluation(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    config: EvalConfig | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    draw: StripDrawer | None = None,
) -> tuple[Evaluation, Path]:
    """:func:`evaluate_run` then :func:`write_evaluation` into ``out`` (default :func:`default_out`).

    The output folder is checked before any work, so a refusal to overwrite costs nothing. ``draw`` draws
    ``samples.png`` (see :func:`write_evaluation`).
    """
    out_dir = Path(out) if out is not None else default_out(model_path)
    check_out(out_dir, force)
    evaluation = evaluate_run(model_path, data_path, config, progress=progress)
    return evaluation, write_evaluation(evaluation, out_dir, force=force, draw=draw)
