"""Stratified splits and folds, ``data build --split stratified``, ``data split`` and split views."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import SPLITS, DatasetWriter, ShapeDataset, split_codes
from shapelatent.data.resplit import resplit_dataset, write_split_view
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.data.splits import stratified_folds, stratified_split
from shapelatent.errors import OutputExistsError

runner = CliRunner()
FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# uneven classes of 7, 3, 2, 1 and 23 shapes, in a seeded order
CLASSES = [str(c) for c in np.random.default_rng(0).permutation(list("aaaaaaabbbccd") + ["e"] * 23)]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chairs(tmp_path_factory):
    """18 chairs of 3 families (P=64), split randomly."""
    out = tmp_path_factory.mktemp("splits") / "chairs"
    build_procedural(
        out, 18, sampling=SamplingConfig(num_points=64), seed=3, families=("stool", "sofa", "bench"), workers=1
    )
    return out


def test_stratified_split_counts_per_class_follow_largest_remainder():
    codes = stratified_split(CLASSES, seed=0, fractions=FRACTIONS)
    labels = np.array(CLASSES)
    got = {c: Counter(SPLITS[x] for x in codes[labels == c]) for c in "abcde"}
    # e: 23 -> 18.4 / 2.3 / 2.3 -> floors 18/2/2, the one left to the largest remainder (train, first in order)
    assert got["e"] == {"train": 19, "val": 2, "test": 2}
    # a: 7 -> 5.6 / 0.7 / 0.7 -> floors 5/0/0, two left: val and test (0.7 > 0.6), every split present
    assert got["a"] == {"train": 5, "val": 1, "test": 1}
    assert got["b"] == {"train": 1, "val": 1, "test": 1}  # as many shapes as splits: one each
    assert got["c"] == {"train": 1, "test": 1}  # too small: train, then test
    assert got["d"] == {"train": 1}


def test_stratified_split_is_seeded_and_respects_zero_fractions():
    a = stratified_split(CLASSES, 4, FRACTIONS)
    assert np.array_equal(a, stratified_split(CLASSES, 4, FRACTIONS))
    assert not np.array_equal(a, stratified_split(CLASSES, 5, FRACTIONS))
    half = stratified_split(CLASSES, 0, {"train": 0.5, "test": 0.5})
    assert SPLITS.index("val") not in half
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(CLASSES, 0, {"train": 0.5, "test": 0.1})
    with pytest.raises(ValueError, match="must use the names"):
        stratified_split(CLASSES, 0, {"train": 0.9, "holdout": 0.1})


def test_unlabelled_shapes_are_a_class_of_their_own():
    classes = ["", "x"] * 10
    codes = stratified_split(classes, 0, FRACTIONS)
    unl = codes[np.array(classes) == ""]
    assert set(unl.tolist()) == {0, 1, 2}
    folds = stratified_folds(classes, 5, 0)
    assert np.bincount(folds[np.array(classes) == ""], minlength=5).tolist() == [2] * 5


@pytest.mark.parametrize("k", [2, 3, 7])
def test_folds_cover_every_shape_once_and_are_stratified(k):
    classes = [c for c in CLASSES if c in ("a", "e")]  # 7 and 23: K up to 7
    folds = stratified_folds(classes, k, seed=1)
    assert folds.shape == (len(classes),) and set(folds.tolist()) == set(range(k))
    sizes = np.bincount(folds, minlength=k)
    assert sizes.sum() == len(classes) and sizes.max() - sizes.min() <= 1
    for c in ("a", "e"):
        per = np.bincount(folds[np.array(classes) == c], minlength=k)
        assert per.max() - per.min() <= 1 and per.min() >= 1, (c, per)
    assert np.array_equal(folds, stratified_folds(classes, k, seed=1))
    assert not np.array_equal(folds, stratified_folds(classes, k, seed=2))


def test_folds_larger_than_the_smallest_class_is_a_clear_error():
    with pytest.raises(ValueError, match=r"--folds 3 is more than the shapes of the classes d \(1\), c \(2\)"):
        stratified_folds(CLASSES, 3, 0)
    with pytest.raises(ValueError, match="use --folds 2 or fewer"):
        stratified_folds([c for c in CLASSES if c != "d"], 3, 0)
    with pytest.raises(ValueError, match="drop those classes"):
        stratified_folds(CLASSES, 2, 0)
    with pytest.raises(ValueError, match="integer >= 2"):
        stratified_folds(["a", "a"], 1, 0)


def _write(out, classes, method, fixed=None):
    with DatasetWriter(out, 4) as w:
        for i, c in enumerate(classes):
            pts = np.full((4, 3), i, np.float32)
            split = fixed[i] if fixed else ""
            w.add(f"s{i}", pts, pts, **{"class": c, "split": split})
        w.finalize({}, split_seed=3, fractions=FRACTIONS, split_method=method)
    return ShapeDataset(out)


def test_writer_random_split_is_unchanged_and_stratified_is_per_class(tmp_path):
    ds = _write(tmp_path / "r", CLASSES, "random")
    assert np.array_equal(ds.meta.split_codes, split_codes(len(CLASSES), 3, FRACTIONS))  # today's split, bit for bit
    assert ds.info["split"]["method"] == "random"
    st = _write(tmp_path / "s", CLASSES, "stratified")
    assert np.array_equal(st.meta.split_codes, stratified_split(CLASSES, 3, FRACTIONS))
    assert st.info["split"]["method"] == "stratified"
    assert sum(st.info["split"]["counts"].values()) == len(CLASSES)
    fixed = ["test"] * 5 + [""] * (len(CLASSES) - 5)  # fixed rows keep their split
    mixed = _write(tmp_path / "m", CLASSES, "stratified", fixed)
    assert (mixed.meta.split_codes[:5] == SPLITS.index("test")).all()
    assert np.array_equal(mixed.meta.split_codes[5:], stratified_split(CLASSES[5:], 3, FRACTIONS))
    with pytest.raises(ValueError, match="split method must be one of random, stratified"):
        _write(tmp_path / "x", CLASSES, "balanced")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_resplit_in_place_rewrites_only_the_split(chairs, tmp_path):
    import shutil

    data = tmp_path / "copy"
    shutil.copytree(chairs, data)
    before = {n: _sha(data / n) for n in ("points.npy", "normals.npy")}
    rows_before = list(ShapeDataset(data).meta)
    record = resplit_dataset(data, "stratified", seed=9, fractions={"train": 0.5, "val": 0.0, "test": 0.5})
    ds = ShapeDataset(data)
    assert {n: _sha(data / n) for n in before} == before
    assert np.array_equal(
        ds.meta.split_codes, stratified_split(ds.classes(), 9, {"train": 0.5, "val": 0.0, "test": 0.5})
    )
    rows_after = list(ds.meta)
    assert [{k: v for k, v in r.items() if k != "split"} for r in rows_after] == [
        {k: v for k, v in r.items() if k != "split"} for r in rows_before
    ]
    assert record["counts"] == {"train": 9, "test": 9} and ds.info["split"]["method"] == "stratified"
    assert ds.info["split"]["previous"]["seed"] == 3 and ds.info["split"]["previous"]["counts"]
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(ValueError, match="split method must be one of"):
        resplit_dataset(data, "by-size")


def test_split_view_links_the_arrays_and_is_a_dataset(chairs, tmp_path):
    n = len(ShapeDataset(chairs))
    codes = np.array([i % 3 for i in range(n)], dtype=np.uint8)
    view = write_split_view(chairs, tmp_path / "view", codes, {"method": "test"})
    ds = ShapeDataset(view)
    assert (view / "points.npy").is_symlink() and not (view / "metadata.csv").is_symlink()
    assert np.array_equal(ds.meta.split_codes, codes) and np.array_equal(ds.points, ShapeDataset(chairs).points)
    assert ds.info["split"]["parent"] == str(chairs.resolve())
    assert write_split_view(chairs, view, codes, {"method": "test"}) == view  # the same view again: kept
    with pytest.raises(OutputExistsError, match="another split"):
        write_split_view(chairs, view, (codes + 1) % 3, {"method": "test"})
    with pytest.raises(ValueError, match=r"codes must be \(18,\)"):
        write_split_view(chairs, tmp_path / "bad", codes[:3], {})


def test_cli_build_stratified_and_data_split(tmp_path):
    data = tmp_path / "d"
    args = ["data", "build", "procedural", "--count", "14", "--points", "32", "--out", str(data), "--workers", "1"]
    res = runner.invoke(app, [*args, "--split", "stratified", "--families", "stool,sofa"])
    assert res.exit_code == 0, res.output
    ds = ShapeDataset(data)
    assert ds.info["split"]["method"] == "stratified"
    per = Counter((m["class"], m["split"]) for m in ds.meta)
    assert all(per[(c, s)] >= 1 for c in ("stool", "sofa") for s in SPLITS)
    res = runner.invoke(app, ["data", "split", str(data), "--method", "random", "--seed", "2", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["method"] == "random" and payload["previous"]["method"] == "stratified"
    assert np.array_equal(ShapeDataset(data).meta.split_codes, split_codes(14, 2, FRACTIONS))
    res = runner.invoke(app, ["data", "split", str(data), "--fractions", "0.5,0.5"])
    assert res.exit_code == 2 and "--fractions must be three numbers" in res.output
    res = runner.invoke(app, [*args, "--force", "--split", "balanced"])
    assert res.exit_code == 2 and "split method must be one of random, stratified" in res.output
