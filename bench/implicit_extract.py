"""Benchmark mesh extraction from an implicit function: MISE + marching cubes at 128^3 and 256^3.

The function is an analytic shape plus the cost of a real occupancy decoder: ``f(x) = shape(x) + 0 * mlp([x, z])``
where ``mlp`` is a randomly initialised Occupancy-Networks-sized decoder (input x concatenated with a code z of
size ``--latent`` 128, ``--layers`` 5 hidden layers of ``--width`` 256 with ReLU, one logit). The product with 0
keeps the shape exact (so the result can be checked against the dense grid of the analytic function alone) while
every query pays the decoder's full forward pass. Shapes, in the normalised frame (unit sphere):

* ``sphere``: radius 0.7 (a large smooth surface: the most refined cells per shape);
* ``chair``: a union of boxes: seat 0.9 x 0.06 x 0.9, back 0.9 x 0.84 x 0.06, four legs 0.05 x 0.9 x 0.05 (thinner
  than the 0.069 coarse cell of ``initial_resolution`` 32, and off the coarse grid lines), as logits
  ``-sdf / 0.01``.

Each configuration (``R`` final cells per axis, ``R0`` coarse cells, ``trace`` on or off; ``R0 == R`` is the dense
grid) runs ``extract_mesh`` with mesh normals, batches of ``--batch-points``; times are medians of ``--repeats``
(after one warm-up call per shape). Columns: evaluations of f and their share of the (R+1)^3 grid; seconds in f
(the decoder), in the rest (grid bookkeeping, marching cubes, normals), in all; faces; watertight (trimesh);
connected components; ``wrong``: grid points whose inside/outside differs from the dense grid of the same R
(the analytic function alone, so the dense oracle is cheap). A ``gradient`` row adds autograd normals. Marching
cubes alone (scikit-image Lewiner, which the library uses, against PyMCubes when installed) is timed on the final
grids.

``--quick``: R = 128 only, no dense row with the decoder cost, one repeat.

Example::

    .venv/bin/python bench/implicit_extract.py --json runs/bench/implicit_extract.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result  # bench/common.py

from shapelatent.meshing.implicit import DEFAULT_BATCH_POINTS, evaluate_grid, extract_mesh, marching_cubes_grid

CHAIR_PARTS = (
    ((0.0, 0.0, 0.0), (0.45, 0.03, 0.45)),  # seat
    ((0.0, 0.45, -0.42), (0.45, 0.42, 0.03)),  # back
    ((-0.378, -0.45, -0.378), (0.025, 0.45, 0.025)),  # legs: 0.05 wide, off the coarse grid lines
    ((0.378, -0.45, -0.378), (0.025, 0.45, 0.025)),
    ((-0.378, -0.45, 0.378), (0.025, 0.45, 0.025)),
    ((0.378, -0.45, 0.378), (0.025, 0.45, 0.025)),
)


def chair(x: torch.Tensor) -> torch.Tensor:
    centres = torch.tensor([c for c, _ in CHAIR_PARTS], dtype=x.dtype)  # (6, 3)
    halves = torch.tensor([h for _, h in CHAIR_PARTS], dtype=x.dtype)
    d = (x[:, None, :] - centres).abs() - halves  # (M, 6, 3)
    sdf = d.clamp(min=0).norm(dim=2) + d.max(dim=2).values.clamp(max=0)  # (M, 6)
    return -sdf.min(dim=1).values / 0.01


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (0.7 - x.norm(dim=1)) / 0.01


SHAPES = {"sphere": sphere, "chair": chair}


def decoder(latent: int, width: int, layers: int, seed: int) -> torch.nn.Module:
    """An ONet-sized MLP on [x, z]: (M, 3 + latent) -> (M, 1), random weights."""
    torch.manual_seed(seed)
    dims = [3 + latent] + [width] * layers
    modules: list[torch.nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        modules += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    modules.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*modules).eval()


def with_decoder_cost(shape, mlp: torch.nn.Module, code: torch.Tensor):
    def fn(x: torch.Tensor) -> torch.Tensor:
        cost = mlp(torch.cat([x, code.expand(len(x), -1)], dim=1))[:, 0]
        return shape(x) + 0.0 * cost

    return fn


def configs(args: argparse.Namespace) -> list[tuple[int, int, bool, str]]:
    """(R, R0, trace, normals) per row."""
    rows = []
    for r in args.resolutions:
        if r == 128 and not args.quick:
            rows.append((r, r, True, "mesh"))  # the dense grid
        rows += [(r, 32, False, "mesh"), (r, 32, True, "mesh"), (r, 64, True, "mesh")]
        if r == 128:
            rows.append((r, 32, True, "gradient"))
    return rows


def time_marching_cubes(values: np.ndarray, repeats: int) -> dict:
    out = {}
    for _ in range(2):  # warm-up, then timed
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            marching_cubes_grid(values)
            times.append(time.perf_counter() - t)
    out["skimage_s"] = statistics.median(times)
    try:
        import mcubes
    except ImportError:
        out["pymcubes_s"] = None
        return out
    padded = np.pad(values, 1, constant_values=-1e6)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        mcubes.marching_cubes(padded, 0.0)
        times.append(time.perf_counter() - t)
    out["pymcubes_s"] = statistics.median(times[1:])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["chair", "sphere"])
    parser.add_argument("--latent", type=int, default=128, help="code size Z concatenated to x")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=5, help="hidden layers of the decoder")
    parser.add_argument("--batch-points", type=int, default=None, help="default: the library's (8192 on the CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="R = 128 only, no dense row, one repeat")
    parser.add_argument("--json", type=Path, default=None, help="write the results and machine here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolutions, args.repeats = [128], 1
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f"{args.json} exists; pass --force to overwrite it")
    torch.set_num_threads(args.threads)
    mlp = decoder(args.latent, args.width, args.layers, args.seed)
    code = torch.randn(1, args.latent, generator=torch.Generator().manual_seed(args.seed))

    # the decoder's throughput on its own: 131072 points in batches, after one warm-up batch
    batch = args.batch_points or DEFAULT_BATCH_POINTS["cpu"]
    x = torch.rand(131072, 3)
    with torch.no_grad():
        mlp(torch.cat([x[:batch], code.expand(len(x[:batch]), -1)], 1))
        t = time.perf_counter()
        for chunk in x.split(batch):
            mlp(torch.cat([chunk, code.expand(len(chunk), -1)], 1))
        points_per_s = len(x) / (time.perf_counter() - t)
    print(
        f"decoder: 3+{args.latent} -> {args.width} x {args.layers} -> 1, {points_per_s:,.0f} points/s "
        f"on {args.threads} threads (batch {batch})"
    )

    header = (
        f"{'shape':7} {'R':>4} {'R0':>4} {'trace':>5} {'normals':>8} {'evals':>9} {'share':>6} {'fn s':>6} "
        f"{'rest s':>6} {'total s':>7} {'faces':>7} {'wt':>3} {'cc':>3} {'wrong':>6}"
    )
    print(header)
    print("-" * len(header))
    rows, mc_rows = [], []
    for name in args.shapes:
        shape = SHAPES[name]
        fn = with_decoder_cost(shape, mlp, code)
        extract_mesh(fn, 64, initial_resolution=16)  # warm-up
        dense_occupancy = {r: evaluate_grid(shape, r, initial_resolution=r).values > 0 for r in args.resolutions}
        for r, r0, trace, normals in configs(args):
            results = [
                extract_mesh(fn, r, initial_resolution=r0, trace=trace, normals=normals, batch_points=args.batch_points)
                for _ in range(args.repeats)
            ]
            best = results[0]
            timing = {k: statistics.median(res.timings[k] for res in results) for k in best.timings}
            mesh = best.to_trimesh()
            grid = evaluate_grid(shape, r, initial_resolution=r0, trace=trace)
            row = {
                "shape": name,
                "R": r,
                "R0": r0,
                "trace": trace,
                "normals": normals,
                "evaluations": best.evaluations,
                "share": best.evaluations / (r + 1) ** 3,
                "fn_s": timing["fn"],
                "rest_s": timing["total"] - timing["fn"],
                "total_s": timing["total"],
                "marching_cubes_s": timing["marching_cubes"],
                "faces": len(best.faces),
                "watertight": bool(mesh.is_watertight),
                "components": len(mesh.split(only_watertight=False)) if len(best.faces) else 0,
                "wrong": int(((grid.values > 0) != dense_occupancy[r]).sum()),
                "timings": timing,
            }
            rows.append(row)
            print(
                f"{name:7} {r:>4} {r0:>4} {str(trace):>5} {normals:>8} {row['evaluations']:>9,} "
                f"{row['share']:>6.3f} {row['fn_s']:>6.2f} {row['rest_s']:>6.2f} {row['total_s']:>7.2f} "
                f"{row['faces']:>7,} {'yes' if row['watertight'] else 'no':>3} {row['components']:>3} "
                f"{row['wrong']:>6}",
                flush=True,
            )
        for r in args.resolutions:
            values = evaluate_grid(shape, r, initial_resolution=32).values
            mc_rows.append({"shape": name, "R": r, **time_marching_cubes(values, max(args.repeats, 3))})
    print("\nmarching cubes alone (median seconds):")
    for m in mc_rows:
        pymc = f"{m['pymcubes_s']:.3f}" if m["pymcubes_s"] is not None else "not installed"
        print(f"  {m['shape']:7} R={m['R']:>4}: scikit-image {m['skimage_s']:.3f}, PyMCubes {pymc}")
    print(
        "share: evaluations / (R+1)^3; rest: everything but f; wt: watertight; cc: connected components; "
        "wrong: grid points whose inside/outside differs from the dense grid"
    )

    if args.json is not None:
        table = [
            {
                "shape": r["shape"],
                "R": r["R"],
                "R0": r["R0"],
                "trace": r["trace"],
                "normals": r["normals"],
                "evaluations": r["evaluations"],
                "fn s": r["fn_s"],
                "rest s": r["rest_s"],
                "total s": r["total_s"],
                "watertight": r["watertight"],
                "wrong": r["wrong"],
            }
            for r in rows
        ]
        payload = {
            "decoder": {
                "latent": args.latent,
                "width": args.width,
                "layers": args.layers,
                "points_per_s": points_per_s,
            },
            "rows": rows,
            "marching_cubes": mc_rows,
        }
        write_result(args.json, "implicit_extract", payload, args, table=table)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
