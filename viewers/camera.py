"""The one look every headless render shares: a fixed camera, fixed lights and fixed colours.

- camera: front-left-above (``EYE_DIR``), Y up, +Z towards the viewer, a vertical field of view of ``FOV_DEG``
  framing the unit sphere with a 10% margin, whatever the panel's aspect ratio;
- meshes: one material colour, lit by a sun light from the upper left front (``SUN_DIR``) plus ambient light,
  flat on sharp edges, smooth elsewhere, both sides drawn;
- point clouds: unlit points coloured by height (Y) with a fixed colormap over ``[-1, 1]``.

Both backends of :mod:`viewers.backends` take their camera from here, so their pictures frame a shape alike.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKGROUND",
    "EYE_DIR",
    "FOV_DEG",
    "MESH_COLOR",
    "POINT_CMAP",
    "SUN_DIR",
    "camera_distance",
    "eye_position",
    "height_colors",
    "pinhole",
    "vertical_fov",
]

BACKGROUND = (255, 255, 255)
MESH_COLOR = (0.62, 0.70, 0.84)  # one material colour for every mesh (linear RGB)
POINT_CMAP = "viridis"  # points coloured by height over the fixed range [-1, 1]
FOV_DEG = 30.0  # vertical field of view
EYE_DIR = np.array([-1.0, 0.75, 1.6])  # front-left-above; +Z is the front, Y is up
SUN_DIR = (0.4, -0.8, -0.6)  # where the sun light points (from upper left front)


def camera_distance() -> float:
    """Distance from the origin at which the unit sphere fits inside the panel with a small margin."""
    return float(1.1 / np.sin(np.radians(FOV_DEG / 2)))


def eye_position() -> np.ndarray:
    """The camera's position: (3,) float64, along ``EYE_DIR`` at :func:`camera_distance`."""
    return EYE_DIR / np.linalg.norm(EYE_DIR) * camera_distance()


def vertical_fov(width: int, height: int) -> float:
    """The vertical field of view in degrees for a ``width`` x ``height`` panel: ``FOV_DEG`` unless the panel is
    taller than wide, where it widens so that the horizontal field of view is ``FOV_DEG``."""
    if height <= width:
        return FOV_DEG
    return float(np.degrees(2 * np.arctan(np.tan(np.radians(FOV_DEG / 2)) * height / width)))


def pinhole(width: int, height: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The fixed camera as pinhole parameters, looking at the origin from :func:`eye_position`.

    Returns:
        ``extrinsic`` (4, 4) float64, world -> camera (x right, y down, z forward), and ``(f, cx, cy)`` in pixels:
        the focal length that gives ``FOV_DEG`` across the panel's shorter side, and the principal point.
    """
    eye = eye_position()
    forward = -eye / np.linalg.norm(eye)  # looking at the origin
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # world -> camera (x right, y down, z forward)
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rot
    extrinsic[:3, 3] = -rot @ eye
    f = (min(width, height) / 2) / np.tan(np.radians(FOV_DEG / 2))
    return extrinsic, (float(f), width / 2 - 0.5, height / 2 - 0.5)


def height_colors(points: np.ndarray) -> np.ndarray:
    """Colours of points by height: points (P, 3) float -> (P, 3) float64 RGB in [0, 1] (``POINT_CMAP`` over
    Y in [-1, 1])."""
    from matplotlib import colormaps

    h = np.clip((points[:, 1] + 1.0) / 2.0, 0.0, 1.0)  # (P,) height over the fixed range [-1, 1]
    return np.asarray(colormaps[POINT_CMAP](h))[:, :3]
