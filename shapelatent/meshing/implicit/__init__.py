"""Meshes from an implicit function f(x) -> logit (an occupancy decoder): MISE refinement, then marching cubes.

The level set ``{x : f(x) = threshold}`` of a function that is positive inside (an occupancy logit; a negated
signed distance works too) is extracted on a cube ``[-box, box]^3`` in the normalised frame, where shapes fit the
unit sphere:

* :mod:`.mise`: :func:`evaluate_grid`, the hierarchical grid evaluation of Occupancy Networks (MISE) with surface
  tracing, and its guarantee and limit (thin free-floating parts between the coarse grid points are lost);
* :mod:`.extract`: :func:`marching_cubes_grid` (padded, so watertight) and :func:`extract_mesh`, the whole pipeline.

Example::

    mesh = extract_mesh(lambda x: head(code.expand(len(x), -1), x), resolution=128)
    mesh.to_trimesh().export("chair.ply")
"""

from shapelatent.meshing.implicit.extract import IMPLICIT_NORMALS, ImplicitMesh, extract_mesh, marching_cubes_grid
from shapelatent.meshing.implicit.mise import DEFAULT_BATCH_POINTS, ImplicitFn, ImplicitGrid, evaluate_grid

__all__ = [
    "DEFAULT_BATCH_POINTS",
    "IMPLICIT_NORMALS",
    "ImplicitFn",
    "ImplicitGrid",
    "ImplicitMesh",
    "evaluate_grid",
    "extract_mesh",
    "marching_cubes_grid",
]
