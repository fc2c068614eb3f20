"""Encode throughput: meshes per second from files on disk to codes in a store.

Writes N procedural chairs as OBJ files (or uses a folder you give, e.g. extracted Sweet Home 3D models),
then times ``shapelatent.latent.encode.encode_to_store`` end to end (read + sample + normalise in a process
pool, then batched encoding), and separately the stages, so the table says where the time goes.

Example::

    .venv/bin/python bench/encode.py --model runs/demo --count 400 --json out/bench_encode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shapelatent.data.build import sample_file
from shapelatent.data.procedural import generate_chair
from shapelatent.data.sources.folder import list_inputs
from shapelatent.latent.encode import codes_for_points, encode_to_store, model_sampling
from shapelatent.models.load import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="run folder of a trained model (e.g. runs/demo)")
    ap.add_argument("--count", type=int, default=400, help="procedural chairs to write as OBJ (ignored with --folder)")
    ap.add_argument("--folder", type=Path, help="encode the mesh files under this folder instead")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: all cores)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_encode_"))
    try:
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
        loaded = load_model(args.model)
        cfg = model_sampling(loaded)

        t0 = time.perf_counter()
        store, failed = encode_to_store(args.model, [src], tmp / "store", workers=args.workers, force=True)
        total = time.perf_counter() - t0

        sub = files[: min(50, len(files))]
        t0 = time.perf_counter()
        clouds = np.stack([sample_file(f, cfg, seed=cfg.seed).points for f in sub])
        load_one = (time.perf_counter() - t0) / len(sub)
        t0 = time.perf_counter()
        codes_for_points(loaded.model, np.repeat(clouds, max(1, 256 // len(sub)), axis=0)[:256])
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
            "machine": {
                "cores": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "device": "cpu",
            },
        }
        for k, v in result.items():
            print(f"{k:40s} {v}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
