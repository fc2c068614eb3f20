"""``shapelatent neighbors``: the shapes of a latent store nearest to an item, a shape file or a code.

QUERY is tried, in this order, as:

1. an item id in the store (the item itself is left out of its neighbours);
2. an existing file: a ``.npy`` holding one code, shape (Z,) or (1, Z); any other mesh or point file is sampled
   and normalised exactly as the model's training data and encoded with the model (``--model``, or the model
   path the store records);
3. a code written as comma-separated numbers (put ``--`` before it when it starts with a minus sign).

With ``--refine N``, the code of a shape-file query is refined for N steps with the decoder frozen
(:mod:`shapelatent.latent.refine`) before the search. Refined codes move away from the encoder's codes, so compare
them with a store whose codes were refined the same way (``encode --refine N``); the output says how many of the
store's codes are refined.

Whenever a model is loaded, its fingerprint must match the store's: codes from another model live in another
latent space, and comparing them would be meaningless.

``--gallery PNG`` draws the query and its neighbours as point clouds. The points of a store item come from, in
this order: the dataset given with ``--dataset`` (the item's id must be in it: an error otherwise), or a fresh
sample of the item's source with the store's sampling settings (a mesh/point file that still exists, or a
procedural chair ``procedural:<seed>`` regenerated from its seed and family), or, when the source is gone,
the model's reconstruction from the item's code, titled "decoded" (and listed on the terminal). A code query is
always drawn decoded. Real points show what the shape is; decoding needs only the store and the model, so it is
the fallback that always works, and it is never used without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from shapelatent.cli.common import JsonOpt, emit, emit_result, friendly
from shapelatent.cli.refine_opts import REFINE_LR, RefineLrOpt, RefineOpt, refine_line, refine_settings

if TYPE_CHECKING:
    from shapelatent.data.build import SamplingConfig
    from shapelatent.data.format import ShapeDataset
    from shapelatent.latent.refine import RefineSettings
    from shapelatent.latent.store import LatentStore
    from shapelatent.models.load import LoadedModel

__all__ = ["neighbors_cmd", "register"]

_ID_WIDTH = 28  # longest id shown in a gallery title


@dataclass
class _Query:
    code: np.ndarray  # (Z,) float32
    label: str
    store_index: int | None = None
    points: np.ndarray | None = None  # (P, 3) float32, when the query was a shape file
    refine: dict[str, Any] | None = None  # refinement summary, when the query's code was refined


class _Model:
    """The model behind the store, loaded on first use and checked against the store's fingerprint."""

    def __init__(self, store: LatentStore, path: Path | None) -> None:
        self.store = store
        self.path = path
        self._loaded: LoadedModel | None = None
        if path is not None:  # asked for by name: check it now, whatever the query
            self.get("")

    @property
    def loaded(self) -> LoadedModel | None:
        """The model when it has been loaded, else None."""
        return self._loaded

    def _resolve(self) -> Path | None:
        if self.path is not None:
            return self.path
        recorded = (self.store.info.get("model") or {}).get("path")
        return Path(recorded) if recorded and Path(recorded).exists() else None

    def get(self, why: str, refine: RefineSettings | None = None) -> LoadedModel:
        if self._loaded is not None:
            if refine is not None:
                from shapelatent.latent.refine import require_decoder

                require_decoder(self._loaded.model, str(self._resolve()))
            return self._loaded
        from shapelatent.errors import ShapelatentError
        from shapelatent.latent.refine import load_for_refinement
        from shapelatent.latent.store import model_fingerprint

        path = self._resolve()
        if path is None:
            recorded = (self.store.info.get("model") or {}).get("path")
            where = f"the model path it records ({recorded}) does not exist" if recorded else "it records no model"
            raise ShapelatentError(
                f"{why} needs the model that made the store {self.store.path}, and {where}; pass --model RUN."
            )
        loaded = load_for_refinement(path, refine)
        self.store.check_model(model_fingerprint(loaded.model), str(path))
        self._loaded = loaded
        return loaded


def _sampling(store: LatentStore, model: _Model) -> SamplingConfig:
    from shapelatent.data.build import SamplingConfig
    from shapelatent.latent.encode import model_sampling

    # The model's own record when it is loaded (it passed the fingerprint check), else the store's copy of it.
    recorded = (store.info.get("model") or {}).get("sampling")
    if model.loaded is None and recorded:
        return SamplingConfig.from_dict(recorded)
    return model_sampling(model.get("sampling a shape"))


