"""Draw a few items of every Sweet Home 3D class as shaded meshes (Y up, front +Z) into one PNG (viewers' renderer).

Each mesh is read from the library exactly as the dataset build reads it (safe extraction, geometry only)
and rotated by its ``modelRotation`` (v' = M v), so the picture shows the orientation the dataset has.
Items are taken in catalogue order, alternating between libraries, skipping meshes with more than
``--max-faces`` faces. Also prints, for every drawn item, how the rotated
mesh's proportions compare with the catalogue's width x height x depth.

Example::

    .venv/bin/python bench/sweethome3d_gallery.py /tmp/sh3d/x/usr/share/sweethome3d/furniture \\
        --out docs/images/sweethome3d_classes.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from shapelatent.data.sources.sweethome3d import CLASSES, extract_models, find_archives, read_catalog
from shapelatent.io.meshes import read_mesh
from viewers.render import render_views

DEFAULT_DIRS = ("/usr/share/sweethome3d/furniture", "/tmp/sh3d/x/usr/share/sweethome3d/furniture")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", help=f".sh3f files or folders (default: the first of {DEFAULT_DIRS} found)")
    ap.add_argument("--out", default="docs/images/sweethome3d_classes.png")
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--classes", default=",".join(c for c in CLASSES if c != "other"))
    ap.add_argument("--max-faces", type=int, default=40_000)
    ap.add_argument("--ncols", type=int, default=8)
    ap.add_argument("--size", type=int, default=192, help="panel width and height in pixels")
    args = ap.parse_args(argv)

    paths = args.paths or [d for d in DEFAULT_DIRS if Path(d).is_dir()][:1]
    if not paths:
        print(f"error: no Sweet Home 3D libraries given and none in {DEFAULT_DIRS}", file=sys.stderr)
        return 2
    catalogs = [read_catalog(p) for p in find_archives(paths)]
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    t0 = time.perf_counter()
    meshes, titles = [], []
    with tempfile.TemporaryDirectory(prefix="sh3d-gallery-") as tmp:
        queues = defaultdict(list)  # class -> items, alternating between libraries
        for depth in range(max(len(c.items) for c in catalogs)):
            for cat in catalogs:
                if depth < len(cat.items):
                    queues[cat.items[depth].cls].append((cat, cat.items[depth]))
        for cls in classes:
            taken = 0
            for cat, it in queues[cls]:
                if taken == args.per_class:
                    break
                objs, missing = extract_models(cat, [it], Path(tmp) / cat.sha256[:16])
                if it.index in missing:
                    continue
                mesh = read_mesh(objs[it.index])
                if len(mesh.faces) > args.max_faces:
                    continue
                if it.rotation is not None:
                    mesh.vertices = mesh.vertices @ np.asarray(it.rotation).reshape(3, 3).T  # v' = M v
                ext = np.ptp(np.asarray(mesh.vertices), axis=0)
                want = np.array([it.width or 0, it.height or 0, it.depth or 0])
                dev = float(np.abs(ext / ext.max() - want / max(want.max(), 1e-9)).max())
                rot = "rotated" if it.rotation is not None else ""
                print(f"{cls:14s} {it.id:45s} {len(mesh.faces):7d} faces  proportions vs catalogue {dev:.3f} {rot}")
                meshes.append(mesh)
                titles.append(f"{cls} · {it.name}"[:24])
                taken += 1
    path = render_views(meshes, args.out, titles=titles, ncols=args.ncols, size=(args.size, args.size), mode="mesh")
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB, {len(meshes)} meshes) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
