from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import shapelatent.latent.encode as encode_mod
from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError, OutputExistsError, StoreError
from shapelatent.latent.encode import codes_for_points, encode_to_store
from shapelatent.latent.store import LatentStore, item_key, model_fingerprint
from shapelatent.models.load import load_model


def test_encode_dataset_matches_model(tiny_run, tiny_data, tmp_path):
    store, failed = encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    assert not failed and len(store) == 36 and store.codes.shape == (36, 8)
    loaded = load_model(tiny_run)
    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(tiny_data)
    with torch.no_grad():
        expected = loaded.model.eval().encode(torch.from_numpy(np.array(ds.points[:5]))).numpy()
    np.testing.assert_allclose(store.codes[:5], expected, rtol=1e-5, atol=1e-6)
    reopened = LatentStore.open(tmp_path / "s")
    np.testing.assert_array_equal(reopened.codes, store.codes)
    assert reopened.classes == [m["class"] for m in ds.meta]
    assert reopened.fingerprint == model_fingerprint(loaded.model)
    assert json.loads((tmp_path / "s" / "provenance.json").read_text())["shapelatent_version"]


def test_encode_files_deterministic_and_append(tiny_run, real_mesh_paths, tmp_path):
    store, _ = encode_to_store(tiny_run, [real_mesh_paths[0]], tmp_path / "s", workers=1)
    again, _ = encode_to_store(tiny_run, [real_mesh_paths[0]], tmp_path / "s2", workers=1)
    np.testing.assert_array_equal(store.codes, again.codes)  # same file, same code
    store, _ = encode_to_store(tiny_run, [real_mesh_paths[1].parent.parent], tmp_path / "s", append=True, workers=1)
    assert len(store) == 1 + len(real_mesh_paths)
    assert store.classes[1:] == [p.parent.name for p in real_mesh_paths]
    with pytest.raises(StoreError, match="duplicate ids"):
        encode_to_store(tiny_run, [real_mesh_paths[0]], tmp_path / "s", append=True, workers=1)
    with pytest.raises(OutputExistsError, match="pass --append"):
        encode_to_store(tiny_run, [real_mesh_paths[0]], tmp_path / "s", workers=1)


