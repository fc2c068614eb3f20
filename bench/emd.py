"""Benchmark the EMD: the numba auction against the exact scipy solver, time per pair and relative error.

For each cloud size P (default 512, 1024, 2048; ``--quick``: 128, 256) and each kind of cloud pair:

* ``random``: two independent uniform clouds in the unit cube;
* ``chairs``: two different procedural chairs (``shapelatent.data.procedural``), surface-sampled and normalised
  per shape (bounding-box centre, radius 0.5), as ``generation_metrics(normalize="per_shape")`` compares them;
* ``resample``: one chair sampled twice with different seeds: a small EMD, the hardest case for relative error;

it solves ``--pairs`` pairs exactly (``linear_sum_assignment``, one pair at a time) and with the auction at
its default tolerance (all pairs in one call, parallel over numba's threads), and reports per pair: exact wall
time, auction wall time (all threads) and CPU time (all threads summed), the speed-up in wall time, the
relative error ``(auction - exact) / exact`` (mean and max), the largest certified relative gap
``(auction - lower) / exact`` of the auction's dual bound, and the bids per point. The machine's load average
is recorded too: on a shared machine, CPU times are steadier than wall times.

``--pairwise N`` also times ``pairwise_emd`` on the workload of ``generation_metrics``: N generated against N
reference chairs plus both within-set matrices, ``N^2 + N(N-1)`` pairs at the largest P.

Example::

    .venv/bin/python bench/emd.py --json out/bench_emd.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

from shapelatent.data.procedural import FAMILIES, generate_chair
from shapelatent.data.sampling import sample_surface
from shapelatent.metrics.emd import DEFAULT_RTOL, emd, emd_auction
from shapelatent.metrics.generation import normalize_clouds
from shapelatent.metrics.pairwise import pairwise_emd

KINDS = ("random", "chairs", "resample")


def _chair_cloud(index: int, points: int, seed: int) -> np.ndarray:
    chair = generate_chair(1000 + index, FAMILIES[index % len(FAMILIES)])
    return sample_surface(chair.mesh, points, seed=seed).points


def make_pairs(kind: str, pairs: int, points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, P, 3) float32 x and y clouds of one kind (see the module docstring)."""
    if kind == "random":
        rng = np.random.default_rng(seed)
        return rng.random((2, pairs, points, 3), dtype=np.float32)
    if kind == "chairs":
        x = [_chair_cloud(k, points, seed) for k in range(pairs)]
        y = [_chair_cloud(k + pairs, points, seed) for k in range(pairs)]
    elif kind == "resample":
        x = [_chair_cloud(k, points, seed) for k in range(pairs)]
        y = [_chair_cloud(k, points, seed + 1) for k in range(pairs)]
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    norm = lambda clouds: normalize_clouds(np.stack(clouds), "per_shape").astype(np.float32)  # noqa: E731
    return norm(x), norm(y)


def run_case(kind: str, points: int, pairs: int, seed: int) -> dict:
    """Time and compare both methods on one kind and size."""
    x, y = make_pairs(kind, pairs, points, seed)
    start = time.perf_counter()
    exact = np.concatenate([emd(x[k], y[k]) for k in range(pairs)])
    exact_s = time.perf_counter() - start
    cpu = time.process_time()
    start = time.perf_counter()
    res = emd_auction(x, y)
    auction_s = time.perf_counter() - start
    auction_cpu_s = time.process_time() - cpu
    rel = (res.emd - exact) / exact
    return {
        "kind": kind,
        "points": points,
        "pairs": pairs,
        "emd_mean": float(exact.mean()),
        "exact_ms_per_pair": 1e3 * exact_s / pairs,
        "auction_ms_per_pair": 1e3 * auction_s / pairs,
        "auction_cpu_ms_per_pair": 1e3 * auction_cpu_s / pairs,
        "speedup": exact_s / auction_s,
        "rel_err_mean": float(rel.mean()),
        "rel_err_max": float(rel.max()),
        "certified_gap_max": float(((res.emd - res.lower) / exact).max()),
        "bids_per_point": float(res.bids.mean() / points),
        "converged": bool(res.converged.all()),
    }


