"""Picture of occupancy labels on axis-aligned slices: a procedural chair and a real Sweet Home 3D chair.

Usage: python bench/occupancy_slices.py [--out docs/images/occupancy_slices.png] [--res 220]

Each row is one chair in the dataset frame (normalised to the unit sphere, box [-1.1, 1.1]^3); each panel a plane
through the legs: the mid-plane side view (x = 0: seat and back), a side view through a leg, a top view at a fifth of
the height (the legs' cross-sections) and a front view through the front legs. Queries on a res x res grid are
labelled by
:func:`shapelatent.data.occupancy_labels.label_points` with the ``auto`` method (exact winding number on the
watertight procedural chair; winding number + the 0.017 shell on the open real mesh); the black line is the mesh's
own cross-section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from shapelatent.data.normalize import Normalization  # noqa: E402
from shapelatent.data.occupancy import BOX  # noqa: E402
from shapelatent.data.occupancy_labels import _label  # noqa: E402
from shapelatent.data.procedural import generate_chair  # noqa: E402
from shapelatent.data.sampling import sample_surface  # noqa: E402
from shapelatent.io.meshes import read_mesh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "meshes"
AXES = {"x": 0, "y": 1, "z": 2}
CHAIR_SEED = 7


def _normalised(mesh: trimesh.Trimesh, rotation=None) -> trimesh.Trimesh:
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if rotation is not None:
        v = v @ np.asarray(rotation, dtype=np.float64).reshape(3, 3).T
    norm = Normalization().apply(sample_surface(trimesh.Trimesh(v, mesh.faces, process=False), 4096, seed=0).points)
    return trimesh.Trimesh((v - norm.center) / norm.scale, mesh.faces, process=False)


def _planes(mesh: trimesh.Trimesh) -> list[tuple[str, float]]:
    v = mesh.vertices
    y_low = float(v[:, 1].min() + 0.2 * np.ptp(v[:, 1]))
    band = v[np.abs(v[:, 1] - y_low) < 0.1 * np.ptp(v[:, 1])]  # the legs around a fifth of the height
    x_leg = float(np.median(band[band[:, 0] > 0, 0])) if (band[:, 0] > 0).any() else 0.0
    z_leg = float(np.median(band[band[:, 2] > 0, 2])) if (band[:, 2] > 0).any() else 0.0
    return [("x", 0.0), ("x", x_leg), ("y", y_low), ("z", z_leg)]


def _slice(ax, mesh: trimesh.Trimesh, axis: str, value: float, res: int) -> str:
    k = AXES[axis]
    u, w = {0: (2, 1), 1: (0, 2), 2: (0, 1)}[k]  # side view: z across, y up; top view: x, z; front view: x, y
    g = np.linspace(-BOX, BOX, res)
    gu, gw = np.meshgrid(g, g, indexing="xy")
    q = np.zeros((res * res, 3))
    q[:, u], q[:, w], q[:, k] = gu.ravel(), gw.ravel(), value
    labels, method = _label(mesh.vertices, mesh.faces, q, "auto", 2 * BOX / 128, "slice")
    img = labels.reshape(res, res)
    ax.imshow(
        img,
        origin="lower",
        extent=(-BOX, BOX, -BOX, BOX),
        cmap=ListedColormap(["#f4f1ea", "#c0392b"]),
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    normal = np.zeros(3)
    normal[k] = 1.0
    segments = trimesh.intersections.mesh_plane(mesh, plane_normal=normal, plane_origin=normal * value)  # (n, 2, 3)
    if len(segments):
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments[:, :, [u, w]], colors="black", linewidths=0.5))
    names = "xyz"
    ax.set_xlabel(names[u])
    ax.set_ylabel(names[w])
    ax.set_title(f"{axis} = {value:+.2f}   ({labels.mean():.1%} inside)", fontsize=9)
    return method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "occupancy_slices.png"))
    ap.add_argument("--res", type=int, default=220)
    args = ap.parse_args()
    items = {m["dir"]: m for m in json.loads((FIXTURES / "items.json").read_text())}
    chairs = [
        (
            f"procedural four_legged chair (seed {CHAIR_SEED})",
            _normalised(generate_chair(CHAIR_SEED, "four_legged").mesh),
        ),
        (
            "Sweet Home 3D deck chair (fixture)",
            _normalised(read_mesh(FIXTURES / "deck_chair" / "model.obj"), items["deck_chair"]["model_rotation"]),
        ),
    ]
    fig, axes = plt.subplots(len(chairs), 4, figsize=(16, 4.4 * len(chairs)))
    for row, (name, mesh) in zip(axes, chairs, strict=True):
        methods = {
            _slice(ax, mesh, axis, value, args.res) for ax, (axis, value) in zip(row, _planes(mesh), strict=True)
        }
        row[0].annotate(
            f"{name}\nlabels: {', '.join(sorted(methods))}",
            (0.0, 1.13),
            xycoords="axes fraction",
            fontsize=11,
            fontweight="bold",
        )
    fig.suptitle(
        "Occupancy labels on axis-aligned slices: red = inside, cream = outside, black = mesh section", fontsize=12
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
