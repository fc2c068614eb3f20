"""K-fold cross-validation of the whole recipe (``shapelatent evaluate --folds K``), with the geometry ceiling.

Protocol, on a dataset of N shapes:

1. Folds: :func:`shapelatent.data.splits.stratified_folds` (stratified by class, seeded); every shape is in exactly
   one fold's test split.
2. For fold f, a view of the dataset (:func:`shapelatent.data.resplit.write_split_view`) at ``OUT/folds/f/data``:
   fold f is its test split, fold f+1 (mod K) its val split and the other folds its train split (with K = 2 there
   is no val split: the other fold trains).
3. A model per fold is trained on the view (``OUT/folds/f/run``, the training of ``shapelatent train``) and
   evaluated on its test split (``OUT/folds/f/eval``, ``shapelatent evaluate``'s :func:`run_evaluation`).
   With ``extra_data`` (datasets that need no labels, e.g. the unlabelled items of the same source), each fold
   trains on its view merged with every extra shape (``OUT/folds/f/train_data``, :mod:`shapelatent.data.merge`;
   the extra shapes are all in the train split and never tested). The evaluation, its nearest-training-shape
   oracle and the neighbour figures use the labelled view only.
4. The codes of all N shapes under each fold's model give class precision@k and kNN accuracy, and the Chamfer
   distances between the true clouds give the same figures (the geometry ceiling, :mod:`shapelatent.evaluate.ceiling`),
   on the same folds.
5. ``OUT/folds.json`` and ``OUT/folds.md``: mean +- sd over the folds of every figure
   (:mod:`shapelatent.evaluate.fold_tables`), and per-class rows for the classes with at least
   :data:`~shapelatent.evaluate.fold_tables.MIN_CLASS_TEST` test shapes over the folds.

Nothing built is lost: a fold's complete run is reused, an interrupted one resumed, and an evaluation made with the
same options of the same model is reused; settings that differ from a stored run are an error (pass ``force`` to
start the folds over). The pairwise Chamfer matrix (N x N, float64) is kept in ``OUT/chamfer.npy``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shapelatent.data.format import SPLITS, ShapeDataset
from shapelatent.data.resplit import write_split_view
from shapelatent.data.splits import stratified_folds
from shapelatent.errors import OutputExistsError
from shapelatent.evaluate.ceiling import code_distances, neighbour_figures
from shapelatent.evaluate.config import CHAMFER_DEFINITION, EvalConfig, Progress
from shapelatent.evaluate.fold_tables import MIN_CLASS_TEST, folds_markdown, numeric_figures, over_folds
from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.viz.drawer import StripDrawer

if TYPE_CHECKING:
    from shapelatent.train.config import RunConfig

__all__ = ["FOLDS_FORMAT", "fold_split_codes", "run_cross_validation"]

logger = logging.getLogger(__name__)

FOLDS_FORMAT = "shapelatent-cross-validation"
_PLAN = "plan.json"
_IGNORED_TRAIN_KEYS = ("epochs", "workers")  # may differ between a stored run and the request (resume extends)


def fold_split_codes(folds: np.ndarray, f: int, k: int) -> np.ndarray:
    """(N,) uint8 split codes of fold f: fold f test, fold f+1 (mod K) val (none when K = 2), the rest train."""
    codes = np.full(len(folds), SPLITS.index("train"), dtype=np.uint8)
    codes[folds == f] = SPLITS.index("test")
    if k > 2:
        codes[folds == (f + 1) % k] = SPLITS.index("val")
    return codes


def _extra_views(extra: list[ShapeDataset], out: Path) -> list[Path]:
    """Each extra dataset as a view with every shape in the train split (``OUT/extra/i``)."""
    views = []
    for i, ds in enumerate(extra):
        codes = np.full(len(ds), SPLITS.index("train"), dtype=np.uint8)
        views.append(write_split_view(ds.root, out / "extra" / str(i), codes, {"method": "all train (extra data)"}))
    return views


def _training_data(view: Path, extra: list[Path], where: Path) -> Path:
    """The fold's training dataset: its view, or the view merged with the extra data (reused when up to date)."""
    if not extra:
        return view
    from shapelatent.data.merge import merge_datasets, merged_matches

    merged = where / "train_data"
    if not merged_matches(merged, [view, *extra], None):
        merge_datasets([view, *extra], merged, force=True)
    return merged


def _check_plan(out: Path, plan: dict[str, Any], force: bool) -> None:
    """Write ``OUT/plan.json``; refuse an OUT made for another dataset, K or seed unless ``force`` (then start over)."""
    path = out / _PLAN
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != plan:
            if not force:
                keys = [*plan, *(k for k in old if k not in plan)]
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {plan.get(k)!r}" for k in keys if old.get(k) != plan.get(k))
                raise OutputExistsError(
                    f"{out}: holds a cross-validation with other settings ({diff}); pass --force to start it over "
                    "(its fold runs are deleted), or choose another --out."
                )
        if force:
            shutil.rmtree(out / "folds", ignore_errors=True)
            for name in ("chamfer.npy", "chamfer.json"):
                (out / name).unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"{out}: exists, is not empty and holds no cross-validation ({_PLAN}); choose another --out "
            "(or pass --force to write into it)."
        )
    atomic_write_json(path, plan)


