"""The interpolation viewer's state without a window: endpoints, any t along the path, decoded points, meshes.

:class:`InterpSession` is what the GUI's slider drives. It decodes the code at **any** t (not only written steps):
points by the model's point decoder (milliseconds), meshes by the chosen mesher (the occupancy head's MISE
extraction, or Poisson / ball pivoting / alpha on the decoded points; up to a second), with a small LRU cache so
that going back along the slider is immediate. Everything here runs without a display and is tested directly;
:mod:`viewers.gui.app` calls :meth:`InterpSession.points_at` on the GUI thread and :meth:`InterpSession.mesh_at`
on a worker thread (:class:`viewers.gui.worker.LatestWorker`).

The path: K >= 2 anchors, global t in [0, 1] split into K - 1 equal segments; in segment s the code is
``linear`` ((1 - u) a + u b) or ``slerp`` (:func:`shapelatent.latent.interpolate.slerp`) of anchors s and s + 1
at the local u, as ``shapelatent interpolate`` computes its steps (its step i of S per segment is u = i / (S - 1)).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MESHERS", "METHODS", "Endpoint", "InterpSession", "session_from_folder", "session_from_refs"]

logger = logging.getLogger(__name__)

METHODS = ("linear", "slerp")
MESHERS = ("implicit", "poisson", "ball_pivoting", "alpha", "none")


@dataclass
class Endpoint:
    """One anchor of the path: its name, class (may be '') and code (Z,) float32."""

    ref: str
    label: str
    cls: str
    code: np.ndarray = field(repr=False)


def _key(t: float) -> float:
    return round(float(t), 4)


class InterpSession:
    """Decode any point of a latent path through two or more anchors.

    Args:
        loaded: a ``shapelatent.models.load.LoadedModel`` (its point decoder and, for ``implicit``, its head).
        anchors: K >= 2 endpoints, consecutive ones different.
        store: a ``LatentStore`` made by the same model (neighbour classes along the path, endpoints by id), or None.
        method: ``linear`` or ``slerp``.
        mesher: one of :data:`MESHERS` or ``auto`` (``implicit`` when the model has the head, else ``poisson``).
        resolution: MISE resolution of ``implicit`` meshes (cells per axis over the box).
        preview_resolution: a coarser MISE resolution the viewer shows first while the full one is made (about a
            quarter of the time at 64 against 128); None (default) or >= ``resolution``: no preview. Off by default:
            on software Vulkan the extra mesh swap made Filament's known hang far likelier (bench/viewer_latency.py:
            1 run in 10 finished with a 64^3 preview, 2 in 3 without).
        cache: meshes kept (least recently used dropped).
        model_path: the model's name in messages.

    Raises:
        ValueError: fewer than two anchors, equal consecutive anchors, an unknown method or mesher, ``implicit``
            asked of a model without an occupancy head (the message says how to add one).
    """

    def __init__(
        self,
        loaded: Any,
        anchors: list[Endpoint],
        store: Any = None,
        *,
        method: str = "linear",
        mesher: str = "auto",
        resolution: int = 128,
        preview_resolution: int | None = None,
        cache: int = 16,
        model_path: str = "the model",
    ) -> None:
        self.loaded, self.store, self.model_path = loaded, store, model_path
        self.resolution, self.cache_size = int(resolution), int(cache)
        self.preview_resolution = (
            int(preview_resolution) if preview_resolution and preview_resolution < self.resolution else None
        )
        self._meshes: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._index: Any = None
        self.mesh_process: Any = None  # a viewers.gui.worker.MeshProcess: mesh there instead of in this process
        self.anchors: list[Endpoint] = []
        self.set_anchors(anchors)
        self.method = "linear"
        self.set_method(method)
        self.mesher = "none"
        self.set_mesher(mesher)

    # ------------------------------------------------------------------------------------------ settings
    def set_anchors(self, anchors: list[Endpoint]) -> None:
        """Replace the endpoints (K >= 2, consecutive ones different)."""
        if len(anchors) < 2:
            raise ValueError(f"an interpolation needs at least two shapes; got {len(anchors)}")
        for a, b in zip(anchors, anchors[1:], strict=False):
            if np.array_equal(a.code, b.code):
                raise ValueError(f"{a.ref} and {b.ref} have the same code: choose two different shapes.")
        self.anchors = list(anchors)
        self._clear()

    def set_endpoint(self, i: int, endpoint: Endpoint) -> None:
        """Replace anchor i (0 the first, -1 the last)."""
        anchors = list(self.anchors)
        anchors[i] = endpoint
        self.set_anchors(anchors)

    def set_method(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        self.method = method

    def set_mesher(self, mesher: str) -> None:
        from shapelatent.latent.implicit_mesh import resolve_mesher

        if mesher != "auto" and mesher not in MESHERS:
            raise ValueError(f"mesher must be auto or one of {MESHERS}; got {mesher!r}")
        self.mesher = "none" if mesher == "none" else str(resolve_mesher(mesher, self.loaded.model, self.model_path))

    @property
    def has_head(self) -> bool:
        return bool(self.loaded.model.has_implicit)

    def _clear(self) -> None:
        with self._lock:
            self._meshes.clear()

    # ------------------------------------------------------------------------------------------ decoding
    def code_at(self, t: float) -> np.ndarray:
        """The code at global t in [0, 1] (clipped): (Z,) float32."""
        from shapelatent.latent.interpolate import slerp

        t = float(np.clip(t, 0.0, 1.0))
        segments = len(self.anchors) - 1
        s = min(int(t * segments), segments - 1)
        u = t * segments - s
        a, b = self.anchors[s].code.astype(np.float64), self.anchors[s + 1].code.astype(np.float64)
        code = slerp(a, b, np.array([u]))[0] if self.method == "slerp" else (1 - u) * a + u * b
        return code.astype(np.float32)

    def points_at(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Decoded points (P, 3) float32 and normals (P, 3) float32 or None, at t."""
        from shapelatent.latent.decode import decode_codes

        pts, nrm = decode_codes(self.loaded, self.code_at(t)[None])
        return pts[0], (nrm[0] if nrm is not None else None)

    def mesh_key(self, t: float, preview: bool = False) -> tuple[Any, ...]:
        """The cache key of the mesh at t under the current settings (``preview``: the coarse implicit mesh)."""
        res = self.preview_resolution if preview and self.has_preview else self.resolution
        return (_key(t), self.method, self.mesher, tuple(a.ref for a in self.anchors), res)

    @property
    def has_preview(self) -> bool:
        """Whether meshes come in two passes: a coarse preview, then the full resolution (implicit only)."""
        return self.mesher == "implicit" and self.preview_resolution is not None

    def cached_mesh(self, t: float, preview: bool = False) -> Any:
        """The mesh at t if it is in the cache (a ``MeshResult``), else None."""
        key = self.mesh_key(t, preview)
        with self._lock:
            res = self._meshes.get(key)
            if res is not None:
                self._meshes.move_to_end(key)
            return res

    def mesh_at(
        self, t: float, points: np.ndarray | None = None, normals: np.ndarray | None = None, preview: bool = False
    ) -> Any:
        """The mesh at t: a ``shapelatent.meshing.reconstruct.MeshResult`` in the normalised frame, or None when
        the mesher is ``none``. ``points``/``normals``: the decoded cloud at t when the caller has it (the GUI
        decodes on its own thread and meshes elsewhere: no model runs on the worker thread). ``preview``: the
        implicit mesh at ``preview_resolution`` (the full one for other meshers).

        Raises:
            MeshingError: the mesher failed on this shape (the message names it).
        """
        if self.mesher == "none":
            return None
        key = self.mesh_key(t, preview)
        resolution = key[-1]
        hit = self.cached_mesh(t, preview)
        if hit is not None:
            return hit
        if points is None and self.mesher != "implicit":
            points, normals = self.points_at(t)
        if self.mesh_process is not None:
            pts, nrm = (points, normals) if self.mesher != "implicit" else (None, None)
            res = self.mesh_process.mesh(self.mesher, self.code_at(t), pts, nrm, resolution)
        elif self.mesher == "implicit":
            from shapelatent.latent.implicit_mesh import mesh_from_code

            res = mesh_from_code(self.loaded.model, self.code_at(t), resolution=resolution)
        else:
            from shapelatent.meshing.reconstruct import MeshingConfig, reconstruct_mesh

            assert points is not None
            res = reconstruct_mesh(points, normals, MeshingConfig(method=self.mesher))
        with self._lock:
            self._meshes[key] = res
            while len(self._meshes) > self.cache_size:
                self._meshes.popitem(last=False)
        return res

    def neighbours_at(self, t: float, k: int = 5) -> list[tuple[str, str, float]]:
        """The store's k nearest codes to the code at t: ``[(id, class, distance)]`` (empty without a store)."""
        if self.store is None or len(self.store) == 0:
            return []
        from shapelatent.latent.retrieval import NeighborIndex

        if self._index is None:
            self._index = NeighborIndex(self.store.codes)
        k = min(int(k), len(self.store))
        res = self._index.search(self.code_at(t)[None], k)
        return [
            (self.store.items[int(j)]["id"], self.store.items[int(j)]["class"] or "?", float(d))
            for j, d in zip(res.indices[0], res.distances[0], strict=True)
            if j >= 0
        ]

    def endpoint_from_store(self, ref: str) -> Endpoint:
        """An endpoint from a store id (or a mesh/point file, encoded by the model)."""
        from shapelatent.latent.decode import resolve_shape

        r = resolve_shape(ref, self.loaded, self.store, self.model_path)
        return Endpoint(str(r["ref"]), str(r["label"]), str(r["class"]), np.asarray(r["code"], dtype=np.float32))

    def describe(self, t: float) -> str:
        """One line: the endpoints and t."""
        names = " -> ".join(f"{a.label}" + (f" ({a.cls})" if a.cls else "") for a in self.anchors)
        return f"{names}   t = {t:.3f}   {self.method}, mesher {self.mesher}"


