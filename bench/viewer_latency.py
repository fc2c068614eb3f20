"""How immediate the GUI viewer feels on software rendering (issue 14's goals: >= 15 fps for a 20k-triangle mesh,
slider move -> points shown <= 50 ms, -> mesh shown <= 1 s at 128^3).

Runs the real windows in this process on $DISPLAY (start one with ``xvfb-run -s '-screen 0 1280x800x24'``):

1. frame rate: a 20,000-triangle torus in a scene widget, turned a little every tick, for ``--seconds``: the
   frames Mesa presents per second (``presented_fps``, counted by Mesa itself, see :func:`count_presented_frames`),
   and the GUI loop's ticks per second (an upper bound: a tick is not always a frame);
2. slider latency: an interpolation window on ``--model`` (with ``--store`` for ids), ``set_t`` to ``--moves``
   random t, one at a time: seconds until the decoded points are in the scene, and until the mesh (the model's
   default mesher, MISE 128^3 for an occupancy head, made in the mesher process) is in the scene.

    xvfb-run -a -s "-screen 0 1280x800x24" python bench/viewer_latency.py --model runs/demo/head80 \\
        --store runs/demo/store --refs chair_000003 chair_000021 --json runs/bench/viewer_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from common import write_result  # bench/common.py


def count_presented_frames(dump: Path) -> None:
    """Ask Mesa to log the frame rate it presents (set before Open3D starts its renderer).

    Ticks of the GUI loop are not frames: Filament's OpenGL backend renders on its own thread and may drop
    frames while the loop ticks at ~100 Hz. Mesa counts what reaches the window: the gallium HUD for OpenGL
    (llvmpipe; not drawn, dumped to ``dump/fps``) and Mesa's overlay layer for Vulkan (lavapipe; ``dump/vk.csv``).
    """
    dump.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        GALLIUM_HUD="fps",
        GALLIUM_HUD_VISIBLE="false",
        GALLIUM_HUD_PERIOD="0.25",
        GALLIUM_HUD_DUMP_DIR=str(dump),
        VK_INSTANCE_LAYERS="VK_LAYER_MESA_overlay",
        VK_LAYER_MESA_OVERLAY_CONFIG=f"output_file={dump / 'vk.csv'},fps,no_display",
    )


def presented_fps(dump: Path) -> dict:
    """Median and minimum presented frames/s after the first second (start-up), from the files Mesa wrote."""
    values: list[float] = []
    if (dump / "fps").exists():  # OpenGL: one value per 0.25 s
        values = [float(x) for x in (dump / "fps").read_text().split()][4:]
        api = "OpenGL (gallium HUD)"
    elif (dump / "vk.csv").exists():  # Vulkan: a header, then one row per 0.5 s (fps is the 3rd column)
        rows = (dump / "vk.csv").read_text().strip().splitlines()[1:]
        values = [float(r.split(",")[2]) for r in rows][2:]
        api = "Vulkan (Mesa overlay layer)"
    else:
        return {"presented_fps": None, "why": "no Mesa frame counter ran (not a Mesa driver?)"}
    if not values:
        return {"presented_fps": None, "why": "the run was too short for the frame counter"}
    return {"presented_fps": float(np.median(values)), "presented_fps_min": float(np.min(values)), "counted_by": api}


def frame_time(seconds: float) -> dict:
    import open3d as o3d

    from viewers.gui.base import GuiWindow, mesh_geometry, run_app

    torus = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=0.6, tube_radius=0.25, radial_resolution=100, tubular_resolution=100
    )
    verts, faces = np.asarray(torus.vertices), np.asarray(torus.triangles)

    class W(GuiWindow):
        def __init__(self) -> None:
            super().__init__("bench frame time", 1000, 700)
            self.sw = self.scene_widget()
            self.window.add_child(self.sw)
            self.sw.scene.add_geometry("m", mesh_geometry(verts, faces), self.materials()[0])
            self.stamps: list[float] = []

        def busy(self) -> bool:
            return True

        def tick(self) -> bool:
            self.stamps.append(time.perf_counter())
            a = 0.03 * len(self.stamps)
            rot = np.eye(4)
            rot[:3, :3] = o3d.geometry.get_rotation_matrix_from_xyz((0.3, a, 0.0))
            self.sw.scene.set_geometry_transform("m", rot)
            if self.stamps[-1] - self.stamps[0] > seconds:
                self.close()
            return True

    w = W()
    run_app()
    stamps = np.asarray(w.stamps[10:])
    dt = np.diff(stamps)
    return {
        "triangles": int(len(faces)),
        "frames": int(len(dt)),
        "median_tick_ms": float(1000 * np.median(dt)),
        "ticks_per_s": float(len(dt) / (stamps[-1] - stamps[0])),
    }


def frame_rate(seconds: float) -> dict:
    """:func:`frame_time` in a child process with Mesa's frame counters on; its files are complete when it exits."""
    import subprocess
    import tempfile

    dump = Path(tempfile.mkdtemp(prefix="viewer_fps_"))
    cmd = [
        sys.executable,
        __file__,
        "--model",
        "-",
        "--refs",
        "-",
        "--seconds",
        str(seconds),
        "--frame-only",
        str(dump),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + seconds)
    if done.returncode != 0:
        raise RuntimeError(f"the frame-rate window failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), **presented_fps(dump)}


#: SL_PREVIEW=64: the interpolation window shows a 64^3 implicit preview before the 128^3 mesh (default 0: off)
PREVIEW: int | None = int(os.environ.get("SL_PREVIEW", "0")) or None


def slider(model: str, store: str | None, refs: list[str], moves: int, seed: int) -> dict:
    from viewers.gui.base import run_app
    from viewers.gui.interp import InterpolationWindow
    from viewers.gui.session import session_from_refs

    session = session_from_refs(model, refs, store, preview_resolution=PREVIEW)
    ts = np.random.default_rng(seed).uniform(0, 1, moves)
    rows: list[dict] = []

    class Driver(InterpolationWindow):
        def busy(self) -> bool:
            return True

        def tick(self) -> bool:
            if not hasattr(self, "_i"):
                self._i, self._t0 = -1, time.perf_counter()
            if self._i >= 0 and not self.ready():
                return False
            if self._i >= 0:
                rows.append(dict(self.latency))
            self._i += 1
            if self._i >= len(ts):
                self.close()
                return False
            self.set_t(float(ts[self._i]))
            return True

    Driver(session, display="mesh", width=1000, height=700)
    run_app()
    pts = [r["points_s"] for r in rows]
    mesh = [r["mesh_s"] for r in rows if "mesh_s" in r]
    full = [r["full_mesh_s"] for r in rows if "full_mesh_s" in r]
    return {
        "mesher": session.mesher,
        "preview_resolution": session.preview_resolution if session.has_preview else None,
        "resolution": session.resolution,
        "full_mesh_s_median": float(np.median(full)) if full else None,
        "full_mesh_s_max": float(np.max(full)) if full else None,
        "moves": len(rows),
        "points_ms_median": float(1000 * np.median(pts)),
        "points_ms_max": float(1000 * np.max(pts)),
        "first_mesh_s_median": float(np.median(mesh)) if mesh else None,
        "first_mesh_s_max": float(np.max(mesh)) if mesh else None,
        "full_mesh_s_per_move": [round(float(x), 3) for x in full],  # the first move also waits for the mesher's start
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--store")
    ap.add_argument("--refs", nargs="+", required=True)
    ap.add_argument("--moves", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--frame-only", type=Path, help=argparse.SUPPRESS)  # internal: see frame_rate()
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        sys.exit("needs a display: run under xvfb-run -a -s '-screen 0 1280x800x24'")
    if args.frame_only is not None:  # the child of frame_rate(): counts its frames, prints them, exits
        count_presented_frames(args.frame_only)
        print(json.dumps(frame_time(args.seconds)))
        return
    results = {
        "frame": frame_rate(args.seconds),
        "slider": slider(args.model, args.store, args.refs, args.moves, args.seed),
    }
    print(results)
    if args.json:
        write_result(args.json, "viewer_latency", results, vars(args))


if __name__ == "__main__":
    main()
