from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError, OutputExistsError, StoreError
from shapelatent.latent.encode import codes_for_points, encode_to_store
from shapelatent.latent.store import LatentStore, model_fingerprint
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