def run_pairwise(count: int, points: int, seed: int) -> dict:
    """Time pairwise_emd on the generation-metrics workload: gen x ref, gen x gen, ref x ref."""
    gen = normalize_clouds(np.stack([_chair_cloud(k, points, seed) for k in range(count)]), "per_shape")
    ref = normalize_clouds(np.stack([_chair_cloud(k + count, points, seed) for k in range(count)]), "per_shape")
    cpu = time.process_time()
    start = time.perf_counter()
    pairwise_emd(gen, ref)
    pairwise_emd(gen)
    pairwise_emd(ref)
    wall = time.perf_counter() - start
    n_pairs = count * count + count * (count - 1)
    return {
        "clouds_per_set": count,
        "points": points,
        "pairs": n_pairs,
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "wall_ms_per_pair": 1e3 * wall / n_pairs,
    }


def _machine() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def _table(results: list[dict]) -> str:
    lines = [
        "| kind | P | pairs | EMD | exact ms/pair | auction ms/pair | auction CPU ms/pair | speed-up | "
        "rel. err mean | rel. err max | certified gap max | bids/P |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['kind']} | {r['points']} | {r['pairs']} | {r['emd_mean']:.4f} | {r['exact_ms_per_pair']:.0f} | "
            f"{r['auction_ms_per_pair']:.1f} | {r['auction_cpu_ms_per_pair']:.1f} | {r['speedup']:.0f}x | "
            f"{r['rel_err_mean']:.2e} | {r['rel_err_max']:.2e} | {r['certified_gap_max']:.2e} | "
            f"{r['bids_per_point']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=None, help="cloud sizes P (default 512 1024 2048)")
    parser.add_argument("--pairs", type=int, default=None, help="cloud pairs per case (default 6; --quick: 3)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--quick", action="store_true", help="P = 128 256 and 3 pairs: a smoke run in seconds")
    parser.add_argument("--pairwise", type=int, default=0, metavar="N", help="also time pairwise_emd on N vs N chairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    args = parser.parse_args(argv)
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f"{args.json} exists; pass --force to overwrite it")
    points = args.points or ([128, 256] if args.quick else [512, 1024, 2048])
    pairs = args.pairs or (3 if args.quick else 6)
    if min(points) < 1 or pairs < 1:
        parser.error("--points and --pairs must be positive")

    emd_auction(np.random.default_rng(0).random((2, 16, 3)), np.random.default_rng(1).random((2, 16, 3)))  # compile
    load_before = os.getloadavg()
    results = []
    for p in points:
        for kind in args.kinds:
            results.append(run_case(kind, p, pairs, args.seed))
            r = results[-1]
            line = (
                f"{kind:>8} P={p:<5} exact {r['exact_ms_per_pair']:8.0f} ms  auction {r['auction_ms_per_pair']:7.1f} ms"
            )
            print(f"{line}  rel.err mean {r['rel_err_mean']:.1e}", file=sys.stderr)
    pairwise = run_pairwise(args.pairwise, max(points), args.seed) if args.pairwise > 0 else None
    load_after = os.getloadavg()

    print(f"\nEMD per point, exact (scipy linear_sum_assignment) vs auction (numba, rtol={DEFAULT_RTOL}, "
          f"{numba.get_num_threads()} threads)\n")  # fmt: skip
    print(_table(results))
    print(
        "\nms/pair: wall time; exact runs one pair at a time, the auction all pairs in one parallel call. CPU ms: "
        "all threads.\nrel. err: (auction - exact) / exact, >= 0 by construction. certified gap: (auction - dual "
        "lower bound) / exact,\nwhat the auction can prove without the exact solver (<= rtol by construction)."
    )
    if pairwise is not None:
        print(
            f"\npairwise_emd, {pairwise['clouds_per_set']} vs {pairwise['clouds_per_set']} chairs at "
            f"P={pairwise['points']} with both within-set matrices: {pairwise['pairs']} pairs in "
            f"{pairwise['wall_s']:.1f} s wall ({pairwise['wall_ms_per_pair']:.1f} ms/pair), "
            f"{pairwise['cpu_s']:.1f} s CPU"
        )
    print(f"\nload average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "bench": "emd",
            "config": {"points": points, "pairs": pairs, "kinds": args.kinds, "seed": args.seed, "rtol": DEFAULT_RTOL},
            "machine": _machine(),
            "load_average": {"before": load_before, "after": load_after},
            "results": results,
            "pairwise": pairwise,
            "table": _table(results),
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
