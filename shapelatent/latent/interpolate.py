"""Paths through latent space: linear and spherical interpolation between codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["METHODS", "LatentPath", "interpolate_codes", "latent_path", "slerp"]

METHODS = ("linear", "slerp")


class LatentPath(NamedTuple):
    """Codes along a path through several anchors.

    Attributes:
        codes: (S, Z) float32, S = (len(anchors) - 1) * (steps - 1) + 1.
        t: (S,) position in [0, 1] within each step's segment.
        segment: (S,) int64 index of the segment (anchor i -> i + 1) each step lies on.
    """

    codes: np.ndarray
    t: np.ndarray
    segment: np.ndarray


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation on the great circle through a and b, lengths interpolated linearly.

    Args:
        a, b: (Z,) codes.
        t: (S,) in [0, 1].

    Returns:
        (S, Z) float64. Falls back to linear interpolation when a and b are (anti)parallel within 1e-7 rad
        or one of them is zero (the great circle is then undefined); this is exact, not approximate.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if omega < 1e-7 or np.pi - omega < 1e-7:
        return (1 - t) * a + t * b
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def interpolate_codes(a: np.ndarray, b: np.ndarray, steps: int, method: str = "linear") -> np.ndarray:
    """``steps`` codes from a (t = 0) to b (t = 1), both included.

    Args:
        a, b: (Z,) codes.
        steps: S >= 2.
        method: ``linear`` or ``slerp``.

    Returns:
        (S, Z) float32.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (both endpoints are included); got {steps!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"codes must be two vectors of the same size Z; got {a.shape} and {b.shape}")
    t = np.linspace(0.0, 1.0, steps)
    out = slerp(a, b, t) if method == "slerp" else (1 - t[:, None]) * a + t[:, None] * b
    return out.astype(np.float32)


def latent_path(anchors: Sequence[np.ndarray], steps: int, method: str = "linear") -> LatentPath:
    """A path through two or more anchor codes, ``steps`` codes per segment (joins not repeated).

    Args:
        anchors: K >= 2 codes, each (Z,); consecutive anchors must differ.
    """
    if len(anchors) < 2:
        raise ValueError(f"a path needs at least two shapes; got {len(anchors)}")
    for i in range(len(anchors) - 1):
        if np.array_equal(np.asarray(anchors[i]), np.asarray(anchors[i + 1])):
            raise ValueError(
                f"shapes {i} and {i + 1} of the path have the same code (A == B); interpolating between a shape "
                "and itself gives the same shape at every step: choose two different shapes."
            )
    codes, ts, segs = [], [], []
    for i in range(len(anchors) - 1):
        seg = interpolate_codes(anchors[i], anchors[i + 1], steps, method)
        t = np.linspace(0.0, 1.0, steps)
        start = 0 if i == 0 else 1
        codes.append(seg[start:])
        ts.append(t[start:])
        segs.append(np.full(steps - start, i, dtype=np.int64))
    return LatentPath(np.concatenate(codes), np.concatenate(ts), np.concatenate(segs))
