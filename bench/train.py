"""Training throughput: shapes per second of a real training step of the default autoencoder.

Protocol. The model is ``ModelConfig`` defaults (latent Z = 128, encoder 64-128-128-256-Z, decoder 256-256-P*3, no
normals) with P = 2048 and P = 1024 decoded points; the optimiser is Adam with ``TrainConfig``'s learning rate; the
loss is the Chamfer distance with ``TrainConfig``'s default backend (``auto``: numba on the CPU; PyTorch3D, else
torch, on CUDA). One step is what ``shapelatent.train.loop.train`` does per batch: copy the (B, P, 3) batch to the
device, forward, Chamfer, ``zero_grad``, backward, Adam step and ``loss.item()`` (which waits for the GPU). Only
reading the dataset's memory map is left out: the clouds are ``--shapes`` procedural chairs (``generate_chair(i)``
sampled with P points, normalised) held in host memory, batch i taking shapes ``(i * B + arange(B)) mod N``.
``--warmup`` untimed steps (allocator, kernels, autotuning), then ``--steps`` timed ones; shapes/s is
B * steps / their total time, and the median step is reported too. CUDA rows also report the peak allocated memory.

``--amp`` adds rows with mixed precision as the loop does it when ``TrainConfig`` has the ``amp`` field: the
network under ``torch.autocast`` with the dtype of ``resolve_amp_dtype(True, TrainConfig.amp_dtype, device)``
(``auto``: bfloat16 on the CPU and on GPUs that support it, else float16 with a ``GradScaler``), the Chamfer loss
in float32. ``--sweep`` times batch sizes 50 to 4096 on CUDA (until memory runs out) and reports the best.
``TrainConfig`` fields this bench looks for (``amp``, ``workers``) and does not find are named in the output.
``--resident`` keeps the clouds on the device (no per-step host copy): the ceiling a fully overlapped loader
could reach.

``--quick``: 12 shapes, 1 warm-up and 3 timed steps (CPU) or 5 and 20 (CUDA).

Example::

    .venv/bin/python bench/train.py --json out/bench_train.json
    .venv/bin/python bench/train.py --device cuda --sweep --amp
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

from shapelatent.data.normalize import Normalization
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sampling import sample_surface
from shapelatent.models.pointnet import ModelConfig, PointCloudAutoencoder
from shapelatent.ops.chamfer import _resolve_backend
from shapelatent.train.config import TrainConfig
from shapelatent.train.loop import resolve_amp_dtype
from shapelatent.train.losses import forward_loss

SWEEP = (50, 128, 256, 512, 1024, 2048, 4096)
COLUMNS = ["device", "P", "B", "amp", "backend", "step ms", "shapes/s", "peak MiB", "status"]


def make_pool(shapes: int, points: int) -> np.ndarray:
    """(N, P, 3) float32 normalised clouds of ``shapes`` procedural chairs, P = ``points``."""
    norm = Normalization()
    clouds = [norm.apply(sample_surface(generate_chair(i).mesh, points, seed=i).points).points for i in range(shapes)]
    return np.stack(clouds).astype(np.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(
    pool: np.ndarray,
    device: torch.device,
    batch: int,
    warmup: int,
    steps: int,
    amp_dtype: torch.dtype | None,
    backend: str,
    resident: bool = False,
) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones.

    Args:
        pool: (N, P, 3) float32 clouds; batch i is ``pool[(i * batch + arange(batch)) % N]``.
        amp_dtype: the autocast dtype, or None for float32.
        resident: keep ``pool`` on the device and gather batches there (no host copy per step).

    Returns:
        ``step_ms`` (median), ``shapes_per_s`` (batch * steps / total time), ``peak_mib`` (CUDA: peak allocated
        memory, else None) and the last ``loss``.
    """
    torch.manual_seed(0)
    cfg = ModelConfig(num_points=pool.shape[1])
    model = PointCloudAutoencoder(cfg).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=TrainConfig.lr)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    n = len(pool)

    on_device = torch.from_numpy(pool).to(device) if resident else None

    def step(i: int) -> float:
        idx = (i * batch + np.arange(batch)) % n
        if on_device is not None:
            x = on_device[torch.from_numpy(idx).to(device)]  # (B, P, 3)
        else:
            host = torch.from_numpy(pool[idx])  # (B, P, 3)
            if device.type == "cuda":  # the loop's loader pins its batches for CUDA
                host = host.pin_memory()
            x = host.to(device, non_blocking=True)
        loss, _ = forward_loss(model, x, None, amp_dtype, backend=backend)  # the training loop's own forward
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss.item()

    for i in range(warmup):
        step(i)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    loss = float("nan")
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        loss = step(i)
        times.append(time.perf_counter() - t0)
    _sync(device)
    total = time.perf_counter() - start
    return {
        "step_ms": statistics.median(times) * 1e3,
        "shapes_per_s": batch * steps / total,
        "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "loss": loss,
    }


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _default_steps(cuda: bool, quick: bool) -> tuple[int, int]:
    """(warm-up, timed) steps: CUDA 5 and 50 (quick 20); CPU 3 and 10 (quick 1 and 3)."""
    if cuda:
        return 5, 20 if quick else 50
    return (1, 3) if quick else (3, 10)


