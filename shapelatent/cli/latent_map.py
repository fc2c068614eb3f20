"""``shapelatent map``: a picture of a latent store, coloured by class, with its class-separation figures.

The codes are projected to 2-D or 3-D (:func:`shapelatent.latent.project.project_codes`: PCA, t-SNE or UMAP;
a store larger than ``--max-points`` is subsampled uniformly with ``--seed``) and drawn coloured by class
(:func:`shapelatent.viz.latentmap.plot_latent_map`). The caption gives class precision@k (leave-one-out) and
the silhouette score, measured on the same codes in the full Z-dimensional latent space, never on the
projection, so they do not depend on the map method.

``--thumbnails N`` draws N shapes spread over the map (farthest-point sampling on the map coordinates, from a
seeded first shape) around it, joined to their points. The points of an item come from, in this order: the
dataset given with ``--dataset``; a dataset folder the store was encoded from (its ``provenance.json`` records
the inputs), when it still exists and holds the item; a fresh sample of the item's source with the store's
sampling settings (a mesh file that still exists, or a procedural chair regenerated from its seed). An item
found nowhere is left out with a warning.

Writes ``OUT.png`` and ``OUT.json`` beside it: the map coordinates, ids, classes, method, seed, the figures, the
store path and the provenance. Neither is overwritten without ``--force``; both are written atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from shapelatent.cli.common import ForceOpt, JsonOpt, bar, emit, emit_result, friendly

if TYPE_CHECKING:
    from shapelatent.latent.project import Projection, Separation
    from shapelatent.latent.store import LatentStore

__all__ = ["SPLITS", "make_map", "map_cmd", "register"]

logger = logging.getLogger(__name__)

SPLITS = ("all", "train", "val", "test")
_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _check_options(out: Path, method: str, dims: int, max_points: int, thumbnails: int, k: int, metric: str,
                   split: str) -> None:  # fmt: skip
    from shapelatent.latent.project import METHODS

    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: must be a .png file (the JSON record is written beside it).")
    checks = [
        (method in METHODS, f"--method must be one of {', '.join(METHODS)}; got {method!r}"),
        (dims in (2, 3), f"--dims must be 2 or 3; got {dims}"),
        (max_points >= 2, f"--max-points must be at least 2; got {max_points}"),
        (thumbnails >= 0, f"--thumbnails must be 0 or more; got {thumbnails}"),
        (k >= 1, f"-k must be at least 1; got {k}"),
        (metric in ("euclidean", "cosine"), f"--metric must be euclidean or cosine; got {metric!r}"),
        (split in SPLITS, f"--split must be one of {', '.join(SPLITS)}; got {split!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _store_name(path: Path) -> str:
    """``runs/sh3d/store`` -> ``sh3d/store``: enough of the path to say which store."""
    parts = path.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


def _select(store: LatentStore, split: str) -> np.ndarray:
    """(M,) int64 store rows of the split."""
    if split == "all":
        return np.arange(len(store), dtype=np.int64)
    rows = np.asarray([i for i, it in enumerate(store.items) if it["split"] == split], dtype=np.int64)
    if len(rows) < 2:
        present = sorted({it["split"] or "''" for it in store.items})
        raise ValueError(
            f"{store.path}: {len(rows)} items of split {split!r} (a map needs 2 or more); its splits are "
            f"{', '.join(present)}. Use --split all."
        )
    return rows


def _separation(
    codes: np.ndarray, classes: list[str], k: int, metric: str, max_points: int, seed: int
) -> Separation | None:
    """Class separation over the labelled items, or None with fewer than 2 classes among them."""
    from shapelatent.latent.project import class_separation
    from shapelatent.viz.latentmap import UNLABELLED

    labelled = np.asarray([c != UNLABELLED for c in classes])
    if len({c for c in classes if c != UNLABELLED}) < 2 or labelled.sum() < 3:
        return None
    lab = [c for c, keep in zip(classes, labelled, strict=True) if keep]
    return class_separation(codes[labelled], lab, k=k, metric=metric, max_points=max_points, seed=seed)


def _caption(proj: Projection, sep: Separation | None, n_total: int, z: int, perplexity: float | None) -> str:
    n = len(proj.indices)
    which = f"all {n} codes" if n == n_total else f"{n} of {n_total} codes (uniform subsample, seed {proj.seed})"
    how = _NAMES[proj.method]
    if proj.method == "tsne":
        how += f" (perplexity {perplexity:g}, seed {proj.seed})"
    elif proj.method == "umap":
        how += f" (seed {proj.seed})"
    text = f"{how} of {which}, Z = {z}."
    if sep is None:
        return text + " No class-separation figures: fewer than 2 labelled classes."
    sil = "n/a" if sep.silhouette is None else f"{sep.silhouette:.3f}"
    return (
        f"{text} Measured on {sep.n} codes in the full {z}-D latent space ({sep.metric}), not on the map: "
        f"class precision@{sep.k} = {sep.precision_at_k:.3f} (leave-one-out), silhouette = {sil} "
        f"({sep.num_classes} classes)."
    )


def _datasets(store: LatentStore, explicit: Path | None) -> list[Any]:
    """Datasets to take item points from: ``explicit``, else the dataset inputs the store's provenance records."""
    from shapelatent.data.format import ShapeDataset

    if explicit is not None:
        return [ShapeDataset(explicit)]  # asked for by name: an unreadable one is an error
    prov = store.path / "provenance.json"
    try:
        inputs = json.loads(prov.read_text(encoding="utf-8"))["config"]["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found = []
    for p in map(Path, inputs):
        if (p / "dataset.json").is_file():
            try:
                found.append(ShapeDataset(p))
            except (OSError, ValueError) as exc:
                logger.warning("thumbnails: cannot read the store's input dataset %s (%s)", p, exc)
    return found


def _thumbnail_points(
    store: LatentStore, rows: list[int], dataset: Path | None
) -> tuple[dict[int, tuple[np.ndarray, str]], list[dict[str, str]]]:
    """``{row: ((P, 3) points, where from)}`` of the store rows, and ``{"id", "reason"}`` for those found nowhere."""
    from shapelatent.data.build import SamplingConfig
    from shapelatent.latent.sources import source_points
    from shapelatent.latent.store import item_key

    datasets = _datasets(store, dataset)
    lookup = [{(m["id"], m["source"]): j for j, m in enumerate(ds.meta)} for ds in datasets]
    sampling = (store.info.get("model") or {}).get("sampling")
    cfg = SamplingConfig.from_dict(sampling) if sampling else None
    points: dict[int, tuple[np.ndarray, str]] = {}
    skipped: list[dict[str, str]] = []
    for r in rows:
        item = store.items[r]
        key = item_key(item)
        hit = next(((ds, rows[key]) for ds, rows in zip(datasets, lookup, strict=True) if key in rows), None)
        if hit is not None:
            points[r] = (np.asarray(hit[0].points[hit[1]]), f"dataset {hit[0].root}")
            continue
        try:
            pts = source_points(item["source"], item["class"], cfg) if cfg is not None else None
        except (OSError, ValueError) as exc:
            pts, why = None, f"its source {item['source']!r} could not be sampled ({exc})"
        else:
            why = f"its source {item['source']!r} is not on this machine and no dataset holds it"
        if pts is None:
            skipped.append({"id": item["id"], "reason": why})
        else:
            points[r] = (pts, "source")
    if skipped:
        logger.warning(
            "thumbnails: left out %d of %d shapes whose points were not found (first: %s: %s); pass --dataset",
            len(skipped), len(rows), skipped[0]["id"], skipped[0]["reason"],
        )  # fmt: skip
    return points, skipped


def make_map(
    store_path: str | Path,
    out: str | Path,
    *,
    method: str = "pca",
    dims: int = 2,
    max_points: int = 5000,
    seed: int = 0,
    thumbnails: int = 8,
    k: int = 5,
    metric: str = "euclidean",
    split: str = "all",
    dataset: str | Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Project a store, measure its class separation, and write ``out`` (PNG) and ``out`` with ``.json``.

    Returns:
        The JSON record written (coords, ids, classes, figures, thumbnails, provenance, ...).

    Raises:
        ValueError: a bad option; OutputExistsError: an output exists and ``force`` is False;
        BackendUnavailableError: ``method="umap"`` without umap-learn.
    """
    from shapelatent.errors import BackendUnavailableError, OutputExistsError
    from shapelatent.io.atomic import atomic_write_json
    from shapelatent.latent.project import project_codes
    from shapelatent.latent.store import LatentStore
    from shapelatent.provenance import provenance
    from shapelatent.viz.figures import short_label
    from shapelatent.viz.latentmap import UNLABELLED, Thumbnail, class_colours, plot_latent_map, spread_indices

    out = Path(out)
    tick = progress or (lambda what: None)
    _check_options(out, method, dims, max_points, thumbnails, k, metric, split)
    record_path = out.with_suffix(".json")
    for p in (out, record_path):
        if p.exists() and not force:
            raise OutputExistsError(f"{p}: already exists; pass --force to replace it, or choose another --out.")
    store = LatentStore.open(store_path)
    rows = _select(store, split)
    codes = store.codes[rows]  # (M, Z)
    classes = [store.items[r]["class"] or UNLABELLED for r in rows]
    tick("projecting")
    try:
        proj = project_codes(codes, method=method, dims=dims, seed=seed, max_points=max_points)
    except ImportError as exc:
        raise BackendUnavailableError(str(exc)) from exc
    perplexity = float(min(30.0, max(1.0, (len(proj.indices) - 1) / 3.0))) if method == "tsne" else None
    tick("measuring")
    sep = _separation(codes, classes, k, metric, max_points, seed)
    shown = rows[proj.indices]  # (N',) store rows on the map
    shown_classes = [classes[i] for i in proj.indices]
    tick("thumbnails")
    thumbs: list[Thumbnail] = []
    skipped: list[dict[str, str]] = []
    drawn: list[dict[str, Any]] = []
    if thumbnails:
        picks = [int(i) for i in spread_indices(proj.coords, thumbnails, seed)]
        found, skipped = _thumbnail_points(
            store, [int(shown[i]) for i in picks], None if dataset is None else Path(dataset)
        )
        for i in picks:
            r = int(shown[i])
            if r in found:
                item = store.items[r]
                thumbs.append(Thumbnail(i, found[r][0], short_label(item["id"], 16)))
                drawn.append({"id": item["id"], "class": item["class"], "points_from": found[r][1]})
    if proj.method == "pca":
        ev = proj.explained_variance if proj.explained_variance is not None else np.zeros(dims)
        labels = [f"PC{d + 1} ({100 * ev[d]:.1f}% var)" for d in range(dims)]
    else:
        labels = [f"{_NAMES[method]} {d + 1}" for d in range(dims)]
    caption = _caption(proj, sep, len(rows), store.latent_dim, perplexity)
    where = "" if split == "all" else f", {split} split"
    title = f"Latent map of {_store_name(store.path)}{where}: {_NAMES[method]}, {dims}-D"
    tick("drawing")
    png, size = plot_latent_map(
        proj.coords, shown_classes, out, axis_labels=labels, title=title, caption=caption, thumbnails=thumbs,
        show_ticks=method == "pca", seed=seed,
    )  # fmt: skip
    config = {
        "store": str(store.path), "method": method, "dims": dims, "max_points": max_points, "seed": seed,
        "thumbnails": thumbnails, "k": k, "metric": metric, "split": split,
        "dataset": None if dataset is None else str(dataset),
    }  # fmt: skip
    record = {
        "kind": "latent_map",
        "image": png.name,
        "image_size": list(size),
        "store": str(store.path),
        "store_count": len(store),
        "count": len(rows),
        "split": split,
        "latent_dim": store.latent_dim,
        "method": method,
        "dims": dims,
        "seed": seed,
        "max_points": max_points,
        "perplexity": perplexity,
        "explained_variance": None if proj.explained_variance is None else proj.explained_variance.tolist(),
        "axis_labels": labels,
        "title": title,
        "caption": caption,
        "figures": None if sep is None else {**sep._asdict(), "measured_on": f"full {store.latent_dim}-D codes"},
        "class_colours": {c: col for c, (col, _) in class_colours(shown_classes).items()},
        "thumbnails": drawn,
        "thumbnails_skipped": skipped,
        "points": {
            "ids": [store.items[r]["id"] for r in shown],
            "classes": shown_classes,
            "coords": np.round(proj.coords.astype(np.float64), 6).tolist(),
        },
        "provenance": provenance(config, seed),
    }
    atomic_write_json(record_path, record)
    logger.info("wrote latent map %s and %s", png, record_path)
    return record


def map_cmd(
    store: Annotated[Path, typer.Option("--store", "-s", help="Latent store folder (from `shapelatent encode`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write; its JSON record goes beside it.")],
    method: Annotated[str, typer.Option(help="pca | tsne | umap (umap needs: pip install umap-learn).")] = "pca",
    dims: Annotated[int, typer.Option(help="2 or 3 (a 3-D scatter).")] = 2,
    max_points: Annotated[int, typer.Option(help="Map (and measure) at most this many codes, subsampled.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed for the subsample, t-SNE/UMAP and the thumbnail choice.")] = 0,
    thumbnails: Annotated[int, typer.Option(help="Shapes drawn around the map (0 for none).")] = 8,
    k: Annotated[int, typer.Option("-k", "--k", help="Neighbours for class precision@k.")] = 5,
    metric: Annotated[str, typer.Option(help="euclidean | cosine, for the figures.")] = "euclidean",
    split: Annotated[str, typer.Option(help="all | train | val | test: which items to map.")] = "all",
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="Dataset folder with the items' points, for thumbnails (default: the dataset the store was "
            "encoded from, else re-sample the items' sources).",
        ),
    ] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Draw the store's codes in 2-D/3-D coloured by class, with class precision@k and silhouette in the caption."""
    with bar("latent map", 4) as pb:
        steps = iter(range(5))

        def progress(what: str) -> None:
            pb.update(0, completed=next(steps), info=what)

        record = make_map(
            store, out, method=method, dims=dims, max_points=max_points, seed=seed, thumbnails=thumbnails, k=k,
            metric=metric, split=split, dataset=dataset, force=force, progress=progress,
        )  # fmt: skip
        pb.update(0, completed=4, info="done")

    def human() -> None:
        emit(f"map: [bold]{out}[/] and {out.with_suffix('.json')}")
        emit(f"  {record['caption']}", markup=False)
        if record["figures"] is None:
            emit("[yellow]no class-separation figures[/]: fewer than 2 labelled classes.")
        if record["thumbnails_skipped"]:
            emit(f"[yellow]{len(record['thumbnails_skipped'])} thumbnails left out[/] (pass --dataset):")
            for s in record["thumbnails_skipped"][:10]:
                emit(f"  {s['id']}: {s['reason']}", markup=False)

    payload = {
        "image": out,
        "record": out.with_suffix(".json"),
        **{key: record[key] for key in ("store", "count", "method", "dims", "seed", "caption", "figures")},
        "thumbnails": record["thumbnails"],
        "thumbnails_skipped": record["thumbnails_skipped"],
    }
    emit_result(payload, as_json, human)


def register(app: typer.Typer) -> None:
    """Add ``map`` to the main app."""
    app.command("map")(friendly(map_cmd))
