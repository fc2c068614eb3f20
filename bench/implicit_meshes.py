"""Implicit head vs Poisson on the same held-out shapes, against the true meshes (issue 12's side-by-side).

For each held-out shape of a dataset: the implicit mesh of its code, Poisson on its decoded points and Poisson on its
true stored points (an upper bound), each scored against the true source mesh with
``shapelatent.evaluate.meshes`` (F-score at 1%/2% of the reference bounding-box diagonal, Chamfer-L1, normal
consistency, IoU where the reference is closed, watertight share, connected components, seconds per mesh).

    python bench/implicit_meshes.py --model runs/demo/head --data runs/demo/data --split test --max-shapes 40
    python bench/implicit_meshes.py --model RUN --data SH3D --archive sh3d/usr/share/sweethome3d/furniture \\
        --classes chair,armchair_sofa,table

Writes JSON (``--json``) with the machine info, and prints a Markdown table per class group.
"""

from __future__ import annotations

import argparse
import sys
import time

from common import add_held_out_args, held_out_indices, write_result  # bench/common.py

from shapelatent.data.format import ShapeDataset
from shapelatent.evaluate.meshes import MESH_EVAL_MESHERS, mesh_quality, summarize_mesh_quality
from shapelatent.models.load import load_model

_LABELS = {"implicit": "implicit head", "poisson": "Poisson (decoded points)", "poisson_true": "Poisson (true points)"}


def _table(summary: dict) -> str:
    keys = ["fscore@1%", "fscore@2%", "chamfer_l1", "normal_consistency", "iou"]
    lines = []
    for group, per in summary.items():
        lines += [f"\n**{group}**\n", "| mesher | n | F@1% | F@2% | CD-L1 | NC | IoU | watertight | 1 comp. | s/mesh |"]
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m in MESH_EVAL_MESHERS:
            if m not in per:
                continue
            r = per[m]
            vals = ["—" if r[k] is None else f"{r[k]:.3f}" for k in keys]
            wt = "—" if r["watertight_share"] is None else f"{r['watertight_share']:.0%}"
            oc = "—" if r["one_component_share"] is None else f"{r['one_component_share']:.0%}"
            sec = "—" if r["seconds"] is None else f"{r['seconds']:.2f}"
            lines.append(f"| {_LABELS[m]} | {r['n']} | " + " | ".join(vals) + f" | {wt} | {oc} | {sec} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_held_out_args(ap, max_shapes=40)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--points", type=int, default=30_000, help="surface samples per mesh for the metrics")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the result here")
    ap.add_argument("--quick", action="store_true", help="at most 6 shapes, 64^3")
    ap.add_argument("--refine", type=int, default=0, help="refine each code for N steps first (test-time refinement)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.quick:
        args.max_shapes, args.resolution, args.points = min(args.max_shapes, 6), 64, 10_000
    ds = ShapeDataset(args.data)
    idx = held_out_indices(ds, args.split, args.classes, args.max_shapes)
    model = load_model(args.model).model
    t0 = time.perf_counter()
    rows = mesh_quality(
        model,
        args.data,
        idx,
        archives=args.archive,
        resolution=args.resolution,
        n_points=args.points,
        progress=lambda d, n: print(f"\r{d}/{n} shapes", end="", file=sys.stderr),
        refine=args.refine,
    )
    print(file=sys.stderr)
    summary = summarize_mesh_quality(rows, by_class=True)
    print(_table(summary))
    results = {"summary": summary, "per_shape": rows, "seconds": round(time.perf_counter() - t0, 1)}
    write_result(args.json, "implicit_meshes", results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