def run(args: argparse.Namespace, log=print) -> dict[str, Any]:
    """Every (device, P, amp, batch size) row of the command line; see the module docstring."""
    notes = ["TrainConfig.workers does not apply: the clouds are in memory, no loader runs."]
    if not args.amp:
        notes.append("mixed precision not timed (pass --amp).")
    backend_name = TrainConfig().chamfer_backend
    rows: list[dict[str, Any]] = []
    pools: dict[int, np.ndarray] = {}
    for dev_name in args.device:
        device = torch.device(dev_name)
        backend = _resolve_backend(backend_name, device)
        amps: list[torch.dtype | None] = [None]
        if args.amp:
            try:
                amps.append(resolve_amp_dtype(True, TrainConfig().amp_dtype, device))
            except ValueError as exc:
                notes.append(f"no mixed-precision rows on {dev_name}: {exc}")
        batches = SWEEP if args.sweep and device.type == "cuda" else args.batch_size
        if args.sweep and device.type != "cuda":
            sizes = " ".join(map(str, args.batch_size))
            notes.append(f"--sweep applies to CUDA only; {dev_name} uses --batch-size {sizes}.")
        default_warmup, default_steps = _default_steps(device.type == "cuda", args.quick)
        warmup = default_warmup if args.warmup is None else args.warmup
        steps = default_steps if args.steps is None else args.steps
        for points in args.points:
            if points not in pools:
                pools[points] = make_pool(args.shapes, points)
            for amp_dtype in amps:
                amp = str(amp_dtype).removeprefix("torch.") if amp_dtype is not None else "no"
                for batch in batches:
                    row: dict[str, Any] = {
                        "device": dev_name, "P": points, "B": batch, "amp": amp, "backend": backend,
                        "warmup": warmup, "steps": steps,
                    }  # fmt: skip
                    try:
                        r = time_training(
                            pools[points], device, batch, warmup, steps, amp_dtype, backend, resident=args.resident
                        )
                    except torch.cuda.OutOfMemoryError:
                        r = None  # free the memory once the traceback (which holds the model) is gone
                    if r is None:
                        _free(device)
                        row["status"] = "out of memory"
                        rows.append(row)
                        log(f"{dev_name} P={points} B={batch} amp={amp}: out of memory; larger batches skipped")
                        break
                    row.update({"step ms": r["step_ms"], "shapes/s": r["shapes_per_s"], "peak MiB": r["peak_mib"]})
                    row.update({"loss": r["loss"], "status": "ok"})
                    rows.append(row)
                    log(
                        f"{dev_name} P={points} B={batch} amp={amp} ({backend}): {r['step_ms']:.1f} ms/step, "
                        f"{r['shapes_per_s']:.0f} shapes/s"
                    )
                    _free(device)
    best = []
    for key in sorted({(r["device"], r["P"]) for r in rows}, key=str):
        ok = [r for r in rows if (r["device"], r["P"]) == key and r["status"] == "ok"]
        if ok:
            best.append(max(ok, key=lambda r: r["shapes/s"]))
    return {"rows": rows, "best": best, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    parser.add_argument(
        "--device", nargs="+", choices=["cpu", "cuda"], default=default_devices,
        help=f"devices to time (default here: {' '.join(default_devices)})",
    )  # fmt: skip
    parser.add_argument("--points", type=int, nargs="+", default=[2048, 1024], help="P values (default 2048 1024)")
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[TrainConfig.batch_size], help="batch sizes B (default 50)"
    )
    parser.add_argument("--sweep", action="store_true", help=f"on CUDA, time B in {SWEEP} and report the best")
    parser.add_argument("--amp", action="store_true", help="also time mixed precision (needs TrainConfig.amp)")
    parser.add_argument("--shapes", type=int, default=None, help="distinct clouds in memory (default 64, quick 12)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default: CPU 3, quick 1; CUDA 5)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: CPU 10, quick 3; CUDA 50/20)")
    parser.add_argument(
        "--resident", action="store_true", help="keep the clouds on the device: no host copy per step (GPU ceiling)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="12 shapes, fewer steps")
    parser.add_argument("--json", type=Path, default=None, help="write the results and machine here")
    args = parser.parse_args(argv)
    if "cuda" in args.device and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False (a CPU build of torch or no GPU)")
    if args.shapes is None:
        args.shapes = 12 if args.quick else 64
    for name in ("points", "batch_size"):
        bad = [v for v in getattr(args, name) if v < 1]
        if bad:
            parser.error(f"--{name.replace('_', '-')} values must be >= 1; got {bad}")
    for name in ("shapes", "steps", "warmup", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("warmup", "threads") else 1):
            parser.error(f"--{name} must be >= {0 if name in ('warmup', 'threads') else 1}; got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)

    result = run(args)
    print(f"\nTraining step throughput, default model (Z={ModelConfig.latent_dim}), Adam, Chamfer (auto backend)")
    print(markdown_table(result["rows"], COLUMNS))
    if args.sweep and result["best"]:
        print("best per device and P:")
        print(markdown_table(result["best"], COLUMNS))
    for note in result["notes"]:
        print(f"note: {note}")
    print(
        "step ms: median timed step (copy to device, forward, Chamfer, backward, Adam, loss.item()); shapes/s:\n"
        "B * steps / total time of the timed steps; peak MiB: CUDA max allocated during the timed steps"
    )
    if args.json is not None:
        write_result(args.json, "train", result, args, table=result["rows"], columns=COLUMNS)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
