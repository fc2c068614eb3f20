"""Fraction of surface samples that lie inside other parts: procedural chairs concatenated vs unioned.

Usage: python bench/procedural_union.py [--per-family 10] [--points 2048]

For each chair, points are sampled as the dataset builder does (2048 area-weighted) on the concatenation of its
parts (the generator's mesh before the union) and on the union mesh; a point "inside" is one farther than 1e-6 m
from the union's outer surface. Prints one JSON line per family and the overall figures.
"""

from __future__ import annotations

import argparse
import json
import time

import igl
import numpy as np

from shapelatent.data.procedural import FAMILIES, chair_seed
from shapelatent.data.procedural_families import BUILDERS
from shapelatent.data.procedural_parts import Builder, Sampler
from shapelatent.data.sampling import sample_surface
from shapelatent.data.union import union_mesh


def _builder(seed: int, family: str) -> Builder:
    _, params_ss = np.random.SeedSequence(seed).spawn(2)  # as generate_chair draws its parameters
    builder = Builder()
    sampler = Sampler(np.random.default_rng(params_ss))
    sampler.set("seed", seed)
    BUILDERS[family](sampler, builder)
    return builder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-family", type=int, default=10)
    ap.add_argument("--points", type=int, default=2048)
    args = ap.parse_args()
    every_before, every_after, t_union = [], [], []
    for family in FAMILIES:
        before, after = [], []
        for i in range(args.per_family):
            b = _builder(chair_seed(0, i), family)
            t0 = time.perf_counter()
            union = union_mesh(b.parts())
            t_union.append(time.perf_counter() - t0)
            v, f = np.asarray(union.vertices), np.asarray(union.faces)
            for mesh, out in ((b.mesh(), before), (union, after)):
                pts = sample_surface(mesh, args.points, seed=i).points.astype(np.float64)
                d = np.sqrt(igl.point_mesh_squared_distance(pts, v, f)[0])  # (P,)
                out.append(float((d > 1e-6).mean()))
        every_before += before
        every_after += after
        print(
            json.dumps(
                {
                    "family": family,
                    "inside_before": [round(min(before), 4), round(max(before), 4)],
                    "inside_after_max": max(after),
                }
            )
        )
    print(
        json.dumps(
            {
                "chairs": len(every_before),
                "inside_before_mean": round(float(np.mean(every_before)), 4),
                "inside_before_range": [round(min(every_before), 4), round(max(every_before), 4)],
                "inside_after_max": max(every_after),
                "union_ms_mean": round(1000 * float(np.mean(t_union)), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
