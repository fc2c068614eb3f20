"""The HTML run report: self-contained, every image embedded and valid, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from shapelatent.cli.report import register
from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.models import ModelConfig
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import train
from viewers.report import write_report

CHROMIUM = shutil.which("chromium")
EPOCHS = 2


class _Collector(HTMLParser):
    """Every tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser.tags


def _strip(path: Path, size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "PNG") -> None:
    Image.new("RGB", size, colour).save(path, format=fmt)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-epoch tiny run plus a fake interpolation folder (manifest, strips, GIF, one failed mesh)."""
    root = tmp_path_factory.mktemp("report")
    data = root / "chairs"
    build_procedural(data, 24, sampling=SamplingConfig(num_points=64), workers=1)
    out = root / "run"
    cfg = RunConfig(
        model=ModelConfig(num_points=64, latent_dim=8, decoder_hidden=(32,)),
        train=TrainConfig(epochs=EPOCHS, batch_size=8, device="cpu"),
    )
    train(data, out, cfg)
    interp = out / "interp_ab"
    interp.mkdir()
    _strip(interp / "strip_points.png", (160, 40), (40, 90, 200))
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(interp / "walk.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    manifest = {
        "kind": "interpolation",
        "method": "slerp",
        "shapes": [{"ref": "a", "label": "<b>chair a</b>", "class": "office"}, {"ref": "b", "label": "b"}],
        "points_png": "strip_points.png",
        "meshes_png": "strip_meshes.png",  # deliberately missing: must not produce an <img>
        "steps": [
            {"step": 0, "t": 0.0, "nn_class": "office", "triangles": 1234, "watertight": True},
            {"step": 1, "t": 0.5, "nn_class": "stool", "mesh_error": "poisson failed: <too few points>"},
            {"step": 2, "t": 1.0, "nn_class": "office", "triangles": 987, "watertight": False},
        ],
    }
    (interp / "manifest.json").write_text(json.dumps(manifest))
    (out / "other").mkdir()
    (out / "other" / "manifest.json").write_text(json.dumps({"kind": "sample", "steps": []}))
    return out


@pytest.fixture(scope="module")
def report(run) -> tuple[Path, str]:
    path = write_report(run)
    return path, path.read_text(encoding="utf-8")


def test_report_default_path_and_images_are_embedded(run, report):
    path, html = report
    assert path == run / "report.html"
    tags = _parse(html)
    imgs = [a for t, a in tags if t == "img"]
    # loss_curve.png + strip_points.png + walk.gif (no reconstructions/neighbours in a train-only run)
    assert len(imgs) == 3
    formats = []
    for attrs in imgs:
        src = attrs["src"] or ""
        m = re.fullmatch(r"data:image/(png|gif|jpeg);base64,([A-Za-z0-9+/=]+)", src)
        assert m, f"not an embedded image: {src[:60]}"
        with Image.open(io.BytesIO(base64.b64decode(m.group(2)))) as im:
            im.verify()
            formats.append(im.format)
            assert im.format.lower() == m.group(1)
    assert sorted(formats) == ["GIF", "PNG", "PNG"]


def test_report_has_no_external_or_relative_references(report):
    _, html = report
    assert not re.search(r"https?://", html)
    for tag, attrs in _parse(html):
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("data:") or value.startswith("#"), f"<{tag} {name}={value[:60]}>"
        assert tag != "link", "no external stylesheets"
        if tag == "script":
            assert "src" not in attrs


def test_report_metrics_config_and_provenance(run, report):
    _, html = report
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test_chamfer", "best_val_chamfer", "train_time_s"):
        assert f"{metrics[key]:.4g}" in html, key
    assert f">{metrics['epochs_done']}<" in html
    assert "squared L2" in html  # the Chamfer definition is stated
    assert "unit_sphere" in html and "bbox" in html  # and the normalisation
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["shapelatent_version"] in html and prov["git_commit"] in html
    assert "latent_dim" in html and "decoder_hidden" in html and "num_points" in html


def test_report_svg_curve_has_one_point_per_epoch(report):
    _, html = report
    polylines = [a for t, a in _parse(html) if t == "polyline"]
    assert {a["data-series"] for a in polylines} == {"train", "val"}
    for attrs in polylines:
        points = (attrs["points"] or "").split()
        assert len(points) == EPOCHS
        xy = np.array([[float(v) for v in p.split(",")] for p in points])
        assert np.isfinite(xy).all()


def test_report_interpolation_table_and_escaping(report):
    _, html = report
    assert "&lt;b&gt;chair a&lt;/b&gt;" in html and "<b>chair a</b>" not in html
    assert "poisson failed: &lt;too few points&gt;" in html
    assert "1234 triangles, watertight" in html and "987 triangles, not watertight" in html
    assert "interp_ab/walk.gif" in html and "interp_ab/strip_meshes.png" not in html
    assert html.count('class="interpolation"') == 1  # the "sample" manifest is not an interpolation


def test_report_lists_missing_sections(report):
    _, html = report
    assert 'id="not-available"' in html
    assert "reconstructions.png" in html and "neighbour galleries" in html
    assert 'id="reconstructions"' not in html


def test_report_minimal_run_folder(tmp_path, run):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.json", bare / "config.json")
    out = write_report(bare, tmp_path / "sub" / "r.html")
    html = out.read_text()
    tags = {t for t, _ in _parse(html)}
    assert "img" not in tags and "polyline" not in tags
    for what in ("provenance", "metrics", "loss_curve.png", "interpolation", "per-epoch curve"):
        assert what in html


def test_report_rejects_a_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder .no config.json"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        write_report(tmp_path / "nope")


def test_report_cli(run, tmp_path):
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command so typer keeps `report` as a sub-command
        pass

    runner = CliRunner()
    out = tmp_path / "cli.html"
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and str(out.name) in res.output
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a run folder" in res.output and "config.json" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian `chromium` (apt-get install chromium)")
def test_report_opens_in_headless_chromium(report, tmp_path):
    path, html = report
    n_images = sum(1 for t, _ in _parse(html) if t == "img")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1200,2000",
    ]
    url = path.resolve().as_uri()
    dom = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-images-ok="true"' in body.group(0), body.group(0)
    assert f'data-images-count="{n_images}"' in body.group(0)
    assert 'data-js-errors="0"' in body.group(0)
    shot = tmp_path / "shot.png"
    res = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'u2'}", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    # console messages of the page come as "...:CONSOLE(line)] ..., source: file://..."; chromium's own
    # noise (dbus, gpu, fontconfig) never mentions the page
    page_errors = [
        line
        for line in (dom.stderr + res.stderr).splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line or "source: file://" in line)
    ]
    assert not page_errors, page_errors
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.shape[0] >= 1000 and pixels.std() > 10, "screenshot is blank"
    assert len(np.unique(pixels)) > 50
