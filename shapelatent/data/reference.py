"""The true mesh behind a dataset row, in the row's normalised frame: the reference of mesh metrics.

A row's points were sampled from a mesh (a file, an ``archive!member`` of a Sweet Home 3D library, or a procedural
chair regenerated from its seed) and normalised; the same recovery as :func:`shapelatent.data.occupancy.add_occupancy`
finds the transform (exactly, by re-sampling with the builder's seed), so the returned mesh lies on the stored points.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import ShapeDataset
from shapelatent.data.occupancy_build import FIT_TOLERANCE, _rows, recover_transform

__all__ = ["ReferenceMesh", "reference_meshes"]


@dataclass(frozen=True)
class ReferenceMesh:
    """A row's source mesh in the normalised frame, or why there is none.

    Attributes:
        index: the dataset row.
        vertices: (V, 3) float64, normalised as the row's points; None when ``error``.
        faces: (F, 3) int64; None when ``error``.
        error: why the mesh could not be recovered, or "".
    """

    index: int
    vertices: np.ndarray | None
    faces: np.ndarray | None
    error: str


def reference_meshes(
    dataset: str | os.PathLike[str], indices: Sequence[int], archives: Sequence[str | os.PathLike[str]] = ()
) -> list[ReferenceMesh]:
    """The source meshes of some rows of a dataset, normalised as their points (module docstring).

    Args:
        dataset: the dataset folder.
        indices: rows to recover.
        archives: Sweet Home 3D ``.sh3f`` files or folders, for ``archive!member`` rows.

    Returns:
        one :class:`ReferenceMesh` per index, in order (``error`` set where the source is missing, a point set, or
        has changed since the build).
    """
    from shapelatent.io.meshes import read_mesh

    ds = ShapeDataset(dataset)
    cfg = SamplingConfig.from_dict(ds.info["sampling"])
    out: list[ReferenceMesh] = []
    with tempfile.TemporaryDirectory(prefix=".reference-", dir=ds.root) as work:
        rows = _rows(ds, archives, Path(work))
        for i in indices:
            row = rows[int(i)]
            if row.error:
                out.append(ReferenceMesh(int(i), None, None, row.error))
                continue
            if row.family is not None:
                from shapelatent.data.procedural import generate_chair

                mesh = generate_chair(int(row.source.split(":", 1)[1]), row.family).mesh
            else:
                mesh = read_mesh(str(row.path))
            v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
            seeds = [cfg.seed + row.index + k for k in range(8)]
            c, s, kind, resid = recover_transform(v, f, row.stored, cfg, seeds, row.rotation)
            if kind == "fitted" and not resid < FIT_TOLERANCE:
                out.append(ReferenceMesh(int(i), None, None, "the source mesh has changed since the build"))
                continue
            if row.rotation is not None:
                v = v @ np.asarray(row.rotation, dtype=np.float64).reshape(3, 3).T
            out.append(ReferenceMesh(int(i), (v - c) / s, f, ""))
    return out
