"""Adding occupancy supervision to an existing dataset, in place, without re-sampling its points.

For every row, :func:`add_occupancy` finds the source mesh again from ``metadata.csv``'s ``source``:

- ``procedural:<seed>``: the chair is regenerated with its family (the row's class);
- ``<archive>.sh3f!<member>``: the OBJ is extracted from the Sweet Home 3D library found among ``archives``, and the
  item's ``modelRotation`` is read from the library's catalogue;
- a mesh file path (absolute, or relative to the working folder or the dataset folder), rotated by the row's
  ``extra["rotation"]`` when a builder recorded one.

It then recovers the transform that normalised the row's points (``(M v - center) / scale``), which datasets do not
record: first **exactly**, by re-running the builder's sampling (same sampler, seed ``sampling.seed + index``,
rotation, normalisation) and accepting the centre/scale when the re-sampled points equal the stored ones bit for
bit (seeds up to ``index + skipped`` are tried, since a skipped input shifts the sampler's index); otherwise by a
**fit**: uniform scale and translation taking the stored points onto the mesh surface (closest-point least squares
from the bounding-box estimate, restarted point-to-point where the first start stops in a wrong minimum). Each row
records its residual (largest distance of a stored point to the transformed surface); a fit whose residual exceeds
1e-4 (normalised units) fails the row.

Queries and labels then come from :func:`~shapelatent.data.occupancy_labels.shape_occupancy` with seed
``(seed, index)``. Rows that fail (source not found, a point-set source, a mesh whose winding numbers are
meaningless) are stored with ``valid = False`` and listed in the report with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.data.build import SamplingConfig, default_workers, parallel_map
from shapelatent.data.format import ShapeDataset
from shapelatent.data.occupancy_format import BOX, OccupancyWriter, pack_labels
from shapelatent.data.occupancy_labels import LABEL_METHODS, SHELL_EPS, SIGMAS, shape_occupancy
from shapelatent.data.sampling import sample_surface
from shapelatent.errors import ShapelatentError

__all__ = ["OccupancyReport", "add_occupancy", "recover_transform"]

logger = logging.getLogger(__name__)

FIT_TOLERANCE = 1e-4  #: largest residual (max point-to-surface distance, normalised units) a fit may have
_MAX_SEED_WINDOW = 64


@dataclass
class OccupancyReport:
    """What :func:`add_occupancy` did.

    Attributes:
        path: the dataset folder.
        built: rows written (= shapes in the dataset).
        valid: rows with labels.
        failed: rows without, as ``{"id", "source", "reason"}``.
        transforms: how many transforms were recovered ``exact`` and ``fitted``.
        label_methods: rows per label method used.
        max_residual: largest residual over the valid rows (normalised units; max distance of the stored points to the
            transformed mesh).
        seconds: wall time.
    """

    path: Path
    built: int
    valid: int
    failed: list[dict[str, str]] = field(default_factory=list)
    transforms: dict[str, int] = field(default_factory=dict)
    label_methods: dict[str, int] = field(default_factory=dict)
    max_residual: float = 0.0
    seconds: float = 0.0


def _surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    import igl

    return np.sqrt(igl.point_mesh_squared_distance(np.ascontiguousarray(points, np.float64), vertices, faces)[0])


class _Surface:
    """Closest points on a triangle mesh, the AABB tree built once: (N, 3) queries -> (d2 (N,), face (N,), y (N, 3))."""

    def __init__(self, v: np.ndarray, f: np.ndarray) -> None:
        import igl

        self.v, self.f = np.ascontiguousarray(v, np.float64), np.ascontiguousarray(f, np.int64)
        self.tree = igl.AABB()
        self.tree.init(self.v, self.f)
        tri = self.v[self.f]  # (F, 3, 3)
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.normals = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)  # (F, 3) unit

    def closest(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.tree.squared_distance(self.v, self.f, np.ascontiguousarray(q, np.float64))


def _plane_steps(
    surf: _Surface, p: np.ndarray, s: float, c: np.ndarray, quantiles: Sequence[float], iterations: int
) -> tuple[float, np.ndarray]:
    """Point-to-plane ICP restricted to scale + translation: for each trimming quantile in turn, up to ``iterations``
    4-unknown linear least-squares steps over the points whose distance is within that quantile."""
    for q in quantiles:
        for _ in range(iterations):
            d2, face, y = surf.closest(p * s + c)
            keep = d2 <= np.quantile(d2, q)
            n = surf.normals[face[keep]]  # (K, 3)
            a = np.column_stack(((n * p[keep]).sum(1), n))  # (K, 4): unknowns (s, c)
            sol = np.linalg.lstsq(a, (n * y[keep]).sum(1), rcond=None)[0]
            step = abs(sol[0] - s) + np.abs(sol[1:] - c).max()
            s, c = float(sol[0]), sol[1:]
            if step < 1e-10 * s:
                break
    return s, c


def _point_steps(surf: _Surface, p: np.ndarray, s: float, c: np.ndarray, iterations: int) -> tuple[float, np.ndarray]:
    """Point-to-point ICP restricted to scale + translation (closed form over all points, Umeyama without rotation):
    slower than point-to-plane, but it does not slide along flat parts the way point-to-plane can."""
    pm = p.mean(0)
    pc = p - pm
    var = float((pc**2).sum())
    for _ in range(iterations):
        y = surf.closest(p * s + c)[2]
        ym = y.mean(0)
        s1 = float((pc * (y - ym)).sum() / var)
        c1 = ym - s1 * pm
        step = abs(s1 - s) + np.abs(c1 - c).max()
        s, c = s1, c1
        if step < 1e-6 * s:
            break
    return s, c


def _fit(stored: np.ndarray, v: np.ndarray, f: np.ndarray, iterations: int = 30) -> tuple[np.ndarray, float, float]:
    """Uniform scale s and translation c with ``stored * s + c`` on the mesh (v, f); returns c, s, residual.

    The residual is the largest distance of a point to the surface (normalised units), as for an exact recovery: a
    median would accept a fit that slides the half of the points lying on one plane (a table top) along it while
    the rest are off the surface.

    From the bounding-box estimate, point-to-plane ICP restricted to scale + translation, each step over the 60%
    closest points (trimmed: points inside other parts of an old, un-unioned chair lie off the outer surface). Where
    that stops in a wrong minimum (a few sparse points sliding along a table top: 1 in 30 Sweet Home 3D rows at
    P = 2048, 1 in 3 at P = 256), a second start: point-to-point steps over all points until they settle, then
    point-to-plane over the 90% and then all closest points. The better of the two is returned.
    """
    p = stored.astype(np.float64)
    surf = _Surface(v, f)
    s0 = float(np.linalg.norm(v.max(0) - v.min(0)) / max(float(np.linalg.norm(p.max(0) - p.min(0))), 1e-12))
    c0 = (v.max(0) + v.min(0)) / 2 - s0 * (p.max(0) + p.min(0)) / 2

    def residual(s: float, c: np.ndarray) -> float:  # the farthest point; inf for a mirrored or collapsed fit
        return float(np.sqrt(surf.closest(p * s + c)[0].max())) / s if s > 0 else float("inf")

    s, c = _plane_steps(surf, p, s0, c0, (0.6,), iterations)
    resid = residual(s, c)
    if resid < FIT_TOLERANCE:
        return c, s, resid
    s2, c2 = _point_steps(surf, p, s0, c0, 200)
    s2, c2 = _plane_steps(surf, p, s2, c2, (0.9, 1.0), iterations)
    resid2 = residual(s2, c2)
    return (c2, s2, resid2) if resid2 < resid else (c, s, resid)


def recover_transform(
    vertices: np.ndarray,
    faces: np.ndarray,
    stored: np.ndarray,
    cfg: SamplingConfig,
    seeds: Sequence[int] = (),
    rotation: Sequence[float] | None = None,
) -> tuple[np.ndarray, float, str, float]:
    """The centre and scale that normalised a row's points, given the mesh they were sampled from.

    Args:
        vertices: (V, 3) float, the raw mesh (before ``rotation``).
        faces: (F, 3) int.
        stored: (P, 3) float32, the row of ``points.npy``.
        cfg: the dataset's sampling config (``dataset.json``'s ``sampling``).
        seeds: sampler seeds to try for the exact recovery, most likely first.
        rotation: row-major 3x3 applied before normalisation, or None.

    Returns:
        ``(center (3,) float64, scale, kind, residual)``: kind ``exact`` (re-sampling reproduced the stored points
        bit for bit) or ``fitted``; residual = max distance of the stored points to the transformed mesh, in
        normalised units. Normalised = ``(M v - center) / scale``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    m = None if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    mesh = _Mesh(v, f)
    v_rot = v if m is None else v @ m.T
    for s in seeds:
        pts = sample_surface(mesh, cfg.num_points, seed=int(s), oversample=cfg.oversample).points
        if m is not None:  # exactly as the builder rotates (shapelatent.data.build._rotate)
            pts = (pts.astype(np.float64) @ m.T).astype(np.float32)
        norm = cfg.normalization.apply(pts)
        if np.array_equal(norm.points, stored):
            resid = float(_surface_distance(stored.astype(np.float64) * norm.scale + norm.center, v_rot, f).max())
            return norm.center, norm.scale, "exact", resid / norm.scale
    c_fit, s_fit, resid_fit = _fit(np.asarray(stored), v_rot, f)
    return c_fit, s_fit, "fitted", resid_fit


