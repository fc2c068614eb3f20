"""Encode throughput: meshes per second from files on disk to codes in a store.

Writes N procedural chairs as OBJ files (or uses a folder you give, e.g. extracted Sweet Home 3D models),
then times ``shapelatent.latent.encode.encode_to_store`` end to end (read + sample + normalise in a process
pool, then batched encoding), and separately the stages, so the table says where the time goes.

Without ``--model`` it times a freshly initialised model of the default architecture (``ModelConfig`` with
``--points`` points, default sampling): throughput does not depend on the weights, so the numbers hold for any
trained model of that architecture. ``--quick`` writes 48 chairs instead of 400.

Example::

    .venv/bin/python bench/encode.py --model runs/demo --count 400 --json out/bench_encode.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result  # bench/common.py

from shapelatent.data.build import SamplingConfig, sample_file
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sources.folder import list_inputs
from shapelatent.latent.encode import codes_for_points, encode_to_store, model_sampling
from shapelatent.models.load import load_model
from shapelatent.models.pointnet import ModelConfig, PointCloudAutoencoder
from shapelatent.train.checkpoint import save_checkpoint
from shapelatent.train.config import RunConfig


def _untrained_run(folder: Path, points: int) -> Path:
    """A run folder holding a seeded, untrained model of the default architecture with P = ``points``."""
    torch.manual_seed(0)
    model = PointCloudAutoencoder(ModelConfig(num_points=points))
    config = {"run": RunConfig(model=model.config).to_dict(), "data": {"sampling": SamplingConfig(points).to_dict()}}
    save_checkpoint(folder / "model.safetensors", model, config, {"epoch": 0})
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="run folder of a trained model (default: an untrained default model)")
    ap.add_argument("--points", type=int, default=ModelConfig.num_points, help="P of the untrained model")
    ap.add_argument("--count", type=int, default=None, help="procedural chairs to write as OBJ (default 400)")
    ap.add_argument("--folder", type=Path, help="encode the mesh files under this folder instead")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="48 chairs")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if args.count is None:
        args.count = 48 if args.quick else 400
    if args.count < 1:
        ap.error(f"--count must be >= 1; got {args.count}")

    tmp = Path(tempfile.mkdtemp(prefix="bench_encode_"))
    try:
        if args.model is None:
            model_path = str(_untrained_run(tmp / "untrained", args.points))
            model_name = f"untrained default, P={args.points}"
        else:
            model_path = model_name = args.model
        if args.folder:
            files = list_inputs(args.folder)
            src = args.folder
        else:
            src = tmp / "meshes"
            src.mkdir()
            for i in range(args.count):
                generate_chair(i).mesh.export(src / f"chair_{i:05d}.obj")
            files = list_inputs(src)
        sizes = [f.stat().st_size for f in files]
        loaded = load_model(model_path)
        cfg = model_sampling(loaded)

        t0 = time.perf_counter()
        store, failed = encode_to_store(model_path, [src], tmp / "store", workers=args.workers, force=True)
        total = time.perf_counter() - t0

        sub = files[: min(50, len(files))]
        t0 = time.perf_counter()
        clouds = np.stack([sample_file(f, cfg, seed=cfg.seed).points for f in sub])
        load_one = (time.perf_counter() - t0) / len(sub)
        t0 = time.perf_counter()
        codes_for_points(loaded.model, clouds[np.arange(256) % len(clouds)])  # 256 clouds, cycling the sample
        enc_one = (time.perf_counter() - t0) / 256

        result = {
            "meshes": len(files),
            "encoded": len(store),
            "failed": len(failed),
            "mean_file_kib": round(float(np.mean(sizes)) / 1024, 1),
            "total_s": round(total, 2),
            "meshes_per_s": round(len(store) / total, 1),
            "read_sample_ms_per_mesh_1_process": round(load_one * 1000, 2),
            "encode_ms_per_shape_batched": round(enc_one * 1000, 3),
            "points": cfg.num_points,
            "model": model_name,
            "device": "cpu",
            "workers": args.workers,
        }
        for k, v in result.items():
            print(f"{k:40s} {v}")
        if args.json:
            columns = ["model", "points", "meshes", "failed", "meshes_per_s", "read_sample_ms_per_mesh_1_process",
                       "encode_ms_per_shape_batched"]  # fmt: skip
            write_result(args.json, "encode", result, args, table=[result], columns=columns)
            print(f"wrote {args.json}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
