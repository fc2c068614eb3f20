"""Benchmark the Chamfer distance backends side by side: forward + backward time and peak memory.

Each backend runs in a fresh subprocess. Its peak memory is the growth of the process's peak resident set
size (CPU: ``VmHWM`` reset through ``/proc/self/clear_refs``, else ``resource.getrusage``; a lower bound,
as the allocator reuses memory freed earlier) or of ``torch.cuda.max_memory_allocated`` (CUDA) over one
forward + backward, measured after the inputs exist and after a tiny call has imported the backend and
loaded its kernels. A first subprocess per backend
fills the on-disk compile caches (numba, KeOps), so the measured one never counts compiler memory.

``--quick``: B = 8, P = Q = 1024, 5 repeats (the full-matrix ``reference`` fits under its limit there).

Example::

    .venv/bin/python bench/chamfer.py --batch 32 --points 2048 --repeats 20 --json out/bench_chamfer.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import write_result  # bench/common.py

from shapelatent.ops.chamfer import available_backends, chamfer_distance, nearest_neighbors

QUICK = {"batch": 8, "points": 1024, "repeats": 5}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def _start_peak(device: str) -> int:
    """Reset the peak counter where possible; return the baseline in bytes."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    try:  # Linux: "5" resets the process's peak RSS (VmHWM) to its current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _peak_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    try:
        return _proc_status_kib("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker(args: argparse.Namespace) -> dict:
    """Time one backend in this process; return its numbers."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, args.dtype)
    shape = (args.batch, args.points, 3)
    x = torch.rand(shape, generator=gen, dtype=dtype).to(args.device).requires_grad_(True)
    y = torch.rand(shape, generator=gen, dtype=dtype).to(args.device).requires_grad_(True)

    def step() -> None:
        chamfer_distance(x, y, backend=args.backend).loss.backward()
        x.grad = y.grad = None
        _sync(args.device)

    # Import the backend's modules and load its kernels on a tiny input first, so the memory measured
    # below is the working memory of one fwd + bwd, not imports or compilers.
    tiny = torch.rand(2, 8, 3, generator=gen, dtype=dtype).to(args.device)
    start = time.perf_counter()
    chamfer_distance(tiny, tiny.flip(1), backend=args.backend)
    tiny_s = time.perf_counter() - start
    base = _start_peak(args.device)
    start = time.perf_counter()
    step()
    first_s = time.perf_counter() - start
    peak = _peak_bytes(args.device) - base
    if args.warmup_only:
        return {"first_call_s": first_s + tiny_s}
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    nn_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        nearest_neighbors(x, y, backend=args.backend)
        _sync(args.device)
        nn_times.append(time.perf_counter() - start)
    return {
        "fwd_bwd_median_s": statistics.median(times),
        "fwd_bwd_min_s": min(times),
        "fwd_bwd_max_s": max(times),
        "search_median_s": statistics.median(nn_times),
        "first_call_s": first_s + tiny_s,
        "peak_mem_delta_bytes": peak,
    }


def _run_subprocess(args: argparse.Namespace, backend: str, warmup_only: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable, __file__, "--worker", backend, "--worker-out", str(out),
            "--batch", str(args.batch), "--points", str(args.points), "--repeats", str(args.repeats),
            "--warmup", str(args.warmup), "--device", args.device, "--dtype", args.dtype,
        ]  # fmt: skip
        if warmup_only:
            cmd.append("--warmup-only")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="clouds per batch (B; default 32, --quick 8)")
    parser.add_argument("--points", type=int, default=None, help="points per cloud (P = Q; default 2048, --quick 1024)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs, the median is reported (default 10)")
    parser.add_argument("--quick", action="store_true", help="small sizes: B=8, P=Q=1024, 5 repeats")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs after the first call")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    parser.add_argument(
        "--reference-limit", type=int, default=2**25,
        help="largest B*P*Q for the full-matrix reference (it holds several (B, P, P, 3) tensors)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the results and machine here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, full in (("batch", 32), ("points", 2048), ("repeats", 10)):
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else full)

    if args.worker:
        args.backend = args.worker
        args.worker_out.write_text(json.dumps(_worker(args)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f"{args.json} exists; pass --force to overwrite it")

    backends = args.backends or available_backends()
    pairs = args.batch * args.points * args.points
    results = {}
    for backend in backends:
        if backend == "reference" and pairs > args.reference_limit:
            print(f"note: skipping 'reference': B*P*Q = {pairs:,} > --reference-limit {args.reference_limit:,}")
            continue
        warm = _run_subprocess(args, backend, warmup_only=True)
        result = _run_subprocess(args, backend, warmup_only=False)
        result["fresh_process_first_call_s"] = warm.get("first_call_s")
        results[backend] = result

    print(f"\nChamfer fwd+bwd, B={args.batch}, P=Q={args.points}, D=3, {args.dtype}, {args.device}")
    header = f"{'backend':<10} {'fwd+bwd ms':>11} {'min ms':>8} {'search ms':>10} {'peak MiB':>9} {'first s':>8}"
    print(header)
    print("-" * len(header))
    for backend, r in results.items():
        if "error" in r:
            print(f"{backend:<10} error: {r['error']}")
            continue
        print(
            f"{backend:<10} {r['fwd_bwd_median_s'] * 1e3:>11.1f} {r['fwd_bwd_min_s'] * 1e3:>8.1f} "
            f"{r['search_median_s'] * 1e3:>10.1f} {r['peak_mem_delta_bytes'] / 2**20:>9.1f} "
            f"{r['fresh_process_first_call_s']:>8.2f}"
        )
    print(
        "fwd+bwd: median of --repeats after warm-up; search: nearest_neighbors alone; peak MiB: growth of\n"
        "max RSS (CPU) or max allocated (CUDA) over one fwd+bwd; first s: first call of a fresh process\n"
        "(compiles when the numba/KeOps disk caches are empty, else loads them)"
    )
    if args.json is not None:
        config = {k: v for k, v in vars(args).items() if not k.startswith("worker") and k != "json"}
        table = [
            {
                "backend": backend,
                "B": args.batch,
                "P": args.points,
                "device": args.device,
                "fwd+bwd ms": r["fwd_bwd_median_s"] * 1e3,
                "search ms": r["search_median_s"] * 1e3,
                "peak MiB": r["peak_mem_delta_bytes"] / 2**20,
                "first call s": r["fresh_process_first_call_s"],
            }
            if "error" not in r
            else {"backend": backend, "B": args.batch, "P": args.points, "device": args.device, "error": r["error"]}
            for backend, r in results.items()
        ]
        columns = ["backend", "B", "P", "device", "fwd+bwd ms", "search ms", "peak MiB", "first call s"]
        if any("error" in r for r in table):
            columns.append("error")
        write_result(args.json, "chamfer", results, config, table=table, columns=columns)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
