"""Pictures made of renders: contact sheets (PNG), animated GIFs, interpolation folders and one-row strips.

Every panel comes from :func:`viewers.backends.render_images`, so all panels of a sheet and all frames of a GIF
share one camera, one lighting and one colouring and compare directly. Files are written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shapelatent.io.atomic import atomic_write
from viewers.backends import check_mode_size, render_images
from viewers.camera import BACKGROUND

__all__ = [
    "FolderRenders",
    "render_folder",
    "render_gif",
    "render_strip",
    "render_views",
    "save_gif",
    "save_sheet",
]


class FolderRenders(NamedTuple):
    """What :func:`render_folder` wrote.

    Attributes:
        sheet: the contact sheet PNG.
        gif: the animated GIF, or None when not asked for.
        mode: ``"mesh"`` when every step had a mesh, else ``"points"``.
    """

    sheet: Path
    gif: Path | None
    mode: str


def _font(px: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), px)


def _fit(draw: Any, text: str, font: Any, width: float) -> str:
    """``text``, or its end after an ellipsis when it is wider than ``width`` pixels (file paths keep their name)."""
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)  # the shortest tail cut that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if draw.textlength("…" + text[mid:], font=font) <= width:
            hi = mid
        else:
            lo = mid + 1
    return "…" + text[lo:]


def _sheet(images: list[np.ndarray], titles: Sequence[str] | None, ncols: int | None, title: str | None = None):
    from PIL import Image, ImageDraw

    n = len(images)
    h, w = images[0].shape[:2]
    cols = max(1, min(n, ncols if ncols else min(n, 6)))
    rows = -(-n // cols)
    font_px = max(10, h // 18)
    title_h = int(font_px * 1.6) if titles else 0
    head_px = int(font_px * 1.3)
    head_h = int(head_px * 2.0) if title else 0
    sheet = Image.new("RGB", (cols * w, head_h + rows * (h + title_h)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(font_px)
    if title:
        head_font = _font(head_px)
        line = _fit(draw, title, head_font, cols * w - 8)
        draw.text((cols * w / 2, head_h / 2), line, fill=(0, 0, 0), font=head_font, anchor="mm")
    for i, img in enumerate(images):
        x, y = (i % cols) * w, head_h + (i // cols) * (h + title_h)
        sheet.paste(Image.fromarray(img), (x, y + title_h))
        if titles:
            text = _fit(draw, str(titles[i]), font, w - 4)
            draw.text((x + w / 2, y + title_h / 2), text, fill=(30, 30, 30), font=font, anchor="mm")
    return sheet


def render_views(
    items: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: tuple[int, int] = (320, 320),
    mode: str = "auto",
    renderer: str = "auto",
    title: str | None = None,
) -> Path:
    """Render several shapes into one contact-sheet PNG (titles over the panels), written atomically.

    Args:
        items: see :func:`viewers.backends.render_images`.
        path: the PNG to write.
        titles: one title per item, drawn over its panel; None for no titles.
        ncols: panels per row (default: all in one row up to 6).
        size: ``(width, height)`` of each panel.
        mode, renderer: see :func:`viewers.backends.render_images`.
        title: one line over the whole sheet; None for none.

    Returns:
        The path written.

    Raises:
        ValueError: titles of the wrong length, ``ncols < 1``, or anything ``render_images`` rejects.
    """
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"titles must have one entry per item ({len(items)}); got {len(titles)}")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    images = render_images(items, size=size, mode=mode, renderer=renderer)
    return save_sheet(images, path, titles=titles, ncols=ncols, title=title)


def render_strip(
    items: Sequence[Any],
    titles: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
    *,
    size: tuple[int, int] = (256, 256),
    renderer: str = "auto",
) -> Path:
    """Render shapes side by side in one row, a title over each panel and an optional one over the strip.

    This is the picture drawer the library's jobs take (``draw=`` of ``shapelatent.latent.runs`` and of
    ``shapelatent.evaluate.run_evaluation``; see ``shapelatent.viz.drawer.StripDrawer``): decoded point clouds
    are drawn as points, mesh files as meshes.

    Args:
        items: (P, 3) float arrays, mesh or point-cloud files, ``(vertices, faces)`` tuples or trimesh meshes.
        titles: one per item.
        path: the PNG to write.
        title: a line over the whole strip, or None.
        size: ``(width, height)`` of each panel.
        renderer: see :func:`viewers.backends.render_images`.

    Returns:
        The path written.
    """
    return render_views(items, path, titles=titles, ncols=max(1, len(items)), size=size, renderer=renderer, title=title)


def save_sheet(
    images: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> Path:
    """Paste images (each ``(H, W, 3) uint8``, one size) into a PNG contact sheet, titles over the panels and an
    optional ``title`` over the sheet."""
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image ({len(images)}); got {len(titles)}")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    sheet = _sheet(list(images), titles, ncols, title)
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG", optimize=True))


def render_gif(
    frames_items: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    fps: float = 6,
    size: tuple[int, int] = (320, 320),
    loop: bool = True,
    mode: str = "auto",
    renderer: str = "auto",
) -> Path:
    """Render one frame per shape (same camera) into an animated GIF, written atomically.

    Args:
        frames_items: the shapes in frame order (see :func:`viewers.backends.render_images` for the accepted kinds).
        path: the GIF to write.
        fps: frames per second (0 < fps <= 50).
        size: ``(width, height)`` of each frame.
        loop: loop forever (True) or play once.
        mode, renderer: see :func:`viewers.backends.render_images`.

    Returns:
        The path written.
    """
    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")
    images = render_images(frames_items, size=size, mode=mode, renderer=renderer)
    return save_gif(images, path, fps, loop)


def save_gif(images: Sequence[np.ndarray], path: str | os.PathLike[str], fps: float = 6, loop: bool = True) -> Path:
    """Write images (each ``(H, W, 3) uint8``, one size) as an animated GIF, atomically; returns the path."""
    from PIL import Image

    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")

    frames = [Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for img in images]
    extra: dict[str, Any] = {"loop": 0} if loop else {}

    def write(tmp: Path) -> None:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(round(1000 / fps)),
            disposal=1,
            **extra,
        )

    return atomic_write(path, write)


def _folder_items(folder: Path, mode: str) -> tuple[list[Path], list[str], str]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder}: no manifest.json (expected the output folder of `shapelatent interpolate`)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{manifest_path}: not valid JSON ({exc})") from exc
    rows = manifest.get("steps") if isinstance(manifest, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "points" in r for r in rows):
        raise ValueError(f"{manifest_path}: expected a non-empty 'steps' list whose rows name a 'points' file")
    use_mesh = mode == "mesh" or (mode == "auto" and all("mesh" in r for r in rows))
    if mode == "mesh" and not all("mesh" in r for r in rows):
        missing = [i for i, r in enumerate(rows) if "mesh" not in r]
        raise ValueError(f"{manifest_path}: mode='mesh' but steps {missing} have no mesh")
    files = [folder / (r["mesh"] if use_mesh else r["points"]) for r in rows]
    titles = [f"t={r['t']:.2f}" if isinstance(r.get("t"), (int, float)) else f"step {i}" for i, r in enumerate(rows)]
    return files, titles, "mesh" if use_mesh else "points"


def render_folder(
    folder: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    gif: str | os.PathLike[str] | None | bool = True,
    size: tuple[int, int] = (320, 320),
    ncols: int | None = None,
    mode: str = "auto",
    fps: float = 6,
    renderer: str = "auto",
) -> FolderRenders:
    """Render an interpolation folder (``shapelatent interpolate`` output) as a contact sheet and a GIF.

    The folder's ``manifest.json`` has ``steps`` rows naming each step's ``points`` PLY and, when meshing
    succeeded, its ``mesh``. In ``"auto"`` mode meshes are drawn when every step has one, else points (so
    all frames look alike).

    Args:
        folder: the interpolation output folder.
        out: the contact sheet PNG (default ``folder/render.png``).
        gif: the GIF path, True for ``folder/render.gif``, or None/False for no GIF.
        size, ncols, mode, renderer: see :func:`render_views`.
        fps: GIF frames per second.

    Returns:
        :class:`FolderRenders` with the paths written and the mode used.

    Raises:
        FileNotFoundError: no folder or no ``manifest.json``.
        ValueError: a malformed manifest, or ``mode="mesh"`` with steps lacking a mesh.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files, titles, used = _folder_items(root, mode)
    sheet_path = Path(out) if out is not None else root / "render.png"
    if not 0 < fps <= 50:
        raise ValueError(f"fps must be in (0, 50]; got {fps}")
    size = check_mode_size(mode, size)
    images = render_images(files, size=size, mode="auto", renderer=renderer)
    save_sheet(images, sheet_path, titles=titles, ncols=ncols)
    gif_path: Path | None = None
    if gif:
        gif_path = root / "render.gif" if gif is True else Path(gif)
        save_gif(images, gif_path, fps, loop=True)
    return FolderRenders(sheet_path, gif_path, used)
