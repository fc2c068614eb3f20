"""``shapelatent map``: projections, separation figures against brute force, the PNG, map.json, CLI and report."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest
import typer
from matplotlib.colors import to_rgb
from PIL import Image
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from shapelatent.cli.latent_map import make_map, register
from shapelatent.errors import OutputExistsError
from shapelatent.latent.encode import encode_to_store
from shapelatent.latent.project import class_separation, project_codes, subsample
from shapelatent.viz.latentmap import OTHER_CLASS, PALETTE, UNLABELLED, class_colours, plot_latent_map, spread_indices

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app


APP = _app()


@pytest.fixture(autouse=True)
def _one_thread():
    """t-SNE's OpenMP threads crawl on a busy 2-core machine; every run here uses this one thread."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_run, tiny_data):
    """36 procedural chairs of 6 families encoded with the tiny model (Z=8); its provenance names tiny_data."""
    st, failed = encode_to_store(tiny_run, [tiny_data], tmp_path_factory.mktemp("map") / "store", workers=1)
    assert not failed
    return st


def _codes(n: int = 30, z: int = 5, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three loose Gaussian classes."""
    rng = np.random.default_rng(seed)
    labels = [("a", "b", "c")[i % 3] for i in range(n)]
    centres = {"a": 0.0, "b": 1.5, "c": -1.0}
    codes = np.stack([rng.normal(centres[c], 1.0, size=z) for c in labels]).astype(np.float32)
    return codes, labels


# ----------------------------------------------------------------------------- projection


@pytest.mark.parametrize("dims", [2, 3])
def test_pca_shapes_determinism_and_sign_convention(dims):
    codes, _ = _codes(40, 6)
    a = project_codes(codes, "pca", dims=dims, seed=0)
    assert a.coords.shape == (40, dims) and a.coords.dtype == np.float32
    assert np.array_equal(a.indices, np.arange(40)) and a.explained_variance.shape == (dims,)
    np.testing.assert_array_equal(a.coords, project_codes(codes, "pca", dims=dims, seed=0).coords)
    # The sign convention does not depend on row order or on a global sign flip of the codes.
    perm = np.random.default_rng(1).permutation(40)
    np.testing.assert_allclose(project_codes(codes[perm], "pca", dims=dims).coords, a.coords[perm], atol=1e-4)
    np.testing.assert_allclose(project_codes(-codes, "pca", dims=dims).coords, -a.coords, atol=1e-4)
    # Each axis's largest loading is positive: recover the loadings from the coordinates.
    xc = codes.astype(np.float64) - codes.mean(0)
    loadings = np.linalg.lstsq(xc, a.coords.astype(np.float64), rcond=None)[0].T  # (D, Z)
    assert (loadings[np.arange(dims), np.abs(loadings).argmax(1)] > 0).all()
    # Same axes (up to sign) and variances as a plain SVD.
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(np.abs(a.coords), np.abs(xc @ vt[:dims].T), atol=1e-4)
    np.testing.assert_allclose(a.explained_variance, s[:dims] ** 2 / (s**2).sum(), rtol=1e-6)


def test_subsampling_is_seeded():
    rows = subsample(100, 30, seed=4)
    assert rows.shape == (30,) and rows.dtype == np.int64
    assert np.array_equal(rows, np.unique(rows)) and rows.max() < 100
    assert np.array_equal(rows, subsample(100, 30, seed=4)) and not np.array_equal(rows, subsample(100, 30, seed=5))
    assert np.array_equal(subsample(20, 30, seed=4), np.arange(20))
    codes, _ = _codes(100, 5)
    p = project_codes(codes, "pca", max_points=30, seed=4)
    assert np.array_equal(p.indices, rows)
    np.testing.assert_allclose(p.coords, project_codes(codes[rows], "pca").coords, atol=1e-5)


# ----------------------------------------------------------------------------- separation vs brute force


def _brute_precision(x: np.ndarray, labels: list[str], k: int, metric: str) -> float:
    n = len(x)
    total = 0.0
    for i in range(n):
        dists = []
        for j in range(n):
            if j == i:
                continue
            if metric == "euclidean":
                d = float(np.sqrt(sum((x[i, t] - x[j, t]) ** 2 for t in range(x.shape[1]))))
            else:
                d = 1.0 - float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
            dists.append((d, j))
        dists.sort()
        total += sum(labels[j] == labels[i] for _, j in dists[:k]) / k
    return total / n


def _brute_silhouette(x: np.ndarray, labels: list[str], metric: str) -> float:
    def dist(i: int, j: int) -> float:
        if metric == "euclidean":
            return float(np.sqrt(((x[i] - x[j]) ** 2).sum()))
        return 1.0 - float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))

    scores = []
    for i in range(len(x)):
        own = [dist(i, j) for j in range(len(x)) if j != i and labels[j] == labels[i]]
        if not own:  # a class of one item scores 0 (Rousseeuw; as scikit-learn)
            scores.append(0.0)
            continue
        a = sum(own) / len(own)
        b = min(np.mean([dist(i, j) for j in range(len(x)) if labels[j] == c]) for c in set(labels) if c != labels[i])
        scores.append((b - a) / max(a, b))
    return float(np.mean(scores))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_class_separation_matches_brute_force(metric):
    codes, labels = _codes(30, 5, seed=2)
    sep = class_separation(codes, labels, k=4, metric=metric)
    x = codes.astype(np.float64)
    assert sep.k == 4 and sep.n == 30 and sep.num_classes == 3 and sep.metric == metric
    assert sep.precision_at_k == pytest.approx(_brute_precision(x, labels, 4, metric), abs=1e-9)
    assert sep.silhouette == pytest.approx(_brute_silhouette(x, labels, metric), abs=1e-6)
    sub = class_separation(codes, labels, k=4, metric=metric, max_points=12, seed=7)
    rows = subsample(30, 12, 7)
    lab = [labels[i] for i in rows]
    assert sub.n == 12
    assert sub.precision_at_k == pytest.approx(_brute_precision(x[rows], lab, 4, metric), abs=1e-9)


# ----------------------------------------------------------------------------- figure helpers


def test_class_colours_are_fixed_by_sorted_name():
    got = class_colours(["sofa", OTHER_CLASS, "bed", UNLABELLED, "sofa", "armchair"])
    assert list(got) == ["armchair", "bed", "sofa", OTHER_CLASS, UNLABELLED]
    assert [got[c][0] for c in ("armchair", "bed", "sofa")] == list(PALETTE[:3])
    assert got[OTHER_CLASS][0] == "#7f7f7f" and got[UNLABELLED][0] == "#c7c7c7"
    many = class_colours([f"c{i:02d}" for i in range(len(PALETTE) + 1)])
    assert many[f"c{len(PALETTE):02d}"] == (PALETTE[0], "s")  # colours cycle with another marker


def test_spread_indices_is_seeded_farthest_point_sampling():
    pts = np.random.default_rng(0).normal(size=(50, 2))
    got = spread_indices(pts, 6, seed=3)
    assert got.shape == (6,) and len(set(got.tolist())) == 6
    assert np.array_equal(got, spread_indices(pts, 6, seed=3))
    first = int(np.random.default_rng(3).integers(50))
    want = [first]
    while len(want) < 6:  # brute force: the point farthest from all picked so far
        best = max(range(50), key=lambda i: min(np.linalg.norm(pts[i] - pts[j]) for j in want))
        want.append(best)
    assert got.tolist() == want
    assert len(spread_indices(pts, 80)) == 50 and len(spread_indices(pts, 0)) == 0


def test_plot_rejects_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"coords must be \(N, 2\) or \(N, 3\)"):
        plot_latent_map(np.zeros((4, 4)), ["a"] * 4, tmp_path / "x.png", axis_labels="abcd", title="", caption="")
    with pytest.raises(ValueError, match="one class per row"):
        plot_latent_map(np.zeros((4, 2)), ["a"] * 3, tmp_path / "x.png", axis_labels="ab", title="", caption="")


# ----------------------------------------------------------------------------- make_map: PNG and map.json


def _colour_present(img: np.ndarray, colour: str, tol: float = 0.09) -> bool:
    """Some pixels near ``colour`` drawn at alpha 0.9 on white (or opaque, in a thumbnail or the legend)."""
    c = np.asarray(to_rgb(colour))
    targets = (c, 0.9 * c + 0.1)
    return any((np.abs(img - t).max(axis=2) < tol).sum() >= 5 for t in targets)


def test_map_png_and_json(store, tmp_path, tiny_data):
    out = tmp_path / "m.png"
    record = make_map(store.path, out, thumbnails=4, k=3)
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved == json.loads(json.dumps(record))
    with Image.open(out) as im:
        assert im.format == "PNG" and list(im.size) == saved["image_size"]
        img = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    assert img.std() > 0.05 and (img.min(axis=2) < 0.5).mean() > 0.002  # not blank
    assert len(saved["class_colours"]) == 6
    assert all(_colour_present(img, col) for col in saved["class_colours"].values())
    # contents
    assert saved["kind"] == "latent_map" and saved["store"] == str(store.path) and saved["image"] == "m.png"
    assert (saved["method"], saved["dims"], saved["seed"], saved["latent_dim"]) == ("pca", 2, 0, 8)
    assert saved["count"] == saved["store_count"] == 36 and saved["split"] == "all"
    assert saved["points"]["ids"] == store.ids and saved["points"]["classes"] == store.classes
    np.testing.assert_allclose(saved["points"]["coords"], project_codes(store.codes).coords, atol=1e-5)
    sep = class_separation(store.codes, store.classes, k=3)
    assert saved["figures"]["precision_at_k"] == pytest.approx(sep.precision_at_k)
    assert saved["figures"]["silhouette"] == pytest.approx(sep.silhouette)
    assert saved["figures"]["n"] == 36 and saved["figures"]["measured_on"] == "full 8-D codes"
    assert f"precision@3 = {sep.precision_at_k:.3f}" in saved["caption"] and "all 36 codes" in saved["caption"]
    assert saved["axis_labels"][0].startswith("PC1 (") and saved["axis_labels"][0].endswith("% var)")
    # thumbnails come from the dataset the store's provenance names
    assert len(saved["thumbnails"]) == 4 and not saved["thumbnails_skipped"]
    assert all(t["points_from"] == f"dataset {tiny_data}" for t in saved["thumbnails"])
    prov = saved["provenance"]
    assert prov["seed"] == 0 and prov["config"]["thumbnails"] == 4 and "shapelatent_version" in prov


def test_map_subsamples_with_the_stated_seed(store, tmp_path):
    record = make_map(store.path, tmp_path / "s.png", max_points=20, seed=5, thumbnails=0)
    rows = subsample(36, 20, 5)
    assert record["points"]["ids"] == [store.ids[i] for i in rows]
    assert "20 of 36 codes (uniform subsample, seed 5)" in record["caption"]
    assert record["figures"]["n"] == 20


def test_map_refuses_to_overwrite(store, tmp_path):
    out = tmp_path / "m.png"
    make_map(store.path, out, thumbnails=0)
    with pytest.raises(OutputExistsError, match="m.png: already exists; pass --force"):
        make_map(store.path, out, thumbnails=0)
    out.unlink()  # the JSON alone also blocks
    with pytest.raises(OutputExistsError, match="m.json: already exists"):
        make_map(store.path, out, thumbnails=0)
    make_map(store.path, out, thumbnails=0, force=True)


# ----------------------------------------------------------------------------- CLI


def _ok(args):
    res = runner.invoke(APP, ["map", *[str(a) for a in args]])
    assert res.exit_code == 0, res.output
    return " ".join(res.stdout.split())  # results go to stdout


def _fails(args, *needles):
    res = runner.invoke(APP, ["map", *[str(a) for a in args]])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())  # errors go to stderr
    for n in needles:
        assert n in text, (n, text)


def test_cli_3d_and_split(store, tmp_path):
    text = _ok(["--store", store.path, "--out", tmp_path / "a.png", "--dims", 3, "--thumbnails", 3])
    assert "a.png" in text and "class precision@5 =" in text and "silhouette =" in text
    rec = json.loads((tmp_path / "a.json").read_text())
    assert rec["dims"] == 3 and np.asarray(rec["points"]["coords"]).shape == (36, 3) and len(rec["thumbnails"]) == 3
    _ok(["--store", store.path, "--out", tmp_path / "v.png", "--split", "train", "--metric", "cosine"])
    rec = json.loads((tmp_path / "v.json").read_text())
    train = [it["id"] for it in store.items if it["split"] == "train"]
    assert rec["points"]["ids"] == train and rec["figures"]["metric"] == "cosine"


def test_cli_tsne_is_seeded(store, tmp_path):
    _ok(["--store", store.path, "--out", tmp_path / "t.png", "--method", "tsne", "--thumbnails", 0, "--seed", 1])
    rec = json.loads((tmp_path / "t.json").read_text())
    assert rec["method"] == "tsne" and rec["axis_labels"] == ["t-SNE 1", "t-SNE 2"] and rec["perplexity"] > 0
    again = project_codes(store.codes, "tsne", dims=2, seed=1)  # same seed, same map
    assert again.coords.shape == (36, 2) and again.explained_variance is None
    np.testing.assert_allclose(rec["points"]["coords"], again.coords, atol=1e-5)
    assert "t-SNE (perplexity 11.6667, seed 1) of all 36 codes" in rec["caption"]


def test_cli_refuses_to_overwrite(store, tmp_path):
    out = tmp_path / "m.png"
    _ok(["--store", store.path, "--out", out, "--thumbnails", 0])
    _fails(["--store", store.path, "--out", out], "m.png: already exists; pass --force")
    _ok(["--store", store.path, "--out", out, "--force", "--thumbnails", 0])


def test_cli_umap_missing_is_a_friendly_error(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` raises ImportError, installed or not
    _fails(["--store", store.path, "--out", tmp_path / "u.png", "--method", "umap"], "pip install umap-learn")
    assert not (tmp_path / "u.png").exists() and not (tmp_path / "u.json").exists()


def test_cli_bad_options(store, tmp_path):
    _fails(["--store", tmp_path / "nope", "--out", tmp_path / "x.png"], "no such latent store")
    _fails(["--store", store.path, "--out", tmp_path / "x.jpg"], "must be a .png file")
    _fails(["--store", store.path, "--out", tmp_path / "x.png", "--method", "mds"], "--method must be one of pca")
    _fails(["--store", store.path, "--out", tmp_path / "x.png", "--dims", 4], "--dims must be 2 or 3")
    _fails(["--store", store.path, "--out", tmp_path / "x.png", "--split", "dev"], "--split must be one of all")
    _fails(["--store", store.path, "--out", tmp_path / "x.png", "--metric", "l1"], "--metric must be euclidean")


def test_cli_skips_thumbnails_it_cannot_load(store, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(store.path, moved)
    (moved / "provenance.json").unlink()  # no recorded dataset
    with open(moved / "items.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows[::2]:
        r["source"] = str(tmp_path / "gone" / f"{r['id']}.obj")
    with open(moved / "items.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    text = _ok(["--store", moved, "--out", tmp_path / "m.png", "--thumbnails", 6])
    rec = json.loads((tmp_path / "m.json").read_text())
    assert len(rec["thumbnails"]) + len(rec["thumbnails_skipped"]) == 6 and rec["thumbnails_skipped"]
    assert all(t["points_from"] == "source" for t in rec["thumbnails"])  # procedural chairs regenerated
    assert "thumbnails left out" in text and "is not on this machine" in text
    assert (tmp_path / "m.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------- report


def test_report_embeds_the_map(store, tmp_path, tiny_run):
    from viewers.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run / "config.json")
    html = write_report(run).read_text()
    assert 'id="latent-map"' not in html and "latent map (no map.png" in html
    record = make_map(store.path, run / "map.png", thumbnails=0)
    html = write_report(run).read_text()
    section = html[html.index('id="latent-map"') :]
    section = section[: section.index("</section>")]
    assert '<img src="data:image/png;base64,' in section
    assert f"{record['figures']['precision_at_k']:.4g}" in section and "silhouette (full codes)" in section
    assert "class precision@5 (full codes)" in section and "36 of 36" in section
