"""Build the Sweet Home 3D furniture libraries into a dataset and report speed, classes and skipped items.

Reads the ``.sh3f`` files given (or those of the Debian package ``sweethome3d-furniture`` in
``/usr/share/sweethome3d/furniture``, or where ``dpkg-deb -x`` put them under ``/tmp/sh3d/x``), builds every
item (``--include-other`` is on by default: all 820 items of the five libraries of version 1.8) and prints
wall time, models per second, the classes per library, the licences and every skipped item with its reason.
Timings are split into reading the catalogues, extracting and cleaning the models (measured on its own
first), and the whole build. With ``--check-proportions`` it also loads every model once more and compares
the proportions of the rotated mesh with the catalogue's width x height x depth.

Exits with status 2 and a message when no library is found: a missing input is never a pass.

Example::

    .venv/bin/python bench/build_sweethome3d.py --points 2048 --json out/bench_sweethome3d.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources.sweethome3d import (
    build_sweethome3d,
    extract_models,
    find_archives,
    read_catalog,
    select_items,
)

DEFAULT_DIRS = ("/usr/share/sweethome3d/furniture", "/tmp/sh3d/x/usr/share/sweethome3d/furniture")


def _proportions(catalogs, work: Path) -> list[dict]:
    """Items whose rotated mesh proportions differ from the catalogue's by more than 5 % of the largest side."""
    from shapelatent.io.meshes import read_mesh

    out = []
    for cat in catalogs:
        objs, _ = extract_models(cat, cat.items, work / cat.sha256[:16])
        for it in cat.items:
            if it.index not in objs or not (it.width and it.height and it.depth):
                continue
            v = np.asarray(read_mesh(objs[it.index]).vertices)
            if it.rotation is not None:
                v = v @ np.asarray(it.rotation).reshape(3, 3).T
            ext = np.ptp(v, axis=0)
            want = np.array([it.width, it.height, it.depth])
            dev = float(np.abs(ext / ext.max() - want / want.max()).max())
            if dev > 0.05:
                out.append(
                    {
                        "id": f"{cat.id}/{it.id}",
                        "name": it.name,
                        "rotated": it.rotation is not None,
                        "mesh_xyz": [round(float(x), 2) for x in ext],
                        "catalogue_whd_cm": [it.width, it.height, it.depth],
                        "deviation": round(dev, 3),
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", help=f".sh3f files or folders (default: the first of {DEFAULT_DIRS} found)")
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--classes", default=None, help="comma-separated subset (default: every class)")
    ap.add_argument("--no-other", action="store_true", help="leave out class 'other' (default: build every item)")
    ap.add_argument("--out", default=None, help="dataset folder (default: a temporary folder, removed)")
    ap.add_argument("--json", default=None, help="write the report here")
    ap.add_argument("--check-proportions", action="store_true")
    args = ap.parse_args(argv)

    paths = args.paths or [d for d in DEFAULT_DIRS if Path(d).is_dir()][:1]
    if not paths:
        print(
            f"error: no Sweet Home 3D furniture libraries: none given and none in {', '.join(DEFAULT_DIRS)}.\n"
            "Get them with: apt-get download sweethome3d-furniture && dpkg-deb -x sweethome3d-furniture_*.deb x\n"
            "then pass x/usr/share/sweethome3d/furniture",
            file=sys.stderr,
        )
        return 2
    try:
        archives = find_archives(paths)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    include_other = not args.no_other
    workers = args.workers or os.cpu_count() or 1

    t0 = time.perf_counter()
    catalogs = [read_catalog(a) for a in archives]
    t_catalog = time.perf_counter() - t0
    chosen, _ = select_items(catalogs, classes, include_other)

    with tempfile.TemporaryDirectory(prefix="bench-sh3d-") as tmp:
        t0 = time.perf_counter()
        for cat in catalogs:
            extract_models(cat, [it for c, it in chosen if c is cat], Path(tmp) / "extract" / cat.sha256[:16])
        t_extract = time.perf_counter() - t0

        out = Path(args.out) if args.out else Path(tmp) / "dataset"
        cfg = SamplingConfig(num_points=args.points, seed=0)
        t0 = time.perf_counter()
        result = build_sweethome3d(
            catalogs, out, classes=classes, include_other=include_other, sampling=cfg, workers=workers, force=True
        )
        t_build = time.perf_counter() - t0
        ds = ShapeDataset(out)
        per_library: dict[str, Counter] = {}
        licences: Counter = Counter()
        for m in ds.meta:
            lib = json.loads(m["extra"])["library"]
            per_library.setdefault(lib, Counter())[m["class"]] += 1
            licences[m["license"]] += 1
        proportions = _proportions(catalogs, Path(tmp) / "check") if args.check_proportions else None

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "archives": [{"name": c.path.name, "sha256": c.sha256, "items": len(c.items)} for c in catalogs],
        "points": args.points,
        "workers": workers,
        "items_selected": len(chosen),
        "built": result.built,
        "seconds": {
            "read_catalogues": round(t_catalog, 2),
            "extract_and_clean_alone": round(t_extract, 2),
            "build_total": round(t_build, 2),
        },
        "models_per_second": round(result.built / t_build, 1),
        "classes": dict(sorted(Counter(ds.classes()).items())),
        "classes_per_library": {k: dict(sorted(v.items())) for k, v in per_library.items()},
        "licences": dict(licences),
        "skipped": result.skipped,
    }
    if proportions is not None:
        report["proportions_off_by_more_than_5_percent"] = proportions

    print(f"{len(archives)} libraries, {len(chosen)} items selected, P={args.points}, {workers} workers")
    print(
        f"read catalogues {t_catalog:.2f} s; extract+clean alone {t_extract:.1f} s; "
        f"build {t_build:.1f} s = {report['models_per_second']} models/s; built {result.built}"
    )
    print(f"classes: {report['classes']}")
    for lib, counts in report["classes_per_library"].items():
        print(f"  {lib}: {dict(sorted(counts.items()))}")
    print(f"licences: {report['licences']}")
    print(f"skipped: {len(result.skipped)}")
    for s in result.skipped:
        print(f"  {s['source']}: {s['reason']}")
    if proportions is not None:
        print(f"proportions off by > 5 % vs the catalogue: {len(proportions)}")
        for p in proportions:
            print(f"  {p['id']} ({p['name']}{', rotated' if p['rotated'] else ''}): {p['deviation']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