def _code_from_text(text: str) -> np.ndarray | None:
    parts = [p.strip() for p in text.split(",")]
    try:
        return np.array([float(p) for p in parts], dtype=np.float32)
    except ValueError:
        return None


def _resolve_query(text: str, store: LatentStore, model: _Model, refine: RefineSettings | None = None) -> _Query:
    from shapelatent.errors import StoreError
    from shapelatent.latent.encode import codes_for_points

    try:
        i = store.index_of(text)
        return _Query(store.codes[i], text, store_index=i)
    except StoreError as exc:
        not_an_id = str(exc)
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: not a readable .npy array ({exc}).") from exc
            if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1):
                return _Query(np.asarray(arr, dtype=np.float32).reshape(-1), f"code from {path.name}")
        from shapelatent.data.build import sample_file

        loaded = model.get(f"the query {path} is a shape file; encoding it", refine)
        cfg = _sampling(store, model)
        cloud = sample_file(path, cfg, seed=cfg.seed)
        code = codes_for_points(loaded.model, cloud.points[None])[0]
        if refine is None:
            return _Query(code, str(path), points=cloud.points)
        res = refine.run(loaded.model, cloud.points[None], code[None], model_name=str(model._resolve()))
        return _Query(res.codes[0], str(path), points=cloud.points, refine=res.summary())
    code = _code_from_text(text)
    if code is not None:
        return _Query(code, "code")
    raise ValueError(
        f"QUERY {text!r} is not an item of the store ({not_an_id}), an existing file, or a code of comma-separated "
        "numbers."
    )


def _item_points(
    store: LatentStore, i: int, model: _Model, dataset: ShapeDataset | None, cache: dict[str, Any]
) -> tuple[np.ndarray, bool]:
    """(P, 3) points of store item i and whether they were decoded from its code."""
    item = store.items[i]
    if dataset is not None:
        from shapelatent.latent.store import item_key

        rows = cache.setdefault("rows", {(m["id"], m["source"]): j for j, m in enumerate(dataset.meta)})
        if item_key(item) not in rows:
            raise ValueError(
                f"{dataset.root}: has no shape with id {item['source_id']!r} from source {item['source']!r} (store "
                f"item {item['id']!r}); pass the dataset the store was encoded from, or leave out --dataset to "
                "re-sample the items' sources."
            )
        return np.asarray(dataset.points[rows[item_key(item)]]), False
    source = item["source"]
    cfg = cache.setdefault("cfg", _sampling(store, model))
    from shapelatent.latent.sources import source_points

    points = source_points(source, item["class"], cfg)
    if points is not None:
        return points, False
    return _decode(store.codes[i], model, f"drawing item {item['id']!r}, whose source {source!r} is gone,"), True


def _decode(code: np.ndarray, model: _Model, why: str) -> np.ndarray:
    import torch

    loaded = model.get(why)
    with torch.no_grad():
        return loaded.model.decode(torch.from_numpy(np.asarray(code, dtype=np.float32)[None])).points[0].numpy()


def _short(text: str) -> str:
    from shapelatent.viz.figures import short_label

    return short_label(text, _ID_WIDTH)


def _draw_gallery(
    out: Path,
    query: _Query,
    hits: list[tuple[int, float]],
    metric: str,
    store: LatentStore,
    model: _Model,
    dataset_dir: Path | None,
) -> tuple[Path, list[str]]:
    from shapelatent.data.format import ShapeDataset

    dataset = ShapeDataset(dataset_dir) if dataset_dir is not None else None
    cache: dict[str, Any] = {}
    decoded: list[str] = []
    if query.store_index is not None:
        q_pts, q_dec = _item_points(store, query.store_index, model, dataset, cache)
    elif query.points is not None:
        q_pts, q_dec = query.points, False
    else:
        q_pts, q_dec = _decode(query.code, model, "drawing a code query"), True
    if q_dec:
        decoded.append(f"query {query.label}")
    clouds = [q_pts]
    titles = [f"query{' (decoded)' if q_dec else ''}\n{_short(query.label)}\n{metric}"]
    for rank, (i, dist) in enumerate(hits, 1):
        pts, dec = _item_points(store, i, model, dataset, cache)
        item = store.items[i]
        if dec:
            decoded.append(item["id"])
        clouds.append(pts)
        titles.append(f"#{rank} {_short(item['id'])}{' (decoded)' if dec else ''}\n{item['class']} d={dist:.4g}")
    from viewers.render import render_views

    path = render_views(clouds, out, titles=[t.replace("\n", " · ") for t in titles], size=(256, 256), mode="points")
    return path, decoded


