"""Benchmark the meshers on procedural chairs: with true, sign-flipped and estimated normals.

Chair ``i`` is ``generate_chair(seed + i)``, sampled with ``sample_surface(mesh, P, seed=seed + i)`` (points
and the true normals of their faces) and normalised (bounding-box centre, unit sphere). Each mesher gets
the points with

* ``true``: the true normals, unchanged;
* ``flipped``: the true normals with the sign of a random half of them flipped (what a decoder trained
  with an unoriented ``1 - |cos|`` loss can produce); ``reconstruct_mesh`` orients them;
* ``estimated``: no normals; ``reconstruct_mesh`` estimates them by PCA and orients them.

Reported per mesher and case (means over the chairs that meshed; ``fail`` counts ``MeshingError``):
watertight share; ``cd_pts``, the Chamfer distance between P points sampled on the mesh and the P input
points (``MeshResult.chamfer_to_points``); ``cd_true``, the Chamfer distance between the mesh surface and
the chair's true outer surface: the mean squared distance from ``--samples`` points sampled on the mesh
to the true surface, plus the mean squared distance from ``--samples`` points sampled on the true outer
surface to the mesh, both exact point-to-triangle distances (Open3D ``RaycastingScene``), so there is
no sampling floor. The generator's parts interpenetrate; samples of the true mesh that lie inside
another part are not on the outer surface and are dropped. Both Chamfer values are squared-L2
sum-of-means, reported x 1e3. Then triangles and seconds (mesh building only, not the evaluation).
A second table scores the normal orientation alone (every method of ``ORIENTATIONS``): the share of the
input points on the outer surface whose oriented normal points the way of the true normal.

``--figure PATH`` also renders the chairs given by ``--figure-chairs`` (true mesh, then each mesher with
true, flipped and estimated normals, and Poisson after the ``tangent_plane`` orientation for contrast).

``--quick``: 3 chairs and 5000 surface samples for ``cd_true`` instead of 12 and 20000.

Example::

    .venv/bin/python bench/meshing.py --count 12 --points 2048 --json out/bench_meshing.json \
        --figure docs/images/meshing_comparison.png
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh
from common import write_result  # bench/common.py

from shapelatent.data.normalize import Normalization
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sampling import sample_surface
from shapelatent.errors import MeshingError
from shapelatent.meshing import (
    MESHERS,
    ORIENTATIONS,
    MeshingConfig,
    estimate_normals,
    orient_normals,
    reconstruct_mesh,
)
from viewers.render import render_views

CASES = ("true", "flipped", "estimated")


def _scene(vertices: np.ndarray, faces: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    return scene


def _sq_dist(scene: o3d.t.geometry.RaycastingScene, points: np.ndarray) -> np.ndarray:
    return scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy().astype(np.float64) ** 2


def on_outer_surface(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """(N,) bool: which points on ``mesh`` are not strictly inside another of its connected parts."""
    query = o3d.core.Tensor(np.asarray(points, dtype=np.float32))
    inside = np.zeros(len(points), dtype=bool)
    for part in mesh.split(only_watertight=False):
        signed = _scene(np.asarray(part.vertices), np.asarray(part.faces)).compute_signed_distance(query).numpy()
        inside |= signed < -1e-6 * float(np.ptp(mesh.vertices, axis=0).max())
    return ~inside


def outer_surface_samples(mesh: trimesh.Trimesh, count: int, seed: int) -> np.ndarray:
    """(count', 3) points sampled on ``mesh`` that are not strictly inside another of its connected parts."""
    points = sample_surface(mesh, count, seed=seed).points
    return points[on_outer_surface(mesh, points)]


def orientation_agreement(points, true_normals, flipped, outer, k: int, seed: int) -> list[dict]:
    """Share of outer-surface points whose oriented normal points the way of the true one, per method."""
    estimated = estimate_normals(points, k)
    rows = []
    for method in ORIENTATIONS:
        for case, normals in (("flipped", flipped), ("estimated", estimated)):
            oriented = orient_normals(points, normals, method=method, seed=seed).normals
            agree = np.einsum("ij,ij->i", oriented, true_normals) > 0
            rows.append({"orientation": method, "case": case, "agreement": float(agree[outer].mean())})
    return rows


def chamfer_to_surface(
    vertices: np.ndarray, faces: np.ndarray, true_scene, true_samples: np.ndarray, count: int, seed: int
) -> float:
    """Mesh-to-true plus true-to-mesh mean squared point-to-triangle distance."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    on_mesh = sample_surface(mesh, count, seed=seed).points
    return float(_sq_dist(true_scene, on_mesh).mean() + _sq_dist(_scene(vertices, faces), true_samples).mean())


def run(args: argparse.Namespace) -> dict:
    normalization = Normalization()
    configs = {
        method: MeshingConfig(
            method=method,
            poisson_depth=args.depth,
            density_quantile=args.density_quantile,
            orientation=args.orientation,
            normal_neighbors=args.normal_neighbors,
        )
        for method in args.methods
    }
    rows, agreement = [], []
    for i in range(args.count):
        shape_seed = args.seed + i
        chair = generate_chair(shape_seed)
        cloud = sample_surface(chair.mesh, args.points, seed=shape_seed)
        norm = normalization.apply(cloud.points)
        points, normals = norm.points, cloud.normals
        true_mesh = trimesh.Trimesh((chair.mesh.vertices - norm.center) / norm.scale, chair.mesh.faces, process=False)
        true_scene = _scene(np.asarray(true_mesh.vertices), np.asarray(true_mesh.faces))
        true_samples = outer_surface_samples(true_mesh, args.samples, seed=10_000 + shape_seed)
        flips = np.where(np.random.default_rng(shape_seed).random(len(points)) < 0.5, -1.0, 1.0)[:, None]
        inputs = {"true": normals, "flipped": normals * flips, "estimated": None}
        # the input points scaled back onto the true mesh, to tell outer-surface points from hidden ones
        outer = on_outer_surface(true_mesh, points)
        for row in orientation_agreement(points, normals, inputs["flipped"], outer, args.normal_neighbors, shape_seed):
            agreement.append({"shape": i, **row})
        for case in args.cases:
            for method, config in configs.items():
                if case == "true":  # the true normals are consistent: keep them as they are
                    config = MeshingConfig(**{**config.__dict__, "orient_normals": False})
                row = {"shape": i, "seed": shape_seed, "family": chair.family, "method": method, "case": case}
                try:
                    result = reconstruct_mesh(points, inputs[case], config, seed=shape_seed)
                except MeshingError as exc:
                    row["error"] = str(exc)
                    rows.append(row)
                    print(f"  chair {i} {method} {case}: {exc}", file=sys.stderr)
                    continue
                cd_true = chamfer_to_surface(
                    result.vertices, result.faces, true_scene, true_samples, args.samples, seed=20_000 + shape_seed
                )
                row.update(
                    watertight=result.watertight,
                    cd_points=result.chamfer_to_points,
                    cd_true=cd_true,
                    triangles=result.num_triangles,
                    seconds=result.seconds,
                )
                rows.append(row)
        print(f"chair {i + 1}/{args.count} ({chair.family}) done", file=sys.stderr, flush=True)
    orientation_summary = [
        {
            "orientation": method,
            "case": case,
            "agreement_mean": statistics.fmean(r["agreement"] for r in group),
            "agreement_min": min(r["agreement"] for r in group),
        }
        for method in ORIENTATIONS
        for case in ("flipped", "estimated")
        if (group := [r for r in agreement if r["orientation"] == method and r["case"] == case])
    ]
    return {"rows": rows, "summary": summarise(rows, args), "orientation": orientation_summary}


def summarise(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    summary = []
    for method in args.methods:
        for case in args.cases:
            group = [r for r in rows if r["method"] == method and r["case"] == case]
            ok = [r for r in group if "error" not in r]
            entry = {"method": method, "case": case, "shapes": len(group), "failures": len(group) - len(ok)}
            if ok:
                entry.update(
                    watertight_share=sum(r["watertight"] for r in ok) / len(ok),
                    cd_points_x1e3=statistics.fmean(r["cd_points"] for r in ok) * 1e3,
                    cd_true_x1e3=statistics.fmean(r["cd_true"] for r in ok) * 1e3,
                    cd_true_median_x1e3=statistics.median(r["cd_true"] for r in ok) * 1e3,
                    cd_true_max_x1e3=max(r["cd_true"] for r in ok) * 1e3,
                    triangles=statistics.fmean(r["triangles"] for r in ok),
                    seconds=statistics.fmean(r["seconds"] for r in ok),
                )
            summary.append(entry)
    return summary


# (title, MeshingConfig overrides, normals case) of each figure column after the true chair
FIGURE_COLUMNS = (
    ("Poisson, true n", {"orient_normals": False}, "true"),
    ("Poisson, flipped n", {}, "flipped"),
    ("Poisson, est. n", {}, "estimated"),
    ("Poisson, flip, tan.plane", {"orientation": "tangent_plane"}, "flipped"),
    ("ball pivot., true n", {"method": "ball_pivoting", "orient_normals": False}, "true"),
    ("ball pivot., est. n", {"method": "ball_pivoting"}, "estimated"),
    ("alpha shape", {"method": "alpha"}, "estimated"),
)


def render_figure(args: argparse.Namespace) -> Path:
    """Render the chairs of ``--figure-chairs`` with every column of ``FIGURE_COLUMNS`` into ``--figure``."""
    meshes, titles = [], []
    for shape_seed in args.figure_chairs:
        chair = generate_chair(shape_seed)
        cloud = sample_surface(chair.mesh, args.points, seed=shape_seed)
        norm = Normalization().apply(cloud.points)
        flips = np.where(np.random.default_rng(shape_seed).random(args.points) < 0.5, -1.0, 1.0)[:, None]
        inputs = {"true": cloud.normals, "flipped": cloud.normals * flips, "estimated": None}
        meshes.append(trimesh.Trimesh((chair.mesh.vertices - norm.center) / norm.scale, chair.mesh.faces))
        titles.append(f"{chair.family} {shape_seed} (true)")
        for title, overrides, case in FIGURE_COLUMNS:
            config = MeshingConfig(
                **{"poisson_depth": args.depth, "density_quantile": args.density_quantile, **overrides}
            )
            result = reconstruct_mesh(norm.points, inputs[case], config, seed=shape_seed)
            meshes.append(trimesh.Trimesh(result.vertices, result.faces, process=False))
            titles.append(title)
    return render_views(meshes, args.figure, titles=titles, ncols=len(FIGURE_COLUMNS) + 1, size=(160, 160), mode="mesh")


def print_table(summary: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nMeshing {args.count} procedural chairs x {args.points} points (unit sphere); orientation "
        f"{args.orientation!r}, Poisson depth {args.depth}, density quantile {args.density_quantile}"
    )
    header = (
        f"{'method':<14}{'normals':<10}{'fail':>5}{'watertight':>11}{'cd_pts':>8}{'cd_true':>9}"
        f"{'median':>8}{'max':>8}{'triangles':>10}{'seconds':>8}"
    )
    print(header)
    print("-" * len(header))
    for e in summary:
        if "cd_true_x1e3" not in e:
            print(f"{e['method']:<14}{e['case']:<10}{e['failures']:>5}  (all failed)")
            continue
        print(
            f"{e['method']:<14}{e['case']:<10}{e['failures']:>5}{e['watertight_share']:>11.0%}"
            f"{e['cd_points_x1e3']:>8.2f}{e['cd_true_x1e3']:>9.3f}{e['cd_true_median_x1e3']:>8.3f}"
            f"{e['cd_true_max_x1e3']:>8.2f}{e['triangles']:>10.0f}{e['seconds']:>8.2f}"
        )
    print(
        "cd_pts: Chamfer mesh samples <-> input points; cd_true: mesh surface <-> true outer surface (exact\n"
        "point-to-triangle distances, mean / median / max over chairs); both squared L2, sum of means, x 1e3.\n"
        "seconds: building the mesh (normal estimation and orientation included), mean per chair."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=None, help="number of procedural chairs (default 12)")
    parser.add_argument("--points", type=int, default=2048, help="points per chair (P)")
    parser.add_argument("--seed", type=int, default=0, help="chair i is generate_chair(seed + i)")
    parser.add_argument("--methods", nargs="+", choices=MESHERS, default=list(MESHERS))
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--orientation", choices=ORIENTATIONS, default=MeshingConfig.orientation)
    parser.add_argument("--depth", type=int, default=MeshingConfig.poisson_depth, help="Poisson octree depth")
    parser.add_argument(
        "--density-quantile", type=float, default=MeshingConfig.density_quantile, help="Poisson density trimming"
    )
    parser.add_argument(
        "--normal-neighbors", type=int, default=MeshingConfig.normal_neighbors, help="k of the PCA normal estimate"
    )
    parser.add_argument("--samples", type=int, default=None, help="surface samples for cd_true (default 20000)")
    parser.add_argument("--quick", action="store_true", help="3 chairs, 5000 samples")
    parser.add_argument("--json", type=Path, default=None, help="write the per-chair rows and the summary here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    parser.add_argument("--figure", type=Path, default=None, help="also render a comparison PNG here")
    parser.add_argument(
        "--figure-chairs",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1, 3, 7, 9],
        help="comma-separated chair seeds of the figure's rows",
    )
    args = parser.parse_args(argv)
    if args.count is None:
        args.count = 3 if args.quick else 12
    if args.samples is None:
        args.samples = 5000 if args.quick else 20_000
    if args.count < 1 or args.points < 10 or args.samples < 1:
        parser.error("--count and --samples must be >= 1 and --points >= 10")
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f"{args.json} exists; pass --force to overwrite it")
    logging.basicConfig(level=logging.WARNING)

    results = run(args)
    print_table(results["summary"], args)
    print("\nNormal orientation alone: share of outer-surface points whose sign agrees with the true normal")
    print(f"{'orientation':<15}{'normals':<11}{'mean':>7}{'min':>7}")
    for e in results["orientation"]:
        print(f"{e['orientation']:<15}{e['case']:<11}{e['agreement_mean']:>7.1%}{e['agreement_min']:>7.1%}")
    if args.json is not None:
        columns = ["method", "case", "shapes", "failures", "watertight_share", "cd_points_x1e3", "cd_true_x1e3",
                   "cd_true_median_x1e3", "triangles", "seconds"]  # fmt: skip
        write_result(args.json, "meshing", results, args, table=results["summary"], columns=columns)
        print(f"wrote {args.json}")
    if args.figure is not None:
        print(f"wrote {render_figure(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
