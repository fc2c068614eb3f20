"""Headless renders of meshes and point clouds with Open3D: the one entry point, re-exporting its three parts.

Every panel is drawn with the same fixed camera (front-left-above, Y up, +Z towards the viewer), the same
lighting and the same colours, so panels of a contact sheet and frames of a GIF compare directly:

- meshes: one material colour, lit (a sun light plus ambient light), flat on sharp edges, smooth elsewhere;
- point clouds: unlit points coloured by height (Y) with a fixed colormap over ``[-1, 1]``.

Shapes are expected to be normalised to the unit sphere (as every shapelatent dataset and decoder output
is); others are re-centred and scaled first (:mod:`viewers.shapes`). The camera frames the unit sphere with a
10% margin.

The parts:

- :mod:`viewers.camera`: the fixed camera, lights and colours;
- :mod:`viewers.shapes`: the accepted items (files, arrays, meshes) turned into shapes to draw;
- :mod:`viewers.backends`: Open3D's OpenGL ``Visualizer`` (EGL offscreen, the default) and Filament
  ``OffscreenRenderer`` (Vulkan), each probed once in a subprocess; :class:`RendererUnavailableError` names
  the packages to install when neither can start. There is no silent fallback;
- :mod:`viewers.sheets`: contact sheets, GIFs, interpolation folders and one-row strips.
"""

from __future__ import annotations

from viewers.backends import (
    DEBIAN_PACKAGES,
    RENDERERS,
    RendererUnavailableError,
    legacy_available,
    offscreen_available,
    render_images,
)
from viewers.shapes import MODES
from viewers.sheets import (
    FolderRenders,
    render_folder,
    render_gif,
    render_strip,
    render_views,
    save_gif,
    save_sheet,
)

__all__ = [
    "DEBIAN_PACKAGES",
    "MODES",
    "RENDERERS",
    "FolderRenders",
    "RendererUnavailableError",
    "legacy_available",
    "offscreen_available",
    "render_folder",
    "render_gif",
    "render_images",
    "render_strip",
    "render_views",
    "save_gif",
    "save_sheet",
]