class _Mesh(NamedTuple):  # the two attributes sample_surface reads
    vertices: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class _Row:
    index: int
    shape_id: str
    source: str
    stored: np.ndarray  # (P, 3) float32
    path: str | None = None
    family: str | None = None
    rotation: tuple[float, ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Labeller:
    cfg: SamplingConfig
    queries: int
    seed: int
    method: str
    shell_eps: float
    seed_window: int

    def __call__(self, row: _Row) -> tuple[_Row, Any, str]:
        try:
            if row.error:
                return row, None, row.error
            if row.family is not None:
                from shapelatent.data.procedural import generate_chair

                mesh = generate_chair(int(row.source.split(":", 1)[1]), row.family).mesh
            else:
                from shapelatent.io.meshes import read_mesh

                mesh = read_mesh(str(row.path))
            v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
            seeds = [self.cfg.seed + row.index + k for k in range(self.seed_window + 1)]
            c, s, kind, resid = recover_transform(v, f, row.stored, self.cfg, seeds, row.rotation)
            if kind == "fitted" and not resid < FIT_TOLERANCE:
                return (
                    row,
                    None,
                    (
                        f"could not recover the normalisation: the stored points are up to {resid:.2g} from "
                        "the mesh surface; the source file has changed since the dataset was built"
                    ),
                )
            occ = shape_occupancy(
                v,
                f,
                center=c,
                scale=s,
                rotation=row.rotation,
                queries=self.queries,
                seed=(self.seed, row.index),
                method=self.method,
                shell_eps=self.shell_eps,
                source=row.source,
            )
            return row, (occ.points, pack_labels(occ.labels), occ.method, kind, resid), ""
        except (ShapelatentError, ValueError, OSError, MemoryError) as exc:
            return row, None, str(exc)


def _sh3d_paths(rows: list[dict[str, Any]], archives: Sequence[str | os.PathLike[str]], work: Path) -> dict[int, Any]:
    """Row index -> (extracted OBJ path, rotation) or an error string, for ``archive!member`` sources."""
    from shapelatent.data.sources.sweethome3d import extract_models, find_archives, read_catalog

    found = {p.name: p for p in find_archives(archives)} if archives else {}
    by_archive: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_archive.setdefault(r["source"].split("!", 1)[0], []).append(r)
    out: dict[int, Any] = {}
    for name, mine in by_archive.items():
        if name not in found:
            for r in mine:
                out[r["index"]] = f"Sweet Home 3D library {name} not found; pass its folder as archives=[...]"
            continue
        catalog = read_catalog(found[name])
        items, wanted = {}, []
        for r in mine:
            member = r["source"].split("!", 1)[1]
            item_id = (r.get("extra") or {}).get("item_id")
            match = [it for it in catalog.items if it.model == member and (item_id is None or it.id == item_id)]
            if not match:
                out[r["index"]] = f"{r['source']}: no catalogue item of {name} uses this model"
                continue
            items[r["index"]] = match[0]
            wanted.append(match[0])
        objs, missing = extract_models(catalog, list({it.index: it for it in wanted}.values()), work / name)
        for index, it in items.items():
            out[index] = (
                (str(objs[it.index]), it.rotation) if it.index in objs else missing.get(it.index, "not extracted")
            )
    return out


def _rows(ds: ShapeDataset, archives: Sequence[str | os.PathLike[str]], work: Path) -> list[_Row]:
    from shapelatent.data.procedural import FAMILIES

    metas = [{**m, "extra": json.loads(m["extra"]) if m.get("extra") else {}} for m in ds.meta]
    sh3d = _sh3d_paths([{**m, "index": i} for i, m in enumerate(metas) if "!" in m["source"]], archives, work)
    rows = []
    for i, m in enumerate(metas):
        src, cls = m["source"], m["class"]
        common = {"index": i, "shape_id": m["id"], "source": src, "stored": np.array(ds.points[i])}
        if src.startswith("procedural:"):
            ok = src.split(":", 1)[1].isdigit() and cls in FAMILIES
            rows.append(_Row(**common, family=cls if ok else None, error=None if ok else "bad procedural source"))
        elif i in sh3d:
            got = sh3d[i]
            rows.append(
                _Row(**common, error=got) if isinstance(got, str) else _Row(**common, path=got[0], rotation=got[1])
            )
        else:
            extra = m["extra"]
            rotation = tuple(extra["rotation"]) if extra.get("rotation") else None  # when a builder recorded one
            candidates = [Path(src), ds.root / src]
            path = next((p for p in candidates if p.is_file()), None)
            if extra.get("presampled"):
                rows.append(_Row(**common, error="the source is a point set, not a mesh: it has no inside"))
            elif path is None:
                rows.append(_Row(**common, error=f"source file {src} not found"))
            else:
                rows.append(_Row(**common, path=str(path), rotation=rotation))
    return rows


def add_occupancy(
    dataset_dir: str | os.PathLike[str],
    queries: int = 8192,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
    *,
    archives: Sequence[str | os.PathLike[str]] = (),
    label_method: str = "auto",
    shell_eps: float = SHELL_EPS,
) -> OccupancyReport:
    """Add occupancy supervision to an existing dataset in place (its points are not re-sampled).

    Q = ``queries`` per shape: Q/2 uniform in [-1.1, 1.1]^3, Q/2 near the surface (Q/4 with Gaussian noise sigma
    0.01, Q/4 with sigma 0.05), labelled by ``label_method`` (``auto``: exact winding-number inside test on
    watertight meshes, winding number + a ``shell_eps`` shell on the others). See the module docstring for how
    each row's mesh and transform are recovered.

    Args:
        dataset_dir: a dataset folder (``shapelatent data build``).
        queries: Q, a positive multiple of 8.
        seed: row i's queries use seed ``(seed, i)``.
        workers: processes (default: all cores).
        progress: called with the number of shapes done since the last call.
        force: replace existing occupancy samples.
        archives: Sweet Home 3D ``.sh3f`` files or folders holding them (for ``archive!member`` sources).
        label_method: ``auto``, ``winding`` or ``winding+shell``.
        shell_eps: shell half-thickness, normalised units (default 2 * 1.1 / 128 ~= 0.0172, one 128^3 voxel).

    Returns:
        :class:`OccupancyReport`; failed rows are written with ``valid = False``.

    Raises:
        FileNotFoundError, DatasetFormatError: not a readable dataset.
        OutputExistsError: the dataset already has occupancy samples and ``force`` is False.
        ValueError: bad ``queries`` or ``label_method``.
    """
    t0 = time.perf_counter()
    if label_method not in LABEL_METHODS:
        raise ValueError(f"label_method must be one of {LABEL_METHODS}; got {label_method!r}")
    ds = ShapeDataset(dataset_dir)
    cfg = SamplingConfig.from_dict(ds.info["sampling"])
    info = {
        "uniform": queries // 2,
        "near_surface": queries - queries // 2,
        "sigma": list(SIGMAS),
        "box": BOX,
        "label_method": label_method,
        "shell_eps": shell_eps,
        "seed": seed,
    }
    report = OccupancyReport(ds.root, 0, 0, transforms={"exact": 0, "fitted": 0})
    work = Path(tempfile.mkdtemp(prefix=".occupancy-extract-", dir=ds.root.parent))
    try:
        with OccupancyWriter(ds.root, queries, info, force=force) as writer:
            rows = _rows(ds, archives, work)
            window = min(int(ds.info.get("skipped", 0)), _MAX_SEED_WINDOW)
            task = _Labeller(cfg, queries, seed, label_method, shell_eps, window)
            for row, result, reason in parallel_map(task, rows, default_workers(workers)):
                if result is None:
                    logger.warning("no occupancy for %s: %s", row.source, reason)
                    report.failed.append({"id": row.shape_id, "source": row.source, "reason": reason})
                    writer.add(None, None, valid=False)
                else:
                    pts, packed, method, kind, resid = result
                    writer.add(pts, packed)
                    report.valid += 1
                    report.transforms[kind] += 1
                    report.label_methods[method] = report.label_methods.get(method, 0) + 1
                    report.max_residual = max(report.max_residual, resid)
                if progress:
                    progress(1)
            writer.info["label_methods"] = dict(report.label_methods)
            writer.info["valid"] = report.valid
            writer.finalize(len(ds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.built = len(ds)
    report.seconds = time.perf_counter() - t0
    return report
