"""A self-contained HTML report of one run folder.

``write_report(run)`` reads what a run folder holds (``config.json``, ``provenance.json``, ``metrics.json``,
``metrics.jsonl``, ``loss_curve.png``, ``reconstructions.png``, ``*neighbors*.png`` and every
``*/manifest.json`` of kind ``interpolation``) and writes ``RUN/report.html``. The page needs nothing
beside itself: images are embedded as base64 ``data:`` URIs, the CSS and the one small script are inline,
and it names no external URL. A section whose inputs are missing is left out and listed in a
"not available" note; no ``<img>`` ever points at a file.

The inline script only checks the page: once loaded it sets ``<body data-images-ok="true|false">`` (every
image decoded with a non-zero size) and ``data-js-errors`` (count of script errors), so a headless browser's
``--dump-dom`` can verify the page rendered.
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from shapelatent.io.atomic import atomic_write_text

__all__ = ["DEFAULT_CHAMFER_DEFINITION", "write_report"]

log = logging.getLogger(__name__)

DEFAULT_CHAMFER_DEFINITION = (
    "squared L2, mean over points per direction, two directions summed (as PyTorch3D and latent_3d_points)"
)
_MIME = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"\xff\xd8\xff": "image/jpeg",
}

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 10px;border-bottom:2px solid #e3e6ec;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px;color:#3a4356}
.sub{color:#5b6478;font-size:13px;margin:0 0 14px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
td,th{border:1px solid #dfe3ea;padding:4px 10px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f0f2f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv td:first-child{color:#4a5368;white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.grid>*{flex:1 1 340px;min-width:0}
.grid table{max-width:100%}
svg{max-width:100%;height:auto}
figure{margin:8px 0 14px}figure img{max-width:100%;height:auto;border:1px solid #e3e6ec;display:block}
figcaption{font-size:12px;color:#5b6478;margin-top:3px}
.note{font-size:12.5px;color:#5b6478;background:#f7f8fa;border-left:3px solid #c9ced8;padding:6px 10px}
code{font-family:"DejaVu Sans Mono",monospace;font-size:12px;background:#f0f2f6;padding:1px 4px;border-radius:3px}
#not-available{margin-top:32px}.bad{color:#b3261e}.ok{color:#1b7a3a}
svg text{font-family:inherit;font-size:11px;fill:#4a5368}
"""

_SCRIPT = """
(function(){var errs=0;window.addEventListener('error',function(){errs+=1;});
window.addEventListener('load',function(){var imgs=document.images,ok=true;
for(var i=0;i<imgs.length;i++){if(!(imgs[i].complete&&imgs[i].naturalWidth>0)){ok=false;}}
var d=document.body.dataset;d.imagesOk=ok?'true':'false';d.imagesCount=imgs.length;d.jsErrors=errs;});})();
"""


@dataclass
class _Page:
    summary: list[str] = field(default_factory=list)  # shown side by side under the title
    sections: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def write_report(run: Path, out: Path | None = None) -> Path:
    """Write a self-contained HTML report of a run folder.

    Args:
        run: a run folder from ``shapelatent train`` or ``shapelatent demo`` (it must hold ``config.json``).
        out: the HTML file to write; default ``RUN/report.html``. Written atomically.

    Returns:
        The path of the written report.

    Raises:
        FileNotFoundError: ``run`` is not a folder or holds no ``config.json``.
        ValueError: ``config.json`` (or another required JSON file) is not valid JSON.
    """
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: not a folder (expected a run folder from `shapelatent train`)")
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no config.json; expected the output of `shapelatent train`)")
    out = Path(out) if out is not None else run / "report.html"
    config = _read_json(run / "config.json")
    provenance = _read_json(run / "provenance.json") if (run / "provenance.json").is_file() else None
    metrics = _read_json(run / "metrics.json") if (run / "metrics.json").is_file() else None
    history = _read_history(run / "metrics.jsonl")

    page = _Page()
    if metrics is not None:
        page.summary.append(_metrics_section(metrics, config))
    else:
        page.missing.append("metrics (no metrics.json)")
    page.sections.append(_config_section(config))
    _curves_section(page, run, history)
    _figure_section(page, "Reconstructions", [run / "reconstructions.png"], "reconstructions.png")
    _interpolation_sections(page, run)
    _evaluation_section(page, run / "eval")
    galleries = sorted({p for p in run.rglob("*neighbors*.png") if p.is_file()})
    _figure_section(page, "Neighbour galleries", galleries, "neighbour galleries (*neighbors*.png)", run=run)
    _latent_map_section(page, run)

    html = _render(run, provenance, page)
    atomic_write_text(out, html)
    log.info("wrote report %s (%d sections, %d not available)", out, len(page.sections), len(page.missing))
    return out


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {n} is not valid JSON ({exc})") from None
        if isinstance(row, dict) and "epoch" in row:
            rows.append(row)
    return rows


