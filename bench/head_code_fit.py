"""Is the code or the head the limit of the implicit meshes? Fit the codes to the true occupancy and look.

For held-out shapes of a dataset with occupancy samples: each code (the encoder's) is optimised with the model
frozen so that the occupancy head matches the shape's stored inside/outside labels (binary cross-entropy over all Q
stored queries, Adam; DeepSDF's inference, Park et al. 2019, here started from the encoder's code). The implicit
meshes of the fitted codes and the Poisson meshes of their decoded points are then scored as
``bench/implicit_meshes.py`` does. If the fitted codes mesh much better, the code was the limit; if not, the head.

This uses the shapes' true occupancy, so it is a diagnosis, not a reconstruction method for new inputs.

    python bench/head_code_fit.py --model RUN --data SH3D --archive .../furniture \\
        --classes chair,armchair_sofa,table --steps 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import add_held_out_args, held_out_indices, write_result  # bench/common.py

from shapelatent.data.format import ShapeDataset
from shapelatent.evaluate.meshes import mesh_quality, summarize_mesh_quality
from shapelatent.latent.encode import codes_for_points
from shapelatent.models.load import load_model
from shapelatent.train.occupancy import OccupancySource


def fit_codes(model, codes: np.ndarray, queries: np.ndarray, labels: np.ndarray, steps: int, lr: float):
    """codes (M, Z), queries (M, Q, 3), labels (M, Q) bool -> fitted codes (M, Z), BCE before and after."""
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    z = torch.from_numpy(np.array(codes, dtype=np.float32)).requires_grad_(True)
    q, y = torch.from_numpy(queries), torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.Adam([z], lr=lr)

    def bce() -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(model.occupancy(z, q), y)

    with torch.no_grad():
        before = float(bce())
    for _ in range(steps):
        opt.zero_grad()
        bce().backward()
        opt.step()
    with torch.no_grad():
        after = float(bce())
    for p, f in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(f)
    return z.detach().numpy(), before, after


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_held_out_args(ap, max_shapes=12)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = ShapeDataset(args.data)
    idx = held_out_indices(ds, args.split, args.classes, args.max_shapes)
    model = load_model(args.model).model
    source = OccupancySource(ds.root, len(ds))
    start = codes_for_points(model, np.asarray(ds.points[idx], dtype=np.float32))
    queries, labels = source.read(idx)
    t0 = time.perf_counter()
    fitted, bce0, bce1 = fit_codes(model, start, queries, labels, args.steps, args.lr)
    fit_s = (time.perf_counter() - t0) / max(len(idx), 1)
    out = {"bce_before": bce0, "bce_after": bce1, "fit_seconds_per_shape": fit_s, "shapes": len(idx)}
    print(f"occupancy BCE {bce0:.3f} -> {bce1:.3f} ({fit_s:.1f} s per shape)")
    print("| codes | mesher | F@1% | F@2% | CD-L1 | 1 comp. |\n|---|---|---:|---:|---:|---:|")
    for name, codes in (("encoder", start), ("fitted to the occupancy", fitted)):
        rows = mesh_quality(model, args.data, idx, meshers=["implicit", "poisson"], archives=args.archive, codes=codes)
        summ = summarize_mesh_quality(rows)["all"]
        out[name] = summ
        for m in ("implicit", "poisson"):
            r = summ[m]
            print(
                f"| {name} | {m} | {r['fscore@1%']:.3f} | {r['fscore@2%']:.3f} | {r['chamfer_l1']:.3f} | "
                f"{r['one_component_share']:.0%} |"
            )
    write_result(args.json, "head_code_fit", out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
