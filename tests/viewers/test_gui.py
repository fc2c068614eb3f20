"""The GUI viewer (Open3D's gui toolkit): its display-free parts directly, and the real windows under Xvfb (marker
``display``), driven with xdotool: slider drags, button clicks, picking on the map, Escape to close.

The windows write where their widgets are (``SHAPELATENT_VIEW_LAYOUT``) once their first state is on screen, so the
clicks land on the slider, the buttons and the codes wherever the layout puts them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from shapelatent.latent.store import LatentStore
from tests.viewers.conftest import xvfb_display
from viewers.gui.picking import pick, project_to_pixels
from viewers.gui.session import Endpoint, InterpSession, session_from_folder, session_from_refs
from viewers.gui.worker import LatestWorker

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- picking
def _look_at(eye: np.ndarray, center: np.ndarray, up: np.ndarray) -> np.ndarray:
    f = (center - eye) / np.linalg.norm(center - eye)
    s = np.cross(f, up) / np.linalg.norm(np.cross(f, up))
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _perspective(fovy_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1 / np.tan(np.radians(fovy_deg) / 2)
    return np.array(
        [
            [f / aspect, 0, 0, 0],
            [0, f, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0, 0, -1, 0],
        ]
    )


def test_projection_puts_the_look_at_centre_mid_widget_and_up_is_up() -> None:
    view = _look_at(np.array([0.0, 0, 5]), np.zeros(3), np.array([0.0, 1, 0]))
    proj = _perspective(30, 640 / 480, 0.1, 100)
    px, depth = project_to_pixels(np.array([[0.0, 0, 0], [0, 0.5, 0], [0.5, 0, 0], [0, 0, 10]]), view, proj, 640, 480)
    assert np.allclose(px[0], [320, 240])
    assert px[1, 1] < 240 and np.isclose(px[1, 0], 320)  # +Y is up: smaller pixel row
    assert px[2, 0] > 320  # +X is right
    assert depth[0] > 0 and depth[3] < 0  # behind the camera


def test_pick_matches_a_brute_force_search_over_pixels() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(300, 3))
    view = _look_at(np.array([2.0, 1.5, 4]), np.zeros(3), np.array([0.0, 1, 0]))
    proj = _perspective(30, 800 / 600, 0.1, 100)
    for _ in range(40):
        click = (float(rng.uniform(0, 800)), float(rng.uniform(0, 600)))
        got = pick(pts, click, view, proj, 800, 600, radius=15)
        best, best_d = None, np.inf  # the oracle: one point at a time, in homogeneous coordinates
        for i, p in enumerate(pts):
            clip = proj @ view @ np.append(p, 1.0)
            x = (clip[0] / clip[3] + 1) / 2 * 800
            y = (1 - clip[1] / clip[3]) / 2 * 600
            d = np.hypot(x - click[0], y - click[1])
            if d < best_d - 0.5 or (
                abs(d - best_d) <= 0.5 and (view @ np.append(p, 1))[2] > (view @ np.append(pts[best], 1))[2]
            ):
                best, best_d = i, d
        assert got == (best if best_d <= 15 else None)


# ---------------------------------------------------------------------------------------------- the session
@pytest.fixture(scope="module")
def store(tiny_run: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gui") / "store"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shapelatent.cli.main",
            "encode",
            "--model",
            str(tiny_run),
            str(tiny_data),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_session_decodes_any_t_and_matches_the_endpoints(tiny_run: Path, store: Path) -> None:
    st = LatentStore.open(store)
    ids = st.ids[:3]
    s = session_from_refs(tiny_run, list(ids), store, mesher="none")
    a, b, c = (st.codes[st.index_of(i)] for i in ids)
    assert np.allclose(s.code_at(0.0), a) and np.allclose(s.code_at(1.0), c)
    assert np.allclose(s.code_at(0.5), b, atol=1e-6)  # three anchors: the middle one at t = 0.5
    assert np.allclose(s.code_at(0.25), (a + b) / 2, atol=1e-6)
    pts, _ = s.points_at(0.37)
    assert pts.shape == (128, 3) and np.isfinite(pts).all()
    near = s.neighbours_at(0.0, 2)
    assert near[0][0] == ids[0] and near[0][2] == pytest.approx(0.0, abs=1e-5)
    s.set_method("slerp")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    assert np.linalg.norm(s.code_at(0.25)) == pytest.approx((na + nb) / 2, rel=1e-5)  # slerp: lengths linear
    assert s.mesh_at(0.3) is None  # mesher none
    with pytest.raises(ValueError, match="occupancy head"):
        s.set_mesher("implicit")
    with pytest.raises(ValueError, match="method"):
        s.set_method("cubic")


def test_session_caches_meshes_per_t_and_settings(tiny_run: Path, store: Path) -> None:
    st = LatentStore.open(store)
    s = session_from_refs(tiny_run, list(st.ids[:2]), store, mesher="poisson", cache=2)
    m1 = s.mesh_at(0.5)
    assert len(m1.faces) > 0
    assert s.cached_mesh(0.5) is m1 and s.mesh_at(0.5) is m1
    s.mesh_at(0.1)
    s.mesh_at(0.2)  # the cache holds 2: t = 0.5 is the oldest and goes
    assert s.cached_mesh(0.5) is None and s.cached_mesh(0.2) is not None
    s.set_method("slerp")
    assert s.cached_mesh(0.2) is None  # another path: another key


def test_session_implicit_preview_and_full_meshes_are_cached_apart(
    tiny_run: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shapelatent.latent.implicit_mesh as implicit_mesh

    calls: list[int] = []

    def fake_mesh(model, code, *, resolution=128, **_kw):
        calls.append(resolution)
        return ("mesh", resolution)

    monkeypatch.setattr(implicit_mesh, "mesh_from_code", fake_mesh)
    st = LatentStore.open(store)
    s = session_from_refs(tiny_run, list(st.ids[:2]), store, mesher="poisson", preview_resolution=64)
    assert not s.has_preview  # only implicit meshes come in two passes
    s.mesher = "implicit"  # the tiny model has no head; the mesher is faked above
    assert s.has_preview and s.mesh_key(0.5, True)[-1] == 64 and s.mesh_key(0.5)[-1] == 128
    assert s.mesh_at(0.5, preview=True) == ("mesh", 64) and s.mesh_at(0.5) == ("mesh", 128)
    assert s.cached_mesh(0.5, True) == ("mesh", 64) and s.cached_mesh(0.5) == ("mesh", 128)
    s.mesh_at(0.5, preview=True)
    assert calls == [64, 128]  # the second preview came from the cache
    no_preview = session_from_refs(tiny_run, list(st.ids[:2]), store, mesher="poisson")  # the default: no preview
    no_preview.mesher = "implicit"
    assert not no_preview.has_preview and no_preview.mesh_key(0.5, True) == no_preview.mesh_key(0.5)


def test_session_from_a_written_folder_continues_its_path(tiny_run: Path, tmp_path: Path) -> None:
    codes = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    steps = [{"t": t, "segment": 0, "code": c.tolist()} for t, c in zip((0.0, 0.5, 1.0), codes, strict=True)]
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {"kind": "interpolation", "method": "linear", "shapes": [{"ref": "a"}, {"ref": "b"}], "steps": steps}
        )
    )
    with pytest.raises(FileNotFoundError, match="--model"):
        session_from_folder(tmp_path)
    s = session_from_folder(tmp_path, tiny_run, mesher="none")
    assert [e.ref for e in s.anchors] == ["a", "b"]
    assert np.allclose(s.code_at(0.0), codes[0]) and np.allclose(s.code_at(1.0), codes[2])
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "interpolation", "steps": [{"t": 0.0}]}))
    with pytest.raises(ValueError, match="no codes"):
        session_from_folder(tmp_path, tiny_run)


def test_session_refuses_equal_neighbours_and_single_anchor(tiny_run: Path, store: Path) -> None:
    st = LatentStore.open(store)
    s = session_from_refs(tiny_run, list(st.ids[:2]), store, mesher="none")
    e = s.anchors[0]
    with pytest.raises(ValueError, match="same code"):
        InterpSession(s.loaded, [e, Endpoint("x", "x", "", e.code.copy())])
    with pytest.raises(ValueError, match="at least two"):
        s.set_anchors([e])


def test_latest_worker_runs_the_newest_request_only() -> None:
    got: list[tuple[object, object]] = []
    gate = threading.Event()
    worker = LatestWorker(lambda key, result, error: got.append((key, result)))

    def slow() -> str:
        gate.wait(5)
        return "first"

    worker.submit(1, slow)
    time.sleep(0.1)  # the first is running
    for k in range(2, 6):
        worker.submit(k, lambda k=k: f"r{k}")  # each replaces the one before (none has started)
    gate.set()
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [(1, "first"), (5, "r5")]
    worker.submit(6, lambda: 1 / 0)
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got[2] == (6, None)
    worker.stop()


# ---------------------------------------------------------------------------------------------- under Xvfb
TOOLS = ("Xvfb", "xdotool")


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb_display(TOOLS, "xvfb xdotool") as d:
        yield d


class _Stalled(Exception):
    """The viewer reported the software-Vulkan renderer hang (exit code 3, see ``viewers.gui.base``)."""


def _attempts(body, tmp: Path, tries: int = 3) -> None:
    """Run ``body(folder)``; a renderer hang (exit code 3, a Mesa lavapipe bug the viewer detects and reports)
    starts it over in a fresh process, at most ``tries`` times. Any other failure fails at once."""
    for attempt in range(tries):
        try:
            body(tmp / f"try{attempt}")
            return
        except _Stalled as exc:
            last = exc
    pytest.fail(f"the renderer hung in {tries} launches in a row: {last}")


class _App:
    """``shapelatent view ...`` on the Xvfb display; its layout file says where to click."""

    def __init__(self, display: str, args: list[str], tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.layout_path = tmp / "layout.json"
        self.env = {
            **os.environ,
            "DISPLAY": display,
            "PYTHONPATH": str(REPO),
            "SHAPELATENT_VIEW_LAYOUT": str(self.layout_path),
        }
        self.env.pop("WAYLAND_DISPLAY", None)
        cmd = [sys.executable, "-m", "shapelatent.cli.main", "view", *args, "--export-dir", str(tmp / "exports")]
        self.exports = tmp / "exports"
        self.err = open(tmp / "stderr.txt", "w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=self.err)
        self.layout = self._wait_layout()

    def _wait_layout(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.layout_path.exists():
                return json.loads(self.layout_path.read_text())
            self._check_alive()
            time.sleep(0.1)
        pytest.fail(f"no layout after {timeout} s: {self.stderr()}")

    def xdo(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)

    def click(self, x: float, y: float, shift: bool = False) -> None:
        self.xdo("mousemove", str(int(x)), str(int(y)))
        time.sleep(0.2)
        if shift:
            self.xdo("keydown", "shift")
        self.xdo("mousedown", "1")  # a press and a release apart: GLFW misses xdotool's instant click
        time.sleep(0.15)
        self.xdo("mouseup", "1")
        if shift:
            self.xdo("keyup", "shift")
        time.sleep(0.3)

    def click_widget(self, name: str, fx: float = 0.5) -> None:
        x, y, w, h = self.layout[name]
        self.click(x + fx * w, y + h / 2)

    def wait_file(self, pattern: str, n: int, timeout: float = 60) -> list[Path]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = sorted(p for p in self.exports.glob(pattern) if not p.name.startswith("."))
            if len(hits) >= n:
                time.sleep(0.3)
                return hits
            self._check_alive()
            time.sleep(0.1)
        pytest.fail(f"no {n} x {pattern} in {self.exports} after {timeout} s: {self.stderr()}")

    def wait_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return
            self._check_alive()
            time.sleep(0.1)
        pytest.fail(f"{text!r} never logged: {self.stderr()}")

    def _check_alive(self) -> None:
        code = self.proc.poll()
        if code == 3:
            raise _Stalled(self.stderr()[-300:])
        if code is not None:
            pytest.fail(f"the viewer exited early ({code}): {self.stderr()}")

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text(errors="replace")

    def close_with_escape(self) -> int:
        """Press Escape (again, addressed to the window, if the first press got lost) and return the exit code; a
        window that neither closes nor reports the renderer hang counts as hung too (relaunched by _attempts)."""
        x, y, w, h = self.layout["window"]
        self.xdo("mousemove", str(x + w // 2), str(y + h // 2))
        for extra in ([], ["--window", self._window_id()]):
            subprocess.run(["xdotool", "key", *extra, "Escape"], env=self.env, timeout=20, capture_output=True)
            try:
                code = self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                continue
            if code == 3:
                raise _Stalled(self.stderr()[-300:])
            return code
        raise _Stalled("the window did not close on Escape (renderer hung before the watchdog fired)")

    def _window_id(self) -> str:
        found = subprocess.run(
            ["xdotool", "search", "--name", "shapelatent view"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        ids = found.stdout.split()
        return ids[0] if ids else "0"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.err.close()


def _img(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32)


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and (np.abs(a - b).max(axis=2) > 30).mean() > 0.001


@pytest.mark.display
def test_interpolation_window_slider_buttons_and_exports(
    display: str, tiny_run: Path, store: Path, tmp_path: Path
) -> None:
    st = LatentStore.open(store)

    def body(tmp: Path) -> None:
        # points on screen, meshes made in the background for the exports: a mesh in the scene sometimes hangs
        # software Vulkan (see viewers.gui.base), which the tests cannot afford
        app = _App(
            display,
            [
                "--model",
                str(tiny_run),
                st.ids[0],
                st.ids[5],
                "--store",
                str(store),
                "--mesher",
                "poisson",
                "--steps",
                "3",
                "--display",
                "points",
            ],
            tmp,
        )
        try:
            app.click_widget("screenshot_button")
            first = app.wait_file("view_*.png", 1)[0]
            app.click_widget("slider", 0.9)  # decode t ~ 0.9: new points at once, the mesh when ready
            time.sleep(4)
            app.click_widget("screenshot_button")
            second = app.wait_file("view_*.png", 2)[1]
            a, b = _img(first), _img(second)
            assert a.shape[:2] == (800, 1280) and a.std() > 5
            assert _differs(a, b), "moving the slider did not change the window"
            app.click_widget("mesh_button")
            mesh = trimesh.load(app.wait_file("view_*.ply", 1)[0], process=False)
            assert len(mesh.faces) > 0
            app.click_widget("gif_button")
            gif = app.wait_file("view_*.gif", 1, timeout=90)[0]
            with Image.open(gif) as im:
                assert im.n_frames == 3  # steps 3, one segment
            assert app.close_with_escape() == 0
        finally:
            app.kill()

    _attempts(body, tmp_path)


@pytest.mark.display
def test_neighbours_window_click_makes_the_query(display: str, store: Path, tmp_path: Path) -> None:
    def body(tmp: Path) -> None:
        app = _App(display, ["--store", str(store), "--query", LatentStore.open(store).ids[0], "-k", "3"], tmp)
        try:
            x, y, w, h = app.layout["cells"][2]
            app.click(x + w / 2, y + h / 2)
            app.wait_log(f"query: {app.layout['ids'][2]}")
            assert app.close_with_escape() == 0
        finally:
            app.kill()

    _attempts(body, tmp_path)


@pytest.mark.display
def test_map_window_picks_the_clicked_code_and_interpolates(
    display: str, tiny_run: Path, store: Path, tmp_path: Path
) -> None:
    def body(tmp: Path) -> None:
        app = _App(display, ["--store", str(store), "--map", "--model", str(tiny_run), "--mesher", "none"], tmp)
        try:
            codes = app.layout["codes"]
            mx, my, mw, mh = app.layout["map"]
            inside = {k: v for k, v in codes.items() if mx + 5 < v[0] < mx + mw - 5 and my + 5 < v[1] < my + mh - 5}
            pos = np.array(list(inside.values()))
            gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
            lonely = [list(inside)[i] for i in np.argsort(-gaps.min(1))[:2]]  # codes with no other code nearby
            app.click(*codes[lonely[0]])
            app.wait_log(f"selected {lonely[0]}")
            app.click(*codes[lonely[1]], shift=True)
            app.wait_log(f"selected {lonely[1]}")
            app.wait_log("as the second end")
            assert app.close_with_escape() == 0
        finally:
            app.kill()

    _attempts(body, tmp_path)


@pytest.mark.display
def test_screenshot_mode_saves_the_whole_window_and_exits(
    display: str, tiny_run: Path, store: Path, tmp_path: Path
) -> None:
    st = LatentStore.open(store)
    shot = tmp_path / "shot.png"
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "shapelatent.cli.main",
        "view",
        "--model",
        str(tiny_run),
        st.ids[0],
        st.ids[1],
        "--store",
        str(store),
        "--mesher",
        "none",
        "--t",
        "0.5",
        "--screenshot",
        str(shot),
        "--size",
        "1000x700",
    ]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {shot}"  # results only on stdout
    img = _img(shot)
    assert img.shape[:2] == (700, 1000)
    assert (img[:, :600].min(axis=2) < 200).mean() > 0.002  # the shape is drawn
    assert not any(w in (done.stdout + done.stderr).lower() for w in ("error", "warning"))
