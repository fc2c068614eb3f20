"""Benchmark the occupancy-head architectures on a CPU budget: which learns most in the same compute.

Protocol (head-only training, as ``shapelatent train-implicit`` does it):

* **Data**: ``--chairs`` procedural chairs (seed 0, split 0.8/0.1/0.1) sampled with ``--points`` points each and
  occupancy samples (``add_occupancy``: Q = ``--queries`` per shape, half uniform in [-1.1, 1.1]^3, half near the
  surface, exact winding-number labels of each chair's union mesh), cached under ``--cache``; or ``--data``, any
  dataset with occupancy samples.
* **Codes**: the frozen encoder of ``--model`` (default the shipped ``furniture`` model) on the first
  ``--encode-points`` (2048) points of each shape, in eval mode, computed once.
* **Training**: each variant from the same seed, Adam (lr ``--lr``), B = ``--batch`` train shapes per step and
  T = ``--train-queries`` queries per shape (half uniform, half near the surface), BCE on logits, until the
  process has used ``--cpu-seconds`` of CPU time (``time.process_time``: all threads; on a shared machine this is
  fairer than wall time, which is reported too).
* **Scores** on the val + test shapes: ``IoU``: Occupancy Networks' IoU of (logit > 0) against the stored labels
  over the uniform queries, mean over shapes; ``IoU near``: the same over the near-surface queries (where thin
  legs and slats live); ``F@1%``, ``F@2%``: F-score (Tatarchenko et al. 2019) between 20 000 points sampled on the
  mesh extracted at 64^3 (``extract_mesh``, MISE from 16^3) and the shape's stored ``--points`` surface points, tau
  a fraction of their bounding-box diagonal, mean over ``--fscore-shapes`` shapes (an empty mesh scores 0).
* **Speed**: ``fwd ms``: one forward of B = 32 shapes x T = 2048 queries in eval mode without gradient, median of
  3 after a warm-up; ``step ms``: median training step (draw + forward + backward + Adam).

``--joint W [W ...]`` instead measures the weight w of joint training (``shapelatent train --implicit``): for each
w, and once without a head, the default autoencoder with the ``--joint-head`` head is trained from scratch for
``--joint-epochs`` epochs on the chairs sampled at 2048 points (B = 32, T = ``--train-queries``, seed 0), and the
table gives the validation Chamfer (squared L2, as ``train``) and IoU of the last epoch, and the time.

Variants are named ``KIND-HIDDENxBLOCKS[-fBANDS]`` (e.g. ``cbn-256x5`` is Occupancy Networks' DecoderCBatchNorm,
``concat-256x4`` an IM-NET-style MLP, ``-f4`` adds 4 Fourier bands).

Example::

    .venv/bin/python bench/implicit_head.py --threads 2 --json runs/bench/implicit_head.json

Measured (2 shared cores of an x86 VM, load 4-6, torch 2.13 CPU; 128 train / 32 eval chairs; mean over eval
shapes; ``fwd ms`` is noisy on the shared machine)::

    .venv/bin/python bench/implicit_head.py --threads 2                   # 240 CPU-s each
    variant          params   fwd ms  step ms  steps   IoU    IoU near  F@1%   F@2%
    concat-256x4     231425    786      608     504   0.256   0.206    0.062  0.158
    cbn-256x5       1385729   1668     3631      81   0       0        0      0       (ONet's size)
    film-128x4       264833    452     1238     248   0.434   0.350    0.238  0.489
    cbn-128x3        330881    497      706     275   0.393   0.366    0.208  0.520
    concat-256x4-f4  237569    472      640     484   0.493   0.405    0.262  0.538
    cbn-128x3-f4     333953    369      576     269   0.490   0.401    0.273  0.604
    film-128x4-f4    267905    468      468     343   0.416   0.349    0.205  0.456

    .venv/bin/python bench/implicit_head.py --threads 2 --cpu-seconds 900 \
        --variants cbn-128x3-f4 concat-256x4-f4 film-128x4-f4
    cbn-128x3-f4     333953    598      487    1235   0.632   0.534    0.499  0.779
    concat-256x4-f4  237569    457      265    2378   0.632   0.507    0.401  0.661
    film-128x4-f4    267905    481      274    1667   0.622   0.515    0.398  0.644

So the default head (``ImplicitConfig()``) is cbn, hidden 128, 3 blocks, 4 Fourier bands: the best F-score at
both budgets. Joint training (``--joint 0.01 0.1 1 --joint-epochs 20 --joint-head cbn-128x3-f4``): val Chamfer
0.00754 without a head; w = 0.01: 0.00757, val IoU 0.361; w = 0.1: 0.00788, 0.381; w = 1: 0.00855, 0.391; hence
``train.implicit_weight`` = 0.01.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import markdown_table, write_result  # bench/common.py

from shapelatent.data.format import ShapeDataset
from shapelatent.models.implicit import IMPLICIT_KINDS, ImplicitConfig, build_implicit, implicit_fn
from shapelatent.train.occupancy import OccupancySource, masked_bce, occupancy_iou

DEFAULT_VARIANTS = (
    "concat-256x4",
    "cbn-256x5",
    "film-128x4",
    "cbn-128x3",
    "concat-256x4-f4",
    "cbn-128x3-f4",
    "film-128x4-f4",
)
COLUMNS = (
    "variant", "params", "fwd ms", "step ms", "steps", "cpu s", "wall s", "IoU", "IoU near", "F@1%", "F@2%",
)  # fmt: skip


def parse_variant(name: str) -> ImplicitConfig:
    """``KIND-HxB[-fF]`` -> ImplicitConfig."""
    parts = name.split("-")
    try:
        kind, size = parts[0], parts[1]
        hidden, blocks = (int(v) for v in size.split("x"))
        fourier = int(parts[2][1:]) if len(parts) > 2 and parts[2].startswith("f") else 0
        if len(parts) > 3 or (len(parts) == 3 and not parts[2].startswith("f")):
            raise ValueError(name)
    except (IndexError, ValueError):
        raise ValueError(f"variant {name!r}: expected KIND-HIDDENxBLOCKS[-fBANDS], KIND in {IMPLICIT_KINDS}") from None
    return ImplicitConfig(kind=kind, hidden=hidden, blocks=blocks, fourier=fourier)


def dataset(args: argparse.Namespace, log) -> Path:
    """The bench dataset: ``--data``, or procedural chairs with occupancy samples (built once, cached)."""
    from shapelatent.data.build import SamplingConfig
    from shapelatent.data.occupancy import has_occupancy
    from shapelatent.data.occupancy_build import add_occupancy
    from shapelatent.data.sources.procedural import build_procedural

    if args.data is not None:
        return args.data
    root = args.cache / f"chairs{args.chairs}_p{args.points}_q{args.queries}"
    if not has_occupancy(root):
        t0 = time.perf_counter()
        build_procedural(root, args.chairs, sampling=SamplingConfig(num_points=args.points), seed=0, force=True)
        report = add_occupancy(root, queries=args.queries, seed=0, force=True)
        log(f"built {root}: {report.valid}/{report.built} shapes with occupancy in {time.perf_counter() - t0:.1f} s")
    return root


@torch.no_grad()
def encode(model, ds: ShapeDataset, points: int) -> torch.Tensor:
    """(N, Z) codes of every shape from its first ``points`` points."""
    model.eval()
    out = [
        model.encode(torch.from_numpy(np.ascontiguousarray(ds.points[s : s + 64, :points], dtype=np.float32)))
        for s in range(0, len(ds), 64)
    ]
    return torch.cat(out)


def forward_ms(head: torch.nn.Module, latent: int) -> float:
    """Median ms of one eval forward, B = 32 shapes x T = 2048 queries, no gradient."""
    gen = torch.Generator().manual_seed(0)
    z, x = torch.randn(32, latent, generator=gen), torch.rand(32, 2048, 3, generator=gen) * 2.2 - 1.1
    head.eval()
    times = []
    with torch.no_grad():
        for i in range(4):
            t0 = time.perf_counter()
            head(z, x)
            if i:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def fscores(head, codes, ds: ShapeDataset, indices: np.ndarray, taus=(0.01, 0.02)) -> dict[float, float]:
    """Mean F-score per tau between meshes extracted from the head and the stored surface points."""
    import trimesh

    from shapelatent.meshing.implicit import extract_mesh
    from shapelatent.metrics.mesh import fscore

    out: dict[float, list[float]] = {t: [] for t in taus}
    for j, i in enumerate(indices):
        ref = np.asarray(ds.points[i], dtype=np.float64)
        diag = float(np.linalg.norm(ref.max(0) - ref.min(0)))
        mesh = extract_mesh(implicit_fn(head, codes[j]), 64, initial_resolution=16)
        if len(mesh.faces) == 0:
            for t in taus:
                out[t].append(0.0)
            continue
        pred = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).sample(20000, seed=0)
        for t in taus:
            out[t].append(fscore(np.asarray(pred), ref, t * diag).fscore)
    return {t: float(np.mean(v)) for t, v in out.items()}


def train_variant(name: str, args, codes, source: OccupancySource, train_idx, eval_idx, ds, log) -> dict[str, Any]:
    cfg = parse_variant(name)
    torch.manual_seed(args.seed)
    head = build_implicit(codes.shape[1], cfg)
    fwd = forward_ms(head, codes.shape[1])
    torch.manual_seed(args.seed)
    head = build_implicit(codes.shape[1], cfg)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    step, step_times, epoch = 0, [], 0
    while time.process_time() - cpu0 < args.cpu_seconds:
        order = np.random.default_rng([args.seed, epoch]).permutation(train_idx)
        for s in range(0, len(order) - args.batch + 1, args.batch):
            t0 = time.perf_counter()
            head.train()
            batch = order[s : s + args.batch]
            occ = source.draw(batch, args.train_queries, np.random.default_rng([args.seed, epoch, 2, s]))
            loss = masked_bce(head(codes[batch], torch.from_numpy(occ.queries)), torch.from_numpy(occ.labels),
                              torch.from_numpy(occ.valid))  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            step_times.append(time.perf_counter() - t0)
            if time.process_time() - cpu0 >= args.cpu_seconds:
                break
        epoch += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    iou = occupancy_iou(head, codes[eval_idx], source, eval_idx)
    near = near_iou(head, codes, source, eval_idx)
    fs = fscores(head, codes[eval_idx[: args.fscore_shapes]], ds, eval_idx[: args.fscore_shapes])
    row = {
        "variant": name,
        "params": sum(p.numel() for p in head.parameters()),
        "fwd ms": round(fwd, 1),
        "step ms": round(1000 * statistics.median(step_times), 1),
        "steps": step,
        "cpu s": round(cpu, 1),
        "wall s": round(wall, 1),
        "IoU": round(float(iou.mean()), 4),
        "IoU near": round(near, 4),
        "F@1%": round(fs[0.01], 4),
        "F@2%": round(fs[0.02], 4),
        "final train BCE": float(loss.item()),
        "config": cfg.to_dict(),
    }
    log(" ".join(f"{k}={row[k]}" for k in COLUMNS))
    return row


@torch.no_grad()
def near_iou(head, codes, source: OccupancySource, indices: np.ndarray) -> float:
    """IoU of (logit > 0) vs labels over the near-surface queries, mean over valid shapes."""
    head.eval()
    out = []
    for i in indices:
        if not source.valid[i]:
            continue
        pts, lab = source.read(np.array([i]))
        u = source.uniform
        pred = (head(codes[i : i + 1], torch.from_numpy(pts[:, u:])) > 0).numpy()[0]
        true = lab[0, u:]
        union = (pred | true).sum()
        out.append((pred & true).sum() / union if union else 1.0)
    return float(np.mean(out))


def run_joint(args: argparse.Namespace, log=print) -> dict[str, Any]:
    from shapelatent.models.pointnet import ModelConfig
    from shapelatent.train.config import RunConfig, TrainConfig
    from shapelatent.train.loop import train

    args.points = 2048
    root = dataset(args, log)
    rows = []
    for w in [None, *args.joint]:
        head = parse_variant(args.joint_head) if w is not None else None
        tc = TrainConfig(epochs=args.joint_epochs, batch_size=32, seed=args.seed, device="cpu", threads=args.threads,
                         implicit_weight=w or 0.0, implicit_queries=args.train_queries)  # fmt: skip
        t0 = time.perf_counter()
        res = train(root, args.cache / f"joint_{w}", RunConfig(model=ModelConfig(implicit=head), train=tc), force=True)
        last = res.history[-1]
        row = {
            "w": "no head" if w is None else w,
            "head": args.joint_head if w is not None else "-",
            "epochs": last["epoch"],
            "val Chamfer": round(last["val_chamfer"], 5),
            "val IoU": None if w is None else round(last["val_iou"], 4),
            "train BCE": None if w is None else round(last["train_bce"], 4),
            "wall s": round(time.perf_counter() - t0, 1),
        }
        log(" ".join(f"{k}={v}" for k, v in row.items()))
        rows.append(row)
    return {"dataset": str(root), "rows": rows}


def run(args: argparse.Namespace, log=print) -> dict[str, Any]:
    from shapelatent.models.load import load_model

    root = dataset(args, log)
    ds = ShapeDataset(root)
    source = OccupancySource(root, len(ds))
    model = load_model(args.model).model
    codes = encode(model, ds, args.encode_points)
    train_idx = ds.indices("train")
    eval_idx = np.concatenate([ds.indices("val"), ds.indices("test")])
    eval_idx = eval_idx[source.valid[eval_idx]]
    log(f"{root}: {len(train_idx)} train, {len(eval_idx)} eval shapes; codes from {args.model}")
    rows = [train_variant(v, args, codes, source, train_idx, eval_idx, ds, log) for v in args.variants]
    return {"dataset": str(root), "train_shapes": len(train_idx), "eval_shapes": len(eval_idx), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="KIND-HxB[-fF] names")
    parser.add_argument("--data", type=Path, default=None, help="a dataset with occupancy samples (default: chairs)")
    parser.add_argument("--chairs", type=int, default=160, help="procedural chairs to build (default 160)")
    parser.add_argument("--points", type=int, default=8192, help="surface points stored per chair (F-score ref)")
    parser.add_argument("--encode-points", type=int, default=2048, help="points the encoder sees (default 2048)")
    parser.add_argument("--queries", type=int, default=8192, help="occupancy queries stored per shape (Q)")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench/implicit_head_data"), help="dataset cache")
    parser.add_argument("--model", default="furniture", help="the frozen encoder (run folder or shipped name)")
    parser.add_argument("--cpu-seconds", type=float, default=None, help="CPU-time budget per variant (240)")
    parser.add_argument("--batch", type=int, default=16, help="B, shapes per step (default 16)")
    parser.add_argument("--train-queries", type=int, default=1024, help="T, queries per shape per step")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    parser.add_argument("--fscore-shapes", type=int, default=8, help="eval shapes meshed for the F-score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--joint", type=float, nargs="+", default=None, help="measure these joint weights w instead")
    parser.add_argument("--joint-head", default="cbn-128x3-f4", help="the head of --joint runs")
    parser.add_argument("--joint-epochs", type=int, default=30, help="epochs of each --joint run")
    parser.add_argument("--quick", action="store_true", help="40 chairs, 3 variants, 20 CPU-s each")
    parser.add_argument("--json", type=Path, default=None, help="write the results and machine here")
    args = parser.parse_args(argv)
    if args.quick:
        args.chairs, args.fscore_shapes = 40, 2
        if args.variants == list(DEFAULT_VARIANTS):
            args.variants = ["concat-256x4", "cbn-128x3", "film-128x4"]
    if args.cpu_seconds is None:
        args.cpu_seconds = 20.0 if args.quick else 240.0
    try:
        for v in args.variants:
            parse_variant(v)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.joint is not None:
        result = run_joint(args)
        print(f"\nJoint training, {args.joint_epochs} epochs from scratch ({result['dataset']})")
        print(markdown_table(result["rows"], list(result["rows"][0])))
        if args.json is not None:
            write_result(args.json, "implicit_head_joint", result, args, table=result["rows"])
        return 0
    result = run(args)
    print(f"\nOccupancy heads after {args.cpu_seconds:g} CPU-s of head-only training each ({result['dataset']})")
    print(markdown_table(result["rows"], COLUMNS))
    if args.json is not None:
        write_result(args.json, "implicit_head", result, args, table=result["rows"], columns=COLUMNS)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