def _data_uri(path: Path) -> str | None:
    """The file as a base64 ``data:`` URI, or None when it is not a PNG, GIF or JPEG."""
    data = path.read_bytes()
    for magic, mime in _MIME.items():
        if data.startswith(magic):
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return None


# ----------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _img(uri: str, alt: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{escape(alt)}"><figcaption>{escape(caption)}</figcaption></figure>'


# ----------------------------------------------------------------------------- sections


def _config_section(config: dict[str, Any]) -> str:
    run_cfg = config.get("run", {})
    data = config.get("data", {})
    sampling = dict(data.get("sampling") or {})
    norm = sampling.pop("normalization", None) or {}
    parts = []
    for title, table in (("model", run_cfg.get("model")), ("train", run_cfg.get("train"))):
        if isinstance(table, dict):
            parts.append(f"<div><h3>{title}</h3>{_kv_table(list(table.items()))}</div>")
    data_rows: list[tuple[str, Any]] = [("path", data.get("path"))]
    data_rows += [(f"sampling.{k}", v) for k, v in sampling.items()]
    data_rows += [(f"normalization.{k}", v) for k, v in norm.items()]
    classes = data.get("classes") or {}
    if classes:
        data_rows.append(("classes", ", ".join(f"{c} ({n})" for c, n in classes.items())))
    parts.append(f"<div><h3>data</h3>{_kv_table(data_rows)}</div>")
    return f'<section id="config"><h2>Configuration</h2><div class="grid">{"".join(parts)}</div></section>'


def _metrics_section(metrics: dict[str, Any], config: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("test Chamfer (mean)", metrics.get("test_chamfer")),
        ("test Chamfer (median)", metrics.get("test_chamfer_median")),
        ("test shapes", metrics.get("test_shapes")),
        ("best validation Chamfer", metrics.get("best_val_chamfer")),
        ("final validation Chamfer", metrics.get("final_val_chamfer")),
        ("final train loss", metrics.get("final_train_loss")),
        ("epochs", metrics.get("epochs_done")),
        ("train time (s)", metrics.get("train_time_s")),
        ("device", metrics.get("device")),
    ]
    rows = [(k, v) for k, v in rows if v is not None]
    body = "".join(f'<tr><td>{escape(k)}</td><td class="num">{escape(_fmt(v))}</td></tr>' for k, v in rows)
    definition = metrics.get("chamfer_definition") or DEFAULT_CHAMFER_DEFINITION
    norm = (config.get("data", {}).get("sampling") or {}).get("normalization") or {}
    norm_text = f"centre {norm.get('center', '?')}, scale {norm.get('scale', '?')}" if norm else "not recorded"
    note = f'<p class="note">Chamfer: {escape(definition)}. Normalisation: {escape(norm_text)}.</p>'
    return f'<section id="metrics"><h2>Metrics</h2><table class="kv">{body}</table>{note}</section>'


def _curves_section(page: _Page, run: Path, history: list[dict[str, Any]]) -> None:
    parts = []
    if history:
        parts.append(_chamfer_svg(history))
    else:
        page.missing.append("per-epoch curve (no metrics.jsonl)")
    png = run / "loss_curve.png"
    uri = _data_uri(png) if png.is_file() else None
    if uri:
        parts.append(_img(uri, "loss curve", "loss_curve.png (written by training)"))
    else:
        page.missing.append("loss_curve.png")
    if parts:
        page.sections.append(
            f'<section id="curves"><h2>Training curves</h2><div class="grid">{"".join(parts)}</div></section>'
        )