def session_from_refs(
    model: str | Path, refs: list[str], store: str | Path | None = None, **kwargs: Any
) -> InterpSession:
    """A session for a model and K >= 2 shapes given as store ids or mesh / point files.

    Raises:
        StoreError: the store was not made by the model. FileNotFoundError: a ref is neither an id nor a file.
    """
    from shapelatent.latent.decode import resolve_shape, store_for_model
    from shapelatent.models.load import load_model

    loaded = load_model(model)
    st = store_for_model(store, loaded, str(model)) if store is not None else None
    anchors = []
    for ref in refs:
        r = resolve_shape(ref, loaded, st, str(model))
        anchors.append(Endpoint(str(r["ref"]), str(r["label"]), str(r["class"]), np.asarray(r["code"], np.float32)))
    return InterpSession(loaded, anchors, st, model_path=str(model), **kwargs)


def session_from_folder(folder: str | Path, model: str | Path | None = None, **kwargs: Any) -> InterpSession:
    """A session that continues a written interpolation folder (``shapelatent interpolate ... --out DIR``).

    The anchors are the codes the manifest stores at each segment's ends; the model is ``model`` or the one the
    folder's provenance names, and must still exist.

    Raises:
        FileNotFoundError: no manifest, or no model (the message says to pass --model).
        ValueError: a manifest without codes.
    """
    from shapelatent.models.load import load_model

    root = Path(folder)
    mpath = root / "manifest.json"
    if not mpath.exists():
        raise FileNotFoundError(f"{root}: no manifest.json; give a folder written by `shapelatent interpolate`.")
    manifest = json.loads(mpath.read_text())
    steps = manifest.get("steps") or []
    if not steps or any("code" not in s for s in steps):
        raise ValueError(f"{mpath}: its steps carry no codes (an old folder); view it with --model RUN A B instead.")
    if model is None:
        prov = root / "provenance.json"
        recorded = json.loads(prov.read_text()).get("config", {}).get("model") if prov.exists() else None
        if not recorded or not Path(recorded).exists():
            raise FileNotFoundError(
                f"{root}: the model that wrote it ({recorded or 'not recorded'}) is not here; pass --model RUN "
                "to decode in-between shapes, or use `shapelatent render` for the written steps."
            )
        model = recorded
    loaded = load_model(model)
    shapes = manifest.get("shapes") or []
    ends: list[Endpoint] = []
    segments = max(int(s.get("segment", 0)) for s in steps) + 1
    for seg in range(segments):
        rows = [s for s in steps if int(s.get("segment", 0)) == seg]
        first, last = min(rows, key=lambda s: s["t"]), max(rows, key=lambda s: s["t"])
        if seg == 0:
            ends.append(_endpoint(shapes, 0, first["code"]))
        ends.append(_endpoint(shapes, seg + 1, last["code"]))
    kwargs.setdefault("method", manifest.get("method", "linear"))
    return InterpSession(loaded, ends, None, model_path=str(model), **kwargs)


def _endpoint(shapes: list[dict[str, Any]], i: int, code: list[float]) -> Endpoint:
    info = shapes[i] if i < len(shapes) else {}
    ref = str(info.get("ref", f"shape {i}"))
    return Endpoint(ref, str(info.get("label", ref)), str(info.get("class", "") or ""), np.asarray(code, np.float32))
