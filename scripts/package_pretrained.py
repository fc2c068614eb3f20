"""Copy a trained run into the package as a shipped pretrained model (``shapelatent/pretrained/<name>/``).

Usage (the protocol of the shipped ``furniture`` model is in README.md, section "Pretrained model")::

    python scripts/package_pretrained.py --run runs/sh3d/run --data runs/sh3d/data \
        --eval runs/sh3d/run/eval --name furniture

Weights are written as float16 (half the size; they load into the float32 model). Integer buffers stay int64.
The checkpoint's config keeps the dataset's sampling/normalisation (needed to encode new shapes) but the local
dataset path is replaced by a description of the source.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from shapelatent.io.atomic import atomic_write_json, atomic_write_text
from shapelatent.train.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="Run folder with model.safetensors.")
    ap.add_argument("--data", type=Path, required=True, help="The dataset the run was trained on.")
    ap.add_argument("--eval", type=Path, default=None, help="Folder from `shapelatent evaluate` (copied).")
    ap.add_argument("--name", default="furniture")
    ap.add_argument("--source", default="Sweet Home 3D furniture libraries (Debian sweethome3d-furniture 1.8-1)")
    ap.add_argument(
        "--auto-mesher",
        default=None,
        help="What --mesher auto means for this model (e.g. poisson when its head measured worse than Poisson)",
    )
    ap.add_argument(
        "--implicit-threshold",
        type=float,
        default=None,
        help="Logit at which the head's surface is extracted (calibrated on validation shapes; default 0)",
    )
    ap.add_argument(
        "--init-source",
        default="the previously shipped model of this name",
        help="For a run fine-tuned with --init-from: how to name its source in the shipped config",
    )
    args = ap.parse_args(argv)

    from safetensors.torch import save_file

    from shapelatent import __version__

    ckpt = load_checkpoint(args.run / "model.safetensors")
    out = ROOT / "shapelatent" / "pretrained" / args.name
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(ckpt.config))
    data_info = json.loads((args.data / "dataset.json").read_text(encoding="utf-8"))
    config.setdefault("data", {})["path"] = f"{args.source} (built with `shapelatent data build sweethome3d`)"
    config["data"]["num_shapes"] = data_info.get("num_shapes")
    if config.get("init_from"):  # a fine-tuned run: name its source, not a local path
        config["init_from"]["path"] = args.init_source
        config["init_from"]["data"] = config["data"]["path"]
    if args.auto_mesher is not None:
        config["auto_mesher"] = args.auto_mesher
    if args.implicit_threshold is not None:
        config["implicit_threshold"] = args.implicit_threshold
    tensors = {
        f"model.{k}": (v.half() if v.is_floating_point() else v).contiguous() for k, v in ckpt.model_state.items()
    }
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_VERSION),
        "shapelatent_version": __version__,
        "config": json.dumps(config),
        "state": json.dumps({**ckpt.state, "stored_dtype": "float16", "pretrained_name": args.name}),
    }
    tmp = out / "model.safetensors.tmp"
    save_file({k: torch.as_tensor(v) for k, v in tensors.items()}, str(tmp), metadata=meta)
    tmp.chmod(0o644)
    tmp.replace(out / "model.safetensors")
    if (args.data / "ATTRIBUTION.md").exists():
        shutil.copyfile(args.data / "ATTRIBUTION.md", out / "ATTRIBUTION.md")
    atomic_write_json(
        out / "training.json",
        {
            "config": config,
            "metrics": json.loads((args.run / "metrics.json").read_text(encoding="utf-8")),
            "dataset": {k: data_info.get(k) for k in ("num_shapes", "num_points", "classes", "sampling", "source")},
        },
    )
    if args.eval is not None:
        for name in ("evaluation.json", "evaluation.md"):
            if (args.eval / name).exists():
                shutil.copyfile(args.eval / name, out / name)
    card = (ROOT / "datasets" / "sweethome3d" / "README.md").read_text(encoding="utf-8")
    atomic_write_text(out / "CARD.md", f"# Pretrained model `{args.name}`: its training data\n\n" + card)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out} (model.safetensors {size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
