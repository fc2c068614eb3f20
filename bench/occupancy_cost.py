"""Cost per shape of occupancy supervision (queries + labels), one process.

Usage: python bench/occupancy_cost.py [--queries 8192] [--repeat 3]

Times :func:`shapelatent.data.occupancy_labels.shape_occupancy` (mesh -> normalised frame -> 8192 queries -> labels,
``auto`` method) on procedural chairs (union mesh generation timed separately) and on the three Sweet Home 3D
fixtures in tests/fixtures/meshes; prints one JSON line per shape (best of --repeat).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from shapelatent.data.normalize import Normalization
from shapelatent.data.occupancy_labels import shape_occupancy
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sampling import sample_surface
from shapelatent.io.meshes import read_mesh

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "meshes"


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queries", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    shapes = []
    for family in ("four_legged", "office", "sofa"):
        t_gen, chair = _best(lambda f=family: generate_chair(7, f), args.repeat)
        shapes.append((f"procedural {family}", chair.mesh, t_gen))
    for obj in sorted(FIXTURES.glob("*/model.obj")):
        t_read, mesh = _best(lambda o=obj: read_mesh(o), args.repeat)
        shapes.append((f"sweethome3d {obj.parent.name}", mesh, t_read))
    for name, mesh, t_mesh in shapes:
        norm = Normalization().apply(sample_surface(mesh, 2048, seed=0).points)
        t, occ = _best(
            lambda m=mesh, n=norm: shape_occupancy(
                m.vertices, m.faces, center=n.center, scale=n.scale, queries=args.queries, seed=0
            ),
            args.repeat,
        )
        print(
            json.dumps(
                {
                    "shape": name,
                    "faces": len(mesh.faces),
                    "mesh_s": round(t_mesh, 4),
                    "occupancy_s": round(t, 4),
                    "method": occ.method,
                    "inside_fraction": round(float(np.mean(occ.labels)), 3),
                }
            )
        )


if __name__ == "__main__":
    main()
