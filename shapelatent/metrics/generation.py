"""Metrics of a set of generated clouds against a reference set: MMD, COV, 1-NNA (under Chamfer and EMD), JSD.

Definitions, following latent_3d_points (Achlioptas et al., "Learning Representations and Generative Models
for 3D Point Clouds", ICML 2018, ``src/evaluation_metrics.py``) and PointFlow (Yang et al., ICCV 2019,
``metrics/evaluation_metrics.py``). X is a distance between two clouds: CD (``shapelatent.ops.chamfer``:
squared L2, mean per direction, both directions summed) or EMD (``shapelatent.metrics.emd``: Euclidean,
per point). ``d_gen_ref`` is the (N_gen, M_ref) matrix of X between generated and reference clouds.

* MMD-X (minimum matching distance): for each reference cloud, X to its nearest generated cloud, averaged
  over the references. Lower is better.
* COV-X (coverage): the fraction of reference clouds that are the nearest reference (under X) of at least one
  generated cloud; an argmin tie goes to the lower reference index. Higher is better.
* 1-NNA-X (PointFlow): the leave-one-out accuracy of the 1-nearest-neighbour classifier (under X) that labels
  each cloud of ``gen ∪ ref`` generated or reference by the label of its nearest other cloud. 0.5 is ideal:
  for two independent samples of one distribution it tends to 0.5, for clearly different ones to 1.0.
  Ties: a cloud whose nearest distance is reached both by a cloud of its own set and by one of the other set
  counts 1/2 (the expected accuracy of a random tie-break; PointFlow's ``topk`` picks one arbitrarily).
  Exact copies are NOT ties: when ``gen`` is a copy of ``ref``, every cloud's nearest other cloud is its twin
  in the other set at distance 0, and the accuracy is 0.0, as in PointFlow. A 1-NNA well below 0.5 thus flags
  a generator that copies the reference clouds; 0.5 is reached by one that matches their distribution.
* JSD: latent_3d_points' ``jsd_between_point_cloud_sets``: each point of a set is assigned to the nearest
  centre of a ``resolution``^3 grid over [-0.5, 0.5]^3 (cells outside the sphere of radius 0.5 dropped when
  ``in_unit_sphere``), the point counts of all the set's clouds are summed per cell (every point counts, not
  each occupied cell once per cloud: the reference passes ``grid_counters``, not its Bernoulli counts), and
  the Jensen-Shannon divergence of the two normalised count vectors is returned in bits (log base 2, as the
  reference): 0 for equal distributions, 1 for disjoint occupancy. It warns, like the reference, when a set
  leaves the unit cube or sphere (|coordinate| or norm > 0.501): such points fall in the border cells.

Normalisation (``NORMALIZATIONS``), applied to both sets before every metric:

* ``none``: the clouds as given (JSD expects them inside the radius-0.5 sphere).
* ``per_shape``: each cloud centred on its bounding-box centre and scaled so that its farthest point is at
  distance 0.5, the "unit sphere" (diameter 1) of latent_3d_points' data and JSD grid; MMD-CD is then 1/4 and
  MMD-EMD 1/2 of their values on the same clouds scaled to radius 1 (``Normalization(scale="unit_sphere")``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from shapelatent.metrics.emd import EMD_METHODS
from shapelatent.metrics.pairwise import _as_set, pairwise_chamfer, pairwise_emd

__all__ = ["GENERATION_METRICS", "NORMALIZATIONS", "coverage", "generation_metrics", "jsd", "jsd_notes_to_log",
           "mmd", "normalize_clouds", "one_nna"]  # fmt: skip

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("none", "per_shape")
#: Distances ``generation_metrics`` can compute the MMD/COV/1-NNA triple under.
GENERATION_METRICS = ("cd", "emd")
#: latent_3d_points' ``epsilon = 10e-4`` margin of its unit cube/sphere check.
_BOUND = 0.5 + 10e-4


def normalize_clouds(x: Any, mode: str) -> np.ndarray:
    """Normalise a set of clouds for the generation metrics (see the module docstring).

    Args:
        x: (N, P, 3) float clouds, or one (P, 3) cloud.
        mode: one of ``NORMALIZATIONS``.

    Returns:
        float64 array of the input's shape.

    Raises:
        ValueError: an unknown mode, a bad shape, or (``per_shape``) a cloud whose points all coincide.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {mode!r}; choose from {NORMALIZATIONS}")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    single = arr.ndim == 2
    pts = _as_set(arr[None] if single else arr, "x").astype(np.float64)
    if mode == "per_shape":
        center = (pts.min(axis=1, keepdims=True) + pts.max(axis=1, keepdims=True)) / 2  # (N, 1, 3)
        pts = pts - center
        radius = np.linalg.norm(pts, axis=2).max(axis=1)  # (N,)
        flat = np.flatnonzero(radius == 0)
        if len(flat):
            raise ValueError(f"clouds {flat[:5].tolist()} have all points at one place; they cannot be scaled")
        pts = pts * (0.5 / radius)[:, None, None]
    return pts[0] if single else pts