def test_broken_file_is_reported_not_fatal(tiny_run, real_mesh_paths, tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    store, failed = encode_to_store(tiny_run, [bad, real_mesh_paths[0]], tmp_path / "s", workers=1)
    assert len(store) == 1 and failed[0]["source"].endswith("bad.obj") and "NaN" in failed[0]["reason"]


def test_store_model_mismatch(tiny_run, other_run, tiny_data, tmp_path):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    with pytest.raises(StoreError, match="made by a different model"):
        encode_to_store(other_run, [tiny_data], tmp_path / "s", append=True, workers=1)


def test_dataset_sampled_differently_is_refused(tiny_run, tmp_path):
    other = tmp_path / "p64"
    build_procedural(other, 8, sampling=SamplingConfig(num_points=64), workers=1)
    with pytest.raises(DatasetFormatError, match="P=64 .* the model expects P=128"):
        encode_to_store(tiny_run, [other], tmp_path / "s", workers=1)


def test_corrupt_store(tiny_run, tiny_data, tmp_path):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    np.save(tmp_path / "s" / "codes.npy", np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(StoreError, match="corrupt"):
        LatentStore.open(tmp_path / "s")
    with pytest.raises(StoreError, match="not a latent store"):
        LatentStore.open(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such latent store"):
        LatentStore.open(tmp_path / "nope")


def test_codes_for_points_shape(tiny_run):
    loaded = load_model(tiny_run)
    assert codes_for_points(loaded.model, np.zeros((0, 128, 3), np.float32)).shape == (0, 8)


def _second_dataset(tmp_path, count=6):
    """A second procedural build: another seed, but numbered from chair_000000 like the first."""
    out = tmp_path / "second"
    build_procedural(out, count, sampling=SamplingConfig(num_points=128), seed=7, workers=1)
    return out


def test_append_clashing_ids_fails_before_encoding(tiny_run, tiny_data, tmp_path, monkeypatch):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    second = _second_dataset(tmp_path)
    calls = []
    monkeypatch.setattr(encode_mod, "codes_for_points", lambda *a, **k: calls.append(1) or codes_for_points(*a, **k))
    with pytest.raises(StoreError) as err:
        encode_to_store(tiny_run, [second], tmp_path / "s", append=True, workers=1)
    msg = str(err.value)
    assert str(tmp_path / "s") in msg and "duplicate ids" in msg and "chair_000000" in msg and "--id-prefix" in msg
    assert calls == []  # nothing was encoded
    assert len(LatentStore.open(tmp_path / "s")) == 36  # the store is untouched


def test_inputs_that_clash_with_each_other_fail_before_encoding(tiny_run, tiny_data, tmp_path, monkeypatch):
    second = _second_dataset(tmp_path)
    calls = []
    monkeypatch.setattr(encode_mod, "codes_for_points", lambda *a, **k: calls.append(1) or codes_for_points(*a, **k))
    with pytest.raises(StoreError, match=r"duplicate ids: the inputs hold 6 ids more than once .*--id-prefix"):
        encode_to_store(tiny_run, [tiny_data, second], tmp_path / "s", workers=1)
    assert calls == [] and not (tmp_path / "s").exists()


def test_append_with_id_prefix_keeps_both(tiny_run, tiny_data, tmp_path):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    second = _second_dataset(tmp_path)
    store, failed = encode_to_store(tiny_run, [second], tmp_path / "s", append=True, workers=1, id_prefix="b/")
    assert not failed and len(store) == 42
    reopened = LatentStore.open(tmp_path / "s")
    assert reopened.ids[36:] == [f"b/chair_{i:06d}" for i in range(6)]
    assert [it["source_id"] for it in reopened.items[36:]] == [f"chair_{i:06d}" for i in range(6)]
    assert reopened.items[0]["source_id"] == reopened.items[0]["id"] == "chair_000000"
    assert reopened.index_of("b/chair_000002") == 38
    from shapelatent.data.format import ShapeDataset

    ds = ShapeDataset(second)
    np.testing.assert_allclose(reopened.codes[36:], encode_to_store(tiny_run, [second], tmp_path / "t")[0].codes)
    assert item_key(reopened.items[38]) == (ds.meta[2]["id"], ds.meta[2]["source"])
    assert item_key(reopened.items[2]) != item_key(reopened.items[38])  # same dataset id, another source
    with pytest.raises(ValueError, match="--id-prefix must not contain whitespace"):
        encode_to_store(tiny_run, [second], tmp_path / "s", append=True, id_prefix="b ")


def test_store_without_source_id_column_reads_as_id(tiny_run, tiny_data, tmp_path):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    items_csv = tmp_path / "s" / "items.csv"
    lines = items_csv.read_text().splitlines()
    items_csv.write_text("\n".join(",".join(line.split(",")[:5]) for line in lines) + "\n")  # an older store
    store = LatentStore.open(tmp_path / "s")
    assert [it["source_id"] for it in store.items] == store.ids


def test_cli_encode_id_prefix_and_lookups_by_prefixed_id(tiny_run, tiny_data, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from shapelatent.cli.main import app
    from shapelatent.latent.decode import resolve_shape
    from viewers.interactive import neighbor_panels

    runner = CliRunner()
    store_dir = tmp_path / "s"
    encode_to_store(tiny_run, [tiny_data], store_dir, workers=1)
    second = _second_dataset(tmp_path, count=3)
    calls = []
    monkeypatch.setattr(encode_mod, "codes_for_points", lambda *a, **k: calls.append(1) or codes_for_points(*a, **k))
    base = ["encode", str(second), "--model", str(tiny_run), "--out", str(store_dir), "--append", "--workers", "1"]
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and calls == [] and res.stdout == ""
    err = " ".join(res.stderr.split())
    assert str(store_dir) in err and "'chair_000000'" in err and "--id-prefix PREFIX" in err
    res = runner.invoke(app, [*base, "--id-prefix", "b/", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["codes"] == 39 and calls
    store = LatentStore.open(store_dir)
    assert store.ids[36:] == ["b/chair_000000", "b/chair_000001", "b/chair_000002"]
    # interpolate / arithmetic resolve the prefixed id from the store
    shape = resolve_shape("b/chair_000001", load_model(tiny_run), store)
    np.testing.assert_array_equal(shape["code"], store.codes[37])
    # the viewer's neighbour panels take the prefixed id; the query panel is the second build's chair
    panels = neighbor_panels(store, "b/chair_000001", 1)
    assert panels[0].label.startswith("query b/chair_000001")
