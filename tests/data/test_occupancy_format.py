"""The occupancy format: packing, writing atomically, reading memory-mapped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shapelatent.data.occupancy import (
    OccupancyWriter,
    has_occupancy,
    pack_labels,
    read_occupancy,
    unpack_labels,
    write_occupancy,
)
from shapelatent.errors import DatasetFormatError, OutputExistsError

INFO = {
    "uniform": 8,
    "near_surface": 8,
    "sigma": [0.01, 0.05],
    "label_method": "winding",
    "shell_eps": 0.017,
    "seed": 0,
}


@pytest.mark.parametrize("q", [8, 16, 8192])
def test_pack_round_trip(rng, q):
    labels = rng.random((3, q)) < 0.3
    packed = pack_labels(labels)
    assert packed.shape == (3, q // 8) and packed.dtype == np.uint8
    assert np.array_equal(packed, np.packbits(labels, axis=1, bitorder="little"))
    assert np.array_equal(unpack_labels(packed, q), labels)


def test_pack_needs_multiple_of_8():
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_labels(np.zeros((2, 12), bool))
    with pytest.raises(ValueError, match="uint8"):
        unpack_labels(np.zeros((2, 2), np.uint8), 24)


def _arrays(rng, n=4, q=16):
    return rng.uniform(-1.1, 1.1, (n, q, 3)), rng.random((n, q)) < 0.5


def test_write_read_round_trip(tmp_path, rng):
    pts, lab = _arrays(rng)
    assert not has_occupancy(tmp_path)
    write_occupancy(tmp_path, pts, lab, [True, False, True, True], **INFO)
    assert has_occupancy(tmp_path)
    occ = read_occupancy(tmp_path)
    assert isinstance(occ.points, np.memmap)
    assert occ.points.shape == (4, 16, 3) and occ.points.dtype == np.float16
    assert occ.labels.shape == (4, 2) and occ.labels.dtype == np.uint8
    assert occ.valid.tolist() == [True, False, True, True]
    assert occ.meta["format"] == "shapelatent-occupancy" and occ.meta["version"] == 1
    assert occ.meta["queries"] == 16 and occ.meta["built"] == 4 and occ.meta["box"] == 1.1
    ok = occ.valid
    assert np.array_equal(unpack_labels(occ.labels, 16)[ok], lab[ok])
    assert np.allclose(occ.points[ok], pts[ok], atol=1e-3)
    assert not np.asarray(occ.points[1]).any()  # an invalid row carries nothing
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_existing_set_needs_force_and_survives_a_failed_rewrite(tmp_path, rng):
    pts, lab = _arrays(rng)
    write_occupancy(tmp_path, pts, lab, **INFO)
    with pytest.raises(OutputExistsError, match="force"):
        write_occupancy(tmp_path, pts, lab, **INFO)
    before = np.array(read_occupancy(tmp_path).labels)
    with pytest.raises(RuntimeError), OccupancyWriter(tmp_path, 16, INFO, force=True) as w:
        w.add(pts[0], ~lab[0])
        raise RuntimeError("interrupted")
    assert np.array_equal(read_occupancy(tmp_path).labels, before)  # nothing built is lost
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_read_errors(tmp_path, rng):
    with pytest.raises(DatasetFormatError, match="--occupancy"):
        read_occupancy(tmp_path)
    pts, lab = _arrays(rng)
    write_occupancy(tmp_path, pts, lab, **INFO)
    meta = json.loads((tmp_path / "occupancy.json").read_text())
    (tmp_path / "occupancy.json").write_text(json.dumps({**meta, "built": 5}))
    with pytest.raises(DatasetFormatError, match="truncated or corrupt"):
        read_occupancy(tmp_path)
    (tmp_path / "occupancy.json").write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(DatasetFormatError, match="version"):
        read_occupancy(tmp_path)
    assert not has_occupancy(tmp_path)


def test_bad_queries(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        OccupancyWriter(tmp_path, 12)