def _chamfer_svg(history: list[dict[str, Any]], width: int = 520, height: int = 300) -> str:
    """Train and validation Chamfer per epoch as an inline SVG (log y axis when all values are positive)."""
    import math

    series: dict[str, list[tuple[Any, float]]] = {
        name: [(r["epoch"], r[key]) for r in history if isinstance(r.get(key), (int, float))]
        for name, key in (("train", "train_chamfer"), ("val", "val_chamfer"))
    }
    values = [v for s in series.values() for _, v in s]
    epochs = [r["epoch"] for r in history]
    if not values:
        return '<p class="note">metrics.jsonl has no Chamfer values.</p>'
    log_y = min(values) > 0
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)  # noqa: E731
    lo, hi = tf(min(values)), tf(max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    e0, e1 = min(epochs), max(epochs)
    e1 = e1 if e1 > e0 else e0 + 1
    left, right, top, bottom = 62, 14, 14, 36
    pw, ph = width - left - right, height - top - bottom

    def xy(e: float, v: float) -> tuple[float, float]:
        return left + (e - e0) / (e1 - e0) * pw, top + (hi - tf(v)) / (hi - lo) * ph

    out = [
        f'<svg id="chamfer-curve" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Chamfer per epoch">'
    ]
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafbfc" stroke="#c9ced8"/>')
    for tv in _y_ticks(lo, hi, log_y):
        y = top + (hi - tv) / (hi - lo) * ph
        label = f"{10**tv:.3g}" if log_y else f"{tv:.3g}"
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for e in sorted({e0, e1, (e0 + e1) // 2}):  # x ticks
        x = left + (e - e0) / (e1 - e0) * pw
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">epoch</text>')
    colours = {"train": "#2f6fd6", "val": "#e07b1a"}
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(e, v) for e, v in pts))
        out.append(
            f'<polyline data-series="{name}" points="{coords}" fill="none" stroke="{colours[name]}" stroke-width="2"/>'
        )
        lx, ly = left + pw - 120, top + 16 + 16 * i
        out.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colours[name]}" stroke-width="2"/>'
        )
        out.append(f'<text x="{lx + 24}" y="{ly}">{name} Chamfer</text>')
    out.append("</svg>")
    scale = "log scale" if log_y else "linear scale"
    caption = f"Train and validation Chamfer per epoch from metrics.jsonl ({len(history)} epochs, {scale})."
    return f"<figure>{''.join(out)}<figcaption>{escape(caption)}</figcaption></figure>"


def _y_ticks(lo: float, hi: float, log_y: bool) -> list[float]:
    """Tick positions in plot units: 1-2-5 per decade on a log axis, else 5 even steps."""
    import math

    if log_y:
        ticks = [
            math.log10(m * 10.0**k)
            for k in range(math.floor(lo) - 1, math.ceil(hi) + 1)
            for m in (1, 2, 5)
            if lo - 1e-9 <= math.log10(m * 10.0**k) <= hi + 1e-9
        ]
        if len(ticks) >= 2:
            return ticks
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def _figure_section(page: _Page, title: str, paths: list[Path], what: str, run: Path | None = None) -> None:
    figs = []
    for p in paths:
        uri = _data_uri(p) if p.is_file() else None
        if uri:
            figs.append(_img(uri, title, str(p.relative_to(run)) if run else p.name))
        elif p.is_file():
            page.missing.append(f"{p.name} (not a PNG, GIF or JPEG)")
    if figs:
        sid = title.lower().replace(" ", "-")
        page.sections.append(f'<section id="{sid}"><h2>{escape(title)}</h2>{"".join(figs)}</section>')
    else:
        page.missing.append(what)


def _interpolation_sections(page: _Page, run: Path) -> None:
    found = 0
    for manifest_path in sorted(run.rglob("manifest.json")):
        try:
            manifest = _read_json(manifest_path)
        except ValueError as exc:
            page.missing.append(str(exc))
            continue
        if not isinstance(manifest, dict) or manifest.get("kind") != "interpolation":
            continue
        found += 1
        page.sections.append(_interpolation_section(manifest_path, manifest, run))
    if not found:
        page.missing.append("interpolation (no */manifest.json of kind interpolation)")


def _interpolation_section(path: Path, manifest: dict[str, Any], run: Path) -> str:
    folder = path.parent
    rel = folder.relative_to(run).as_posix() or "."
    shapes = " → ".join(
        f"{s.get('label', s.get('ref', '?'))} ({s.get('class', '?')})" for s in manifest.get("shapes", [])
    )
    summary = [
        ("folder", rel),
        ("shapes", shapes),
        ("method", manifest.get("method")),
        ("mesher", manifest.get("mesher")),
        ("class consistency", manifest.get("class_consistency")),
    ]
    parts = [_kv_table([(k, v) for k, v in summary if v not in (None, "")])]
    names = [manifest.get("points_png"), manifest.get("meshes_png"), "strip_points.png", "strip_meshes.png"]
    images = [folder / n for n in dict.fromkeys(n for n in names if n)] + sorted(folder.glob("*.gif"))
    for img in images:
        uri = _data_uri(img) if img.is_file() else None
        if uri:
            parts.append(_img(uri, f"interpolation {img.name}", f"{rel}/{img.name}"))
    rows = []
    for s in manifest.get("steps", []):
        if "mesh_error" in s:
            mesh = f'<span class="bad">{escape(str(s["mesh_error"]))}</span>'
        elif "triangles" in s:
            tight = "watertight" if s.get("watertight") else "not watertight"
            mesh = f"{escape(_fmt(s['triangles']))} triangles, {tight}"
        else:
            mesh = "—"
        rows.append(
            f'<tr><td class="num">{escape(_fmt(s.get("step")))}</td><td class="num">'
            f"{escape(_fmt(s.get('t')))}</td><td>{escape(_fmt(s.get('nn_class')))}</td><td>{mesh}</td></tr>"
        )
    if rows:
        parts.append(f"<table><tr><th>step</th><th>t</th><th>nn_class</th><th>mesh</th></tr>{''.join(rows)}</table>")
    return f'<section class="interpolation"><h2>Interpolation: {escape(rel)}</h2>{"".join(parts)}</section>'