def _chamfer_matrix(ds: ShapeDataset, out: Path, config: EvalConfig, progress: Progress | None) -> np.ndarray:
    """(N, N) float64 pairwise Chamfer of the dataset's clouds, cached in ``OUT/chamfer.npy``."""
    from shapelatent.metrics import pairwise_chamfer

    stat = (ds.root / "points.npy").resolve().stat()
    key = {
        "dataset": str(ds.root.resolve()),
        "num_shapes": len(ds),
        "num_points": ds.num_points,
        "points_bytes": stat.st_size,
        "points_mtime_ns": stat.st_mtime_ns,
        "definition": CHAMFER_DEFINITION,
    }
    cache, meta = out / "chamfer.npy", out / "chamfer.json"
    if cache.exists() and meta.exists() and json.loads(meta.read_text(encoding="utf-8")) == key:
        return np.load(cache, allow_pickle=False)
    report = None if progress is None else (lambda done, total: progress("geometry: pairwise Chamfer", done, total))
    dist = pairwise_chamfer(
        np.array(ds.points, dtype=np.float32), backend=config.chamfer_backend, device=config.device, progress=report
    )
    np.save(cache, dist)
    atomic_write_json(meta, key)
    return dist


def _same_run_config(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between two ``RunConfig.to_dict()`` (epochs, workers and P ignored)."""
    diffs = []
    for section in ("model", "train"):
        a, b = dict(stored.get(section, {})), dict(wanted.get(section, {}))
        for key in sorted(set(a) | set(b)):
            if (section, key) in (("model", "num_points"),) or (section == "train" and key in _IGNORED_TRAIN_KEYS):
                continue
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} (stored) vs {b.get(key)!r}")
    return diffs


def _train_fold(view: Path, run: Path, cfg: RunConfig, on_epoch: Callable[[dict[str, Any]], None]) -> str:
    """Train (``trained``), resume (``resumed``) or reuse (``reused``) the run of one fold; returns which."""
    from shapelatent.train.loop import train

    if not (run / "config.json").exists():
        train(view, run, cfg, force=run.exists(), on_epoch=on_epoch)
        return "trained"
    stored = json.loads((run / "config.json").read_text(encoding="utf-8"))
    diffs = _same_run_config(stored.get("run", {}), cfg.to_dict())
    if diffs:
        raise OutputExistsError(
            f"{run}: was trained with other settings ({'; '.join(diffs)}); pass --force to retrain every fold, "
            "or choose another --out."
        )
    metrics = run / "metrics.json"
    done = json.loads(metrics.read_text("utf-8")).get("epochs_done") if metrics.exists() else None
    if done == cfg.train.epochs and (run / "model.safetensors").exists():
        return "reused"
    if done is not None and done > cfg.train.epochs:
        raise OutputExistsError(
            f"{run}: was trained for {done} epochs, more than the {cfg.train.epochs} asked for; pass --epochs {done}, "
            "or --force to retrain every fold."
        )
    if (run / "checkpoints" / "last.safetensors").exists():
        train(view, run, cfg, resume=True, on_epoch=on_epoch)
        return "resumed"
    train(view, run, cfg, force=True, on_epoch=on_epoch)  # stopped before its first checkpoint
    return "trained"


def _evaluate_fold(
    run: Path, view: Path, out: Path, config: EvalConfig, progress: Progress | None, draw: StripDrawer | None
) -> dict[str, Any]:
    """The fold's ``evaluation.json`` record: reused when made with the same options of the same model."""
    from shapelatent.evaluate.run import run_evaluation
    from shapelatent.latent.store import model_fingerprint
    from shapelatent.models.load import load_model

    path = out / "evaluation.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        wanted = json.loads(json.dumps(asdict(config)))
        same_model = old["protocol"]["model"]["fingerprint"] == model_fingerprint(load_model(run).model)
        if same_model and old["protocol"]["config"] == wanted:
            return old
        logger.info("%s: made with another model or other options; evaluating again", path)
    evaluation, _ = run_evaluation(run, view, out, config, force=True, progress=progress, draw=draw)
    return evaluation.result


def _codes(run: Path, ds: ShapeDataset, config: EvalConfig) -> np.ndarray:
    """(N, Z) float32 codes of every shape under the fold's model."""
    from shapelatent.latent.encode import codes_for_points
    from shapelatent.models.load import load_model

    model = load_model(run).model.to(config.device)
    parts = [
        codes_for_points(model, np.asarray(ds.points[s : s + 1024]), config.batch_size, config.device)
        for s in range(0, len(ds), 1024)
    ]
    return np.concatenate(parts)


def _per_class(rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Per-class pooled figures over the folds' test shapes (classes with >= MIN_CLASS_TEST shapes), and the rest."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["class"], []).append(r)
    kept, omitted = {}, {}
    for cls in sorted(by):
        items = by[cls]
        if len(items) < MIN_CLASS_TEST:
            omitted[cls] = len(items)
            continue
        row: dict[str, Any] = {"n_test": len(items)}
        for key in ("codes_knn", "geometry_knn", "codes_precision", "geometry_precision", "cd"):
            vals = [float(r[key]) for r in items if r.get(key) is not None]
            row["cd_mean" if key == "cd" else key] = float(np.mean(vals)) if vals else None
        kept[cls] = row
    return kept, omitted


def _neighbour_row(
    rows: list[dict[str, Any]], fig: Any, prefix: str, ev: np.ndarray, classes: list[str], ids: list[str]
) -> None:
    """Add the per-shape precision and kNN hit of ``fig`` (one fold, codes or geometry) to ``rows``."""
    for j, i in enumerate(ev.tolist()):
        rows[i].setdefault("class", classes[i])
        rows[i].setdefault("id", ids[i])
        rows[i][f"{prefix}_precision"] = float(fig.precision[j]) if len(fig.precision) else None
        rows[i][f"{prefix}_knn"] = float(fig.correct[j]) if len(fig.correct) else None


def run_cross_validation(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    folds: int,
    *,
    seed: int = 0,
    run_config: RunConfig | None = None,
    eval_config: EvalConfig | None = None,
    ceiling_only: bool = False,
    extra_data: Sequence[str | os.PathLike[str]] = (),
    force: bool = False,
    progress: Progress | None = None,
    draw: StripDrawer | None = None,
) -> dict[str, Any]:
    """K-fold cross-validation of training + evaluation, with the geometry ceiling (see the module docstring).

    Args:
        data: the dataset folder (never modified; the fold views link its arrays).
        out: the output folder: ``plan.json``, ``folds/f/{data,run,eval}``, ``chamfer.npy``, ``folds.json``,
            ``folds.md``.
        folds: K, 2 <= K <= the smallest class's count.
        seed: seeds the folds (the evaluation's seed is ``eval_config.seed``; the training's ``run_config``'s).
        run_config: how each fold's model is trained (default :class:`RunConfig` ()).
        eval_config: how each fold is evaluated (its ``split`` must be ``test``; default :class:`EvalConfig` ()).
        ceiling_only: no training: only the geometry ceiling on the folds.
        extra_data: datasets merged into every fold's training split, never tested (see the module docstring);
            they must be sampled like ``data``.
        force: start over in an ``out`` that holds a cross-validation (or any folder).
        progress: ``progress(stage, done, total)``.
        draw: draws each fold's ``samples.png`` (see :func:`shapelatent.evaluate.write_evaluation`).

    Returns:
        the ``folds.json`` record.

    Raises:
        ValueError: K < 2 or larger than a class's count; an evaluated split other than test.
        DatasetFormatError: an extra dataset sampled unlike ``data`` (checked before any work).
        OutputExistsError: ``out`` holds other work, or a fold's run was trained with other settings.
    """
    from shapelatent.train.config import RunConfig

    eval_config = eval_config or EvalConfig()
    eval_config.validate()
    if eval_config.split != "test":
        raise ValueError(
            f"--split must be test with --folds (each fold's test split is evaluated); got {eval_config.split!r}"
        )
    if eval_config.classes is not None:
        raise ValueError("--classes cannot be combined with --folds; the folds cover every class of the dataset")
    run_config = run_config or RunConfig()
    ds = ShapeDataset(data)
    classes, ids = ds.classes(), [m["id"] for m in ds.meta]
    position = {shape_id: i for i, shape_id in enumerate(ids)}
    fold_of = stratified_folds(classes, folds, seed)  # raises for K > the smallest class, before any work
    out = Path(out)
    extra = [ShapeDataset(p) for p in extra_data]
    same = [str(e.root) for e in extra if e.root.resolve() == ds.root.resolve()]
    if same or len({e.root.resolve() for e in extra}) < len(extra):
        raise ValueError(
            f"--extra-data {same or [str(e.root) for e in extra]}: a dataset is given twice (or is --data itself); "
            "give each extra dataset once, and never the evaluated one"
        )
    if extra:
        from shapelatent.data.merge import check_compatible

        check_compatible([ds, *extra])  # a different sampling contract is an error before anything is written
    plan: dict[str, Any] = {"dataset": str(ds.root.resolve()), "num_shapes": len(ds), "folds": folds, "seed": seed}
    if extra:
        plan["extra_data"] = [str(e.root.resolve()) for e in extra]
    _check_plan(out, plan, force)
    extra_views = _extra_views(extra, out) if extra and not ceiling_only else []
    dist = _chamfer_matrix(ds, out, eval_config, progress)
    k = eval_config.k
    rows: list[dict[str, Any]] = [{} for _ in range(len(ds))]
    per_fold: list[dict[str, float]] = []
    neighbour_values: dict[str, list[dict[str, float]]] = {"codes": [], "geometry": []}
    fold_rows = []
    for f in range(folds):
        codes = fold_split_codes(fold_of, f, folds)
        where = out / "folds" / str(f)
        record = {"method": "stratified-kfold", "fold": f, "folds": folds, "seed": seed}
        view = write_split_view(ds.root, where / "data", codes, record)
        ev, tr = np.flatnonzero(codes == SPLITS.index("test")), np.flatnonzero(codes == SPLITS.index("train"))
        geo = neighbour_figures(dist, classes, ev, tr, k)
        _neighbour_row(rows, geo, "geometry", ev, classes, ids)
        neighbour_values["geometry"].append(_values(geo.figures))
        info: dict[str, Any] = {"fold": f, **{s: int((codes == i).sum()) for i, s in enumerate(SPLITS)}}
        info["data"] = str(view)
        if not ceiling_only:
            stage = f"fold {f + 1}/{folds}"
            epochs = run_config.train.epochs

            def on_epoch(row: dict[str, Any], stage: str = stage, epochs: int = epochs) -> None:
                if progress is not None:
                    progress(f"{stage}: training", int(row["epoch"]), epochs)

            train_data = _training_data(view, extra_views, where)
            info["train_data"] = str(train_data)
            info["training"] = _train_fold(train_data, where / "run", run_config, on_epoch)

            def staged(name: str, done: int, total: int, stage: str = stage) -> None:
                if progress is not None:
                    progress(f"{stage}: {name}", done, total)

            result = _evaluate_fold(where / "run", view, where / "eval", eval_config, staged, draw)
            fig = neighbour_figures(code_distances(_codes(where / "run", ds, eval_config)), classes, ev, tr, k)
            _neighbour_row(rows, fig, "codes", ev, classes, ids)
            neighbour_values["codes"].append(_values(fig.figures))
            train_metrics = json.loads((where / "run" / "metrics.json").read_text("utf-8"))
            per_fold.append({**numeric_figures(result), **numeric_figures(train_metrics, "training.")})
            for shape in result["per_shape"]:
                rows[position[shape["id"]]]["cd"] = shape["cd"]
            info.update(run=str(where / "run"), eval=str(where / "eval"))
        fold_rows.append(info)
    per_class, omitted = _per_class([r for r in rows if r])
    record = {
        "format": FOLDS_FORMAT,
        "format_version": 1,
        "protocol": {
            **{"dataset": {"path": plan["dataset"], "num_shapes": len(ds)}, "folds": folds, "seed": seed, "k": k},
            "fold_sizes": np.bincount(fold_of, minlength=folds).tolist(),
            "split_rule": "Fold f is the test split, fold f+1 (mod K) the val split (none with K = 2), the other "
            "folds train; folds stratified by class (every class spread evenly), every shape tested once.",
            "sd": "sample standard deviation over the folds (ddof=1); folds share training shapes, so it is "
            "fold-to-fold variation, not a confidence interval (Bengio and Grandvalet, JMLR 2004)",
            "ceiling_only": ceiling_only,
            "extra_data": [{"path": str(e.root.resolve()), "num_shapes": len(e)} for e in extra],
            "eval_config": asdict(eval_config),
            **({} if ceiling_only else {"run_config": run_config.to_dict()}),
        },
        "neighbours": {
            "definition": f"Same definitions for both columns (shapelatent.evaluate.ceiling): leave-one-out class "
            f"precision@{k} and {k}-NN majority vote (ties to the nearer class), neighbours ranked by (distance, "
            "index); codes: Euclidean distance of each fold model's codes; geometry: Chamfer distance "
            f"({CHAMFER_DEFINITION}) between the true clouds, no model.",
            **{name: over_folds(vals) for name, vals in neighbour_values.items() if vals},
        },
        "figures": over_folds(per_fold) if per_fold else {},
        "per_class": per_class,
        "per_class_omitted": omitted,
        "folds_detail": fold_rows,
    }
    atomic_write_text(out / "folds.md", folds_markdown(record))
    atomic_write_json(out / "folds.json", record)
    return record


def _values(figures: dict[str, Any]) -> dict[str, float]:
    """``{name: value}`` of the neighbour figures that were computed (skipped ones left out)."""
    return {name: float(e["value"]) for name, e in figures.items() if "value" in e}