def neighbors_cmd(
    query: Annotated[
        str,
        typer.Argument(
            help="An item id in the store, a mesh/point file, or a code: a .npy of shape (Z,) or comma-separated "
            "numbers (put -- before a code that starts with a minus sign)."
        ),
    ],
    store: Annotated[Path, typer.Option("--store", "-s", help="Latent store folder (from `shapelatent encode`).")],
    k: Annotated[int, typer.Option("-k", help="Neighbours to list (K).")] = 5,
    metric: Annotated[str, typer.Option(help="euclidean (L2 distance) | cosine (1 - cos).")] = "euclidean",
    index: Annotated[
        str, typer.Option(help="exact | faiss-flat | faiss-hnsw | faiss-ivf (FAISS: pip install shapelatent\\[faiss]).")
    ] = "exact",
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="Run folder or checkpoint of the store's model (default: the path the store records)."
        ),
    ] = None,
    gallery: Annotated[Path | None, typer.Option(help="Write a PNG of the query and its neighbours.")] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Dataset folder with the items' points, for --gallery (default: re-sample).")
    ] = None,
    refine: RefineOpt = 0,
    refine_lr: RefineLrOpt = REFINE_LR,
    as_json: JsonOpt = False,
) -> None:
    """List the K store items nearest to QUERY (an item id, a shape file, or a code), optionally as a picture.

    With --refine N, a shape-file query's code is refined (decoder frozen) before the search; compare it with a
    store encoded with the same --refine.
    """
    from rich.table import Table

    from shapelatent.latent.retrieval import NeighborIndex
    from shapelatent.latent.store import LatentStore

    st = LatentStore.open(store)
    mdl = _Model(st, model)
    settings = refine_settings(refine, refine_lr)
    q = _resolve_query(query, st, mdl, settings)
    if settings is not None and q.refine is None:
        raise ValueError(
            f"--refine refines the code of a shape file, and QUERY {query!r} is a store item or a code (used as "
            "it is); leave out --refine, or pass a mesh/point file."
        )
    exclude = [q.store_index] if q.store_index is not None else None
    result = NeighborIndex(st.codes, metric, index).search(q.code[None], k, exclude=exclude)
    hits = [(int(i), float(d)) for i, d in zip(result.indices[0], result.distances[0], strict=True) if i >= 0]

    path, decoded = _draw_gallery(gallery, q, hits, metric, st, mdl, dataset) if gallery is not None else (None, [])

    def human() -> None:
        what = "L2" if metric == "euclidean" else "1 - cos"
        table = Table("rank", "id", "class", f"distance ({what})", title=f"{len(hits)} nearest to {q.label}")
        for rank, (i, dist) in enumerate(hits, 1):
            item = st.items[i]
            table.add_row(str(rank), item["id"], item["class"] or "-", f"{dist:.6g}")
        emit(f"store [bold]{st.path}[/]: {len(st)} codes of size {st.latent_dim}; {metric}, index {index}")
        emit(table)
        line = refine_line(q.refine)
        if line:
            emit(f"query {line}; {int(st.refined.sum())} of the store's {len(st)} codes are refined")
        if len(hits) < k:
            emit(f"[yellow]{index} found only {len(hits)} of {k} neighbours[/] (an approximate index).")
        if path is not None:
            emit(f"gallery: [bold]{path}[/]")
            if decoded:
                emit(f"[yellow]drawn decoded from their codes (no points available):[/] {', '.join(decoded)}")

    payload: dict[str, Any] = {
        "store": st.path,
        "codes": len(st),
        "latent_dim": st.latent_dim,
        "metric": metric,
        "index": index,
        "k": k,
        "query": {"label": q.label, "id": None if q.store_index is None else st.items[q.store_index]["id"]},
        "neighbors": [
            {"rank": rank, "id": st.items[i]["id"], "class": st.items[i]["class"] or None, "distance": dist}
            for rank, (i, dist) in enumerate(hits, 1)
        ],
        "gallery": path,
        "decoded": decoded,
    }
    if q.refine is not None:  # only with --refine: the keys of a plain run stay as they were
        payload["query"]["refine"] = q.refine
        payload["store_refined"] = int(st.refined.sum())
    emit_result(payload, as_json, human)


def register(app: typer.Typer) -> None:
    """Add ``neighbors`` to the main app."""
    app.command("neighbors")(friendly(neighbors_cmd))
