"""Test-time code refinement: Chamfer gain and seconds per shape on a dataset split, against the nearest-training-shape
oracle.

Protocol: the split's clouds (``--split``, default ``test``; the dataset's stored points, sampled and normalised as the
model's training data) are encoded, then each code is refined with :func:`shapelatent.latent.refine.refine_codes`
(Adam on the code, decoder frozen, best Chamfer kept) for every setting in ``--steps`` x ``--priors`` at ``--lr``,
all shapes of the split in batches of ``--batch-size``. Per setting: the mean Chamfer (squared distances, mean per
direction, summed) of the encoder's codes and of the refined codes to the input clouds, their ratio, the wall
seconds per shape after a warm-up call (the machine's load average is in the JSON: timings on a shared machine are
upper bounds), the CPU seconds per shape (all threads), the mean L2 distance the codes moved, and the share of
shapes whose nearest training code (the encoder's codes of the ``train`` split, L2) has the shape's class, before
and after (what a store of encoder codes makes of a refined query). The oracle is
:func:`shapelatent.evaluate.baselines.nearest_by_chamfer`: the training cloud nearest to each shape by Chamfer (it
sees the query; the issue's goal is refined Chamfer <= 0.5x its mean).

``--model`` defaults to the shipped ``furniture``; ``--data`` to the dataset the model was trained on (recorded in
its checkpoint). ``--quick``: the first 8 shapes of the split, 100 steps, no prior.

Example::

    .venv/bin/python bench/refine.py --model furniture --data /work/sh3d/data --split test --steps 25,50,100,200 \\
        --priors 0,1e-5 --json runs/bench/refine_furniture.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import write_result  # bench/common.py

from shapelatent.data.format import ShapeDataset
from shapelatent.evaluate.baselines import nearest_by_chamfer
from shapelatent.latent.encode import codes_for_points
from shapelatent.latent.refine import DEFAULT_BATCH, DEFAULT_LR, refine_codes
from shapelatent.latent.retrieval import knn_classify
from shapelatent.models.load import load_model


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="furniture", help="run folder, checkpoint or shipped model name")
    ap.add_argument("--data", type=Path, help="dataset folder (default: the one the model was trained on)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--steps", default="100", help="comma-separated step counts, e.g. 25,50,100,200")
    ap.add_argument("--priors", default="0", help="comma-separated prior weights, e.g. 0,1e-5")
    ap.add_argument("--lr", type=float, default=DEFAULT_LR)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--no-oracle", action="store_true", help="skip the nearest-training-shape oracle")
    ap.add_argument("--quick", action="store_true", help="8 shapes, 100 steps, no prior")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.priors = "100", "0"

    loaded = load_model(args.model)
    if args.data is None:
        recorded = (loaded.config.get("data") or {}).get("path")
        if not recorded or not Path(recorded).exists():
            ap.error(f"{args.model}: the dataset it records ({recorded}) is not here; pass --data DATASET")
        args.data = Path(recorded)
    ds = ShapeDataset(args.data)
    idx = np.sort(ds.indices(args.split))
    if args.quick:
        idx = idx[:8]
    if len(idx) == 0:
        ap.error(f"{args.data}: no shapes in split {args.split!r}")
    train_idx = np.sort(ds.indices("train"))
    clouds = np.asarray(ds.points[idx], dtype=np.float32)  # (N, P, 3)
    classes = [ds.meta[i]["class"] for i in idx]
    codes = codes_for_points(loaded.model, clouds)
    train_codes = codes_for_points(loaded.model, np.asarray(ds.points[train_idx]))
    train_classes = [ds.meta[i]["class"] for i in train_idx]

    def nn_class_share(z: np.ndarray) -> float:
        pred = knn_classify(train_codes, train_classes, z, k=1)
        return float(np.mean([p == c for p, c in zip(pred, classes, strict=True)]))

    oracle = None
    if not args.no_oracle:
        near = nearest_by_chamfer(clouds, np.asarray(ds.points[train_idx], dtype=np.float32))
        oracle = float(near.chamfer.mean())
    print(
        f"{args.model} on {args.data} split {args.split}: {len(idx)} shapes, P={clouds.shape[1]}; "
        f"nearest-training-shape oracle mean Chamfer: {oracle if oracle is None else f'{oracle:.5f}'}"
    )
    t0 = time.perf_counter()
    refine_codes(loaded.model, clouds[:1], codes[:1], 1)  # first call: loads the numba Chamfer kernel
    first_call = time.perf_counter() - t0
    rows, results = [], []
    for prior in _floats(args.priors):
        for steps in (int(s) for s in _floats(args.steps)):
            cpu = time.process_time()
            res = refine_codes(loaded.model, clouds, codes, steps, lr=args.lr, prior=prior, batch_size=args.batch_size)
            cpu = (time.process_time() - cpu) / len(idx)
            s = res.summary()
            moved = float(np.linalg.norm(res.codes - codes, axis=1).mean())
            row = {
                "steps": steps,
                "lr": args.lr,
                "prior": prior,
                "shapes": len(idx),
                "cd_before": round(s["chamfer_before"], 6),
                "cd_after": round(s["chamfer_after"], 6),
                "ratio": round(s["ratio"], 4),
                "s_per_shape": round(res.seconds_per_shape, 3),
                "cpu_s_per_shape": round(cpu, 3),
                "after_vs_oracle": round(s["chamfer_after"] / oracle, 3) if oracle else None,
                "code_moved_l2": round(moved, 3),
                "nn_class_before": round(nn_class_share(codes), 3),
                "nn_class_after": round(nn_class_share(res.codes), 3),
            }
            rows.append(row)
            results.append({**row, "chamfer_before": res.chamfer_before, "chamfer_after": res.chamfer_after})
            print(
                f"steps {steps:4d} lr {args.lr:g} prior {prior:g}: Chamfer {row['cd_before']:.5f} -> "
                f"{row['cd_after']:.5f} (x{row['ratio']:.3f}; x{row['after_vs_oracle']} of the oracle), "
                f"{row['s_per_shape']:.3f} s/shape ({cpu:.3f} CPU-s), code moved {moved:.2f} (|z| ~ "
                f"{float(np.linalg.norm(codes, axis=1).mean()):.1f}), nearest-train class "
                f"{row['nn_class_before']:.0%} -> {row['nn_class_after']:.0%}",
                flush=True,
            )
    if args.json:
        out = {"model": str(args.model), "data": str(args.data), "split": args.split, "oracle_cd": oracle}
        out["first_call_seconds"] = round(first_call, 3)
        write_result(args.json, "refine", {**out, "rows": results}, args, table=rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
