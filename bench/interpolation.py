"""Class consistency of latent interpolations: do in-between shapes of two same-class shapes stay in the class?

For random pairs of test-split shapes of one class, decode ``--steps`` codes along the path, re-encode each
decoded cloud and classify it by majority vote of its k nearest codes in the store (the training split only,
so test shapes never vote for themselves). Reports the share of steps classified as the pair's class, per class
and overall, for linear and spherical interpolation.

``--data`` defaults to the dataset the model was trained on (recorded in its checkpoint); ``--quick`` draws
12 pairs instead of 60.

Example::

    .venv/bin/python bench/interpolation.py --model runs/demo --data runs/demo/data --pairs 60
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import write_result  # bench/common.py

from shapelatent.data.format import ShapeDataset
from shapelatent.latent.decode import decode_codes
from shapelatent.latent.encode import codes_for_points
from shapelatent.latent.interpolate import interpolate_codes
from shapelatent.latent.retrieval import knn_classify
from shapelatent.models.load import load_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="run folder of a trained model (e.g. runs/demo)")
    ap.add_argument("--data", type=Path, help="dataset folder (default: the one the model was trained on)")
    ap.add_argument("--pairs", type=int, default=None, help="random same-class test pairs (default 60)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="12 pairs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.pairs is None:
        args.pairs = 12 if args.quick else 60

    loaded = load_model(args.model)
    if args.data is None:
        recorded = (loaded.config.get("data") or {}).get("path")
        if not recorded:
            ap.error(f"{args.model}: the checkpoint records no dataset path; pass --data DATASET")
        args.data = Path(recorded)
    ds = ShapeDataset(args.data)
    train_idx, test_idx = ds.indices("train"), ds.indices("test")
    train_codes = codes_for_points(loaded.model, np.asarray(ds.points[np.sort(train_idx)]))
    train_classes = [ds.meta[i]["class"] for i in np.sort(train_idx)]
    by_class = defaultdict(list)
    for i in test_idx:
        by_class[ds.meta[i]["class"]].append(int(i))
    classes = sorted(c for c, v in by_class.items() if len(v) >= 2)
    rng = np.random.default_rng(args.seed)
    result: dict = {"pairs": args.pairs, "steps": args.steps, "k": args.k, "methods": {}}
    for method in ("linear", "slerp"):
        hits = defaultdict(list)
        rng = np.random.default_rng(args.seed)
        for _ in range(args.pairs):
            c = classes[rng.integers(len(classes))]
            a, b = rng.choice(by_class[c], 2, replace=False)
            ends = codes_for_points(loaded.model, np.asarray(ds.points[[a, b]]))
            path = interpolate_codes(ends[0], ends[1], args.steps, method)
            with torch.no_grad():
                points, _ = decode_codes(loaded, path)
            pred = knn_classify(train_codes, train_classes, codes_for_points(loaded.model, points), k=args.k)
            hits[c].extend(p == c for p in pred[1:-1])  # interior steps only
        per_class = {c: round(float(np.mean(v)), 3) for c, v in sorted(hits.items())}
        overall = float(np.mean([x for v in hits.values() for x in v]))
        result["methods"][method] = {"overall": round(overall, 3), "per_class": per_class}
        print(f"{method:7s} interior steps classified as the endpoints' class: {overall:.1%}  {per_class}")
    if args.json:
        table = [
            {"method": m, "pairs": args.pairs, "steps": args.steps, "k": args.k, "in-class share": r["overall"]}
            for m, r in result["methods"].items()
        ]
        write_result(args.json, "interpolation", result, args, table=table)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
