"""How library jobs get pictures of shapes without drawing them: a :class:`StripDrawer` handed in by the caller.

The library draws 2-D plots itself (the loss curve in :mod:`shapelatent.viz.figures`, the latent map in
:mod:`shapelatent.viz.latentmap`). Every picture of 3-D shapes (decoded points, meshes) is rendered by the
``viewers`` package (Open3D), which the library never imports. A job that writes such pictures takes a ``draw``
argument; the CLI passes ``viewers.render.render_strip``, and ``draw=None`` writes no picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["StripDrawer"]


class StripDrawer(Protocol):
    """Draws shapes side by side in one row into a PNG and returns the path written.

    Args:
        items: the shapes: (P, 3) float point clouds, or mesh / point-cloud file paths.
        titles: one caption per item.
        path: the PNG to write (atomically).
        title: a line over the whole picture, or None.
    """

    def __call__(
        self, items: Sequence[Any], titles: Sequence[str], path: str | os.PathLike[str], title: str | None = None
    ) -> Path: ...