def _check_matrix(d: Any, name: str) -> np.ndarray:
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D distance matrix; got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def mmd(d_gen_ref: Any) -> float:
    """Minimum matching distance: mean over references of the distance to the nearest generated cloud.

    Args:
        d_gen_ref: (N_gen, M_ref) distances between generated (rows) and reference (columns) clouds.
    """
    d = _check_matrix(d_gen_ref, "d_gen_ref")
    return float(d.min(axis=0).mean())


def coverage(d_gen_ref: Any) -> float:
    """Fraction of reference clouds that are the nearest reference of at least one generated cloud.

    Args:
        d_gen_ref: (N_gen, M_ref) distances; an argmin tie goes to the lower reference index.
    """
    d = _check_matrix(d_gen_ref, "d_gen_ref")
    return float(len(np.unique(d.argmin(axis=1))) / d.shape[1])


def one_nna(d_gg: Any, d_rr: Any, d_gr: Any) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy on ``gen ∪ ref`` (PointFlow's 1-NNA; ties count 1/2).

    Args:
        d_gg: (N, N) distances within the generated set (the diagonal is ignored).
        d_rr: (M, M) distances within the reference set (the diagonal is ignored).
        d_gr: (N, M) distances from generated (rows) to reference (columns) clouds.

    Returns:
        Accuracy in [0, 1]; see the module docstring for ties and for copied sets (0.0).
    """
    gg, rr, gr = _check_matrix(d_gg, "d_gg"), _check_matrix(d_rr, "d_rr"), _check_matrix(d_gr, "d_gr")
    n, m = gr.shape
    if gg.shape != (n, n) or rr.shape != (m, m):
        raise ValueError(f"d_gg must be (N, N), d_rr (M, M) and d_gr (N, M); got {gg.shape}, {rr.shape} and {gr.shape}")
    gg, rr = gg.copy(), rr.copy()
    np.fill_diagonal(gg, np.inf)  # leave one out
    np.fill_diagonal(rr, np.inf)
    same_g, other_g = gg.min(axis=1), gr.min(axis=1)  # (N,) nearest generated / reference of each generated
    same_r, other_r = rr.min(axis=1), gr.min(axis=0)  # (M,) nearest reference / generated of each reference

    def score(same: np.ndarray, other: np.ndarray) -> np.ndarray:
        return np.where(same < other, 1.0, np.where(same > other, 0.0, 0.5))

    return float(np.concatenate([score(same_g, other_g), score(same_r, other_r)]).mean())


def _unit_cube_grid(resolution: int, clip_sphere: bool) -> np.ndarray:
    """latent_3d_points' ``unit_cube_grid_point_cloud``: (C, 3) float32 cell centres over [-0.5, 0.5]^3."""
    spacing = 1.0 / float(resolution - 1)
    axis = np.arange(resolution)
    ii, jj, kk = np.meshgrid(axis, axis, axis, indexing="ij")
    grid = np.stack([ii, jj, kk], axis=-1).astype(np.float32) * np.float32(spacing) - np.float32(0.5)
    grid = grid.reshape(-1, 3)  # (res^3, 3), x slowest as in the reference
    if clip_sphere:
        grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    return grid


def _grid_counts(clouds: np.ndarray, grid: np.ndarray, in_sphere: bool, name: str) -> np.ndarray:
    """Points of all clouds per grid cell (nearest cell centre); warns as the reference does."""
    from scipy.spatial import cKDTree

    if abs(clouds.max()) > _BOUND or abs(clouds.min()) > _BOUND:
        warnings.warn(
            f"JSD: the {name} clouds are not in the unit cube [-0.5, 0.5]^3 (coordinates span "
            f"[{clouds.min():.3g}, {clouds.max():.3g}]); points outside fall in border cells. "
            "Use normalize='per_shape' or scale them into the sphere of radius 0.5.",
            stacklevel=3,
        )
    if in_sphere and np.sqrt((clouds**2).sum(axis=2)).max() > _BOUND:
        warnings.warn(
            f"JSD: the {name} clouds are not in the unit sphere (largest norm "
            f"{np.sqrt((clouds**2).sum(axis=2)).max():.3g} > 0.5). Use normalize='per_shape' or scale them.",
            stacklevel=3,
        )
    _, cell = cKDTree(grid.astype(np.float64)).query(clouds.reshape(-1, 3), k=1)
    return np.bincount(cell, minlength=len(grid)).astype(np.float64)


def _entropy_bits(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


@contextlib.contextmanager
def jsd_notes_to_log(log: logging.Logger) -> Iterator[None]:
    """Inside the block, :func:`jsd`'s notes on points outside its grid go to ``log`` (info), not to warnings.

    Generated clouds (decoded points, or samples of an implicit head's meshes) can reach a little past the
    radius-0.5 sphere that JSD's occupancy grid spans even when every real shape is inside; :func:`jsd` then warns,
    as latent_3d_points' ``entropy_of_occupancy_grid`` does, and counts those points in the border cells, as the
    reference does. Scoring a generative model, that is expected, not a fault of the run (``evaluate`` and the
    benches use this). Other warnings are re-issued unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if str(w.message).startswith("JSD:"):
            log.info("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def jsd(gen: Any, ref: Any, resolution: int = 28, in_unit_sphere: bool = True) -> float:
    """Jensen-Shannon divergence (bits) between the grid occupancies of two sets (latent_3d_points).

    Args:
        gen: (N, P, 3) float clouds, expected inside the sphere of radius 0.5.
        ref: (M, P', 3) float clouds, likewise.
        resolution: cells per axis of the grid over [-0.5, 0.5]^3 (>= 2).
        in_unit_sphere: drop the grid cells whose centre lies outside the radius-0.5 sphere (the reference
            always does) and warn about points outside it.

    Returns:
        JSD in [0, 1]; see the module docstring.

    Raises:
        ValueError: bad shapes, non-finite points, resolution < 2.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2 (cells per axis); got {resolution!r}")
    grid = _unit_cube_grid(int(resolution), in_unit_sphere)
    p = _grid_counts(_as_set(gen, "gen").astype(np.float64), grid, in_unit_sphere, "generated")
    q = _grid_counts(_as_set(ref, "ref").astype(np.float64), grid, in_unit_sphere, "reference")
    p, q = p / p.sum(), q / q.sum()
    return max(0.0, _entropy_bits((p + q) / 2) - (_entropy_bits(p) + _entropy_bits(q)) / 2)


def generation_metrics(
    gen: Any,
    ref: Any,
    *,
    metrics: Sequence[str] = ("cd", "emd"),
    normalize: str = "none",
    emd_method: str = "auction",
    batch_size: int = 256,
    backend: str = "auto",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """MMD, COV and 1-NNA under each requested distance, and JSD, of generated clouds against references.

    Args:
        gen: (N, P, 3) float generated clouds (np.ndarray or torch.Tensor), N >= 1.
        ref: (M, P, 3) float reference clouds, M >= 1 (EMD needs the same P as ``gen``).
        metrics: a non-empty subset of ``GENERATION_METRICS`` (``"cd"``, ``"emd"``).
        normalize: one of ``NORMALIZATIONS``, applied to both sets first.
        emd_method: one of ``shapelatent.metrics.emd.EMD_METHODS``.
        batch_size: cloud pairs per Chamfer block.
        backend: Chamfer backend.
        device: torch device of the Chamfer blocks.
        progress: called as ``progress(done, total)`` in cloud pairs over all the distance matrices.

    Returns:
        ``{"MMD-CD", "COV-CD", "1-NNA-CD"}`` when "cd" is requested, ``{"MMD-EMD", "COV-EMD", "1-NNA-EMD"}``
        when "emd" is, and ``"JSD"`` always; floats.

    Raises:
        ValueError: bad sets, an unknown metric, normalization or EMD method; unequal P with "emd".
    """
    wanted = tuple(metrics)
    unknown = [name for name in wanted if name not in GENERATION_METRICS]
    if not wanted or unknown:
        raise ValueError(f"metrics must be a non-empty subset of {GENERATION_METRICS}; got {wanted!r}")
    if emd_method not in EMD_METHODS:
        raise ValueError(f"unknown emd_method {emd_method!r}; choose from {EMD_METHODS}")
    g = normalize_clouds(_as_set(gen, "gen"), normalize)
    r = normalize_clouds(_as_set(ref, "ref"), normalize)
    if "emd" in wanted and g.shape[1] != r.shape[1]:
        raise ValueError(
            f"EMD needs clouds of equal size: gen has P={g.shape[1]} points, ref has P={r.shape[1]}; resample one "
            "set, or pass metrics=('cd',)"
        )
    n, m = len(g), len(r)
    per_metric = n * m + n * (n - 1) // 2 + m * (m - 1) // 2
    total = per_metric * len(set(wanted))
    done = 0

    def step(count: int, _total: int) -> None:
        if progress is not None:
            progress(done + count, total)

    def dist(name: str, a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        if name == "cd":  # float32 clouds, as the Chamfer loss sees them
            b32 = None if b is None else b.astype(np.float32)
            return pairwise_chamfer(
                a.astype(np.float32), b32, batch_size=batch_size, backend=backend, device=device, progress=step
            )
        return pairwise_emd(a, b, method=emd_method, progress=step)

    results: dict[str, float] = {}
    for name in dict.fromkeys(wanted):  # in order, without repeats
        d_gr = dist(name, g, r)  # (N, M)
        done += n * m
        d_gg = dist(name, g, None)  # (N, N)
        done += n * (n - 1) // 2
        d_rr = dist(name, r, None)  # (M, M)
        done += m * (m - 1) // 2
        key = name.upper()
        results[f"MMD-{key}"] = mmd(d_gr)
        results[f"COV-{key}"] = coverage(d_gr)
        results[f"1-NNA-{key}"] = one_nna(d_gg, d_rr, d_gr)
        logger.info("generation metrics %s: %s", key, {k: v for k, v in results.items() if k.endswith(key)})
    results["JSD"] = jsd(g, r)
    return results