def _evaluation_section(page: _Page, folder: Path) -> None:
    """The tables of ``shapelatent evaluate`` (``RUN/eval/evaluation.json``) and its ``samples.png``."""
    from shapelatent.evaluate.tables import evaluation_tables

    path = folder / "evaluation.json"
    if not path.is_file():
        page.missing.append("evaluation (no eval/evaluation.json; run `shapelatent evaluate --model RUN --data DATA`)")
        return
    try:
        tables = evaluation_tables(_read_json(path))
    except (ValueError, KeyError, TypeError) as exc:
        page.missing.append(f"evaluation ({path}: unreadable evaluation record: {exc})")
        return
    parts = []
    for t in tables:
        head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
        body = "".join(
            "<tr>" + "".join(f"<td{' class=num' if i else ''}>{escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
            for r in t.rows
        )
        parts.append(
            f'<h3>{escape(t.title)}</h3><table><tr>{head}</tr>{body}</table><p class="note">{escape(t.note)}</p>'
        )
    uri = _data_uri(folder / "samples.png") if (folder / "samples.png").is_file() else None
    if uri:
        parts.append(_img(uri, "l-GMM samples", "eval/samples.png: decoded l-GMM samples"))
    page.sections.append(f'<section id="evaluation"><h2>Evaluation</h2>{"".join(parts)}</section>')


def _latent_map_section(page: _Page, run: Path) -> None:
    """``RUN/map.png`` (``shapelatent map``; the demo writes it) with its figures from ``RUN/map.json``."""
    uri = _data_uri(run / "map.png") if (run / "map.png").is_file() else None
    if uri is None:
        page.missing.append("latent map (no map.png; run `shapelatent map --store RUN/store --out RUN/map.png`)")
        return
    try:
        record = _read_json(run / "map.json") if (run / "map.json").is_file() else {}
    except ValueError as exc:
        page.missing.append(f"latent map figures ({exc})")
        record = {}
    fig = record.get("figures") or {}
    rows = [
        ("method", f"{record.get('method', '?')}, {record.get('dims', '?')}-D" if record else None),
        ("codes", f"{len((record.get('points') or {}).get('ids', []))} of {record.get('count')}" if record else None),
        (f"class precision@{fig.get('k', 'k')} (full codes)", fig.get("precision_at_k")),
        ("silhouette (full codes)", fig.get("silhouette")),
        ("metric", fig.get("metric")),
        ("store", record.get("store")),
    ]
    table = _kv_table([(k, v) for k, v in rows if v is not None])
    caption = record.get("caption") or "map.png (no map.json beside it)"
    page.sections.append(
        f'<section id="latent-map"><h2>Latent map</h2>{_img(uri, "latent map", caption)}{table}</section>'
    )


# ----------------------------------------------------------------------------- page


def _render(run: Path, provenance: dict[str, Any] | None, page: _Page) -> str:
    title = f"shapelatent run: {run.resolve().name}"
    if provenance:
        command = provenance.get("command")
        command = shlex.join(map(str, command)) if isinstance(command, list) else command
        rows = [
            (k, v)
            for k, v in [
                ("shapelatent version", provenance.get("shapelatent_version")),
                ("git commit", provenance.get("git_commit")),
                ("created", provenance.get("created")),
                ("seed", provenance.get("seed")),
                ("command", command),
                ("python / torch", f"{provenance.get('python', '?')} / {provenance.get('torch', '?')}"),
            ]
            if v is not None
        ]
        prov = f'<section id="provenance"><h2>Provenance</h2>{_kv_table(rows)}</section>'
    else:
        prov = ""
        page.missing.insert(0, "provenance (no provenance.json)")
    missing = ""
    if page.missing:
        items = "".join(f"<li>{escape(m)}</li>" for m in page.missing)
        missing = (
            '<section id="not-available"><div class="note"><b>Not available in this run</b> (sections left out):'
            f'<ul style="margin:4px 0 0">{items}</ul></div></section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>\n<body><main>"
        f'<h1>{escape(title)}</h1><p class="sub">{escape(str(run.resolve()))}</p>'
        f'<div class="grid">{prov}{"".join(page.summary)}</div>'
        f"{''.join(page.sections)}{missing}</main></body></html>\n"
    )
