"""The training batch reader: positional reads equal the memory map, bounded RSS, reproducible for any worker count."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import NpyAppender
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.errors import DatasetFormatError
from shapelatent.models import ModelConfig
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.data import NpyRows, TrainLoader, split_batch
from shapelatent.train.loop import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "chairs"
    build_procedural(out, 24, sampling=SamplingConfig(num_points=64), seed=1, workers=1)
    return out


def _rss_kib() -> dict[str, int]:
    rows = open("/proc/self/status", encoding="ascii").read().splitlines()
    return {k: int(v.split()[0]) for k, v in (r.split(":", 1) for r in rows) if k in ("RssAnon", "RssFile")}


@pytest.mark.parametrize("writer", ["np.save", "NpyAppender"])
def test_reader_returns_exactly_the_memmap_rows(tmp_path, writer):
    arr = np.random.default_rng(0).standard_normal((40, 16, 3)).astype(np.float32)
    path = tmp_path / "a.npy"
    if writer == "np.save":
        np.save(path, arr)
    else:  # the dataset builder's fixed 256-byte header
        app = NpyAppender(path, (16, 3))
        app.append(arr)
        app.close()
    mm = np.load(path, mmap_mode="r")
    reader = NpyRows(path)
    assert reader.shape == (40, 16, 3) and len(reader) == 40
    # shuffled, with runs of consecutive rows, repeats and both ends
    idx = np.array([39, 3, 4, 5, 6, 0, 17, 5, 16, 18, 38, 39, 1])
    got = reader.read(idx)
    assert got.dtype == np.float32 and got.flags.owndata and not isinstance(got, np.memmap)
    np.testing.assert_array_equal(got, mm[idx])
    np.testing.assert_array_equal(reader.read(np.arange(40)), arr)
    assert reader.read([]).shape == (0, 16, 3)


def test_reader_without_preadv_reads_the_same(tmp_path, monkeypatch):
    arr = np.arange(30 * 4 * 3, dtype=np.float32).reshape(30, 4, 3)
    np.save(tmp_path / "a.npy", arr)
    idx = np.array([7, 8, 9, 2, 29, 0])
    want = NpyRows(tmp_path / "a.npy").read(idx)
    monkeypatch.delattr(os, "preadv")
    np.testing.assert_array_equal(NpyRows(tmp_path / "a.npy").read(idx), want)
    np.testing.assert_array_equal(want, arr[idx])


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy: no such array file"):
        NpyRows(tmp_path / "missing.npy")
    np.save(tmp_path / "a.npy", np.zeros((5, 2, 3), np.float32))
    with pytest.raises(IndexError, match=r"a.npy: row 5 out of range \[0, 5\)"):
        NpyRows(tmp_path / "a.npy").read([0, 5])
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with pytest.raises(DatasetFormatError, match="cut.npy: .* the file is truncated"):
        NpyRows(tmp_path / "cut.npy")
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((5, 2, 3), np.float32)))
    with pytest.raises(DatasetFormatError, match="f.npy: need a C-ordered"):
        NpyRows(tmp_path / "f.npy")
    (tmp_path / "x.npy").write_bytes(b"not an array at all")
    with pytest.raises(DatasetFormatError, match="x.npy: not a readable .npy array"):
        NpyRows(tmp_path / "x.npy")


def test_reads_keep_rss_bounded_where_the_memmap_does_not(tmp_path):
    # 1200 shapes x 2048 points: a 28 MiB file, read whole in batches of 32 shapes (0.75 MiB each)
    n, p = 1200, 2048
    path = tmp_path / "big.npy"
    app = NpyAppender(path, (p, 3))
    rng = np.random.default_rng(0)
    for _ in range(n // 100):
        app.append(rng.standard_normal((100, p, 3), dtype=np.float32))
    app.close()
    file_kib = path.stat().st_size // 1024
    order = rng.permutation(n)

    reader = NpyRows(path)
    before = _rss_kib()
    checksum = 0.0
    for s in range(0, n, 32):
        checksum += float(reader.read(order[s : s + 32])[:, 0, 0].sum())
    after = _rss_kib()
    assert after["RssFile"] - before["RssFile"] < 4096, (before, after)  # nothing mapped
    assert after["RssAnon"] - before["RssAnon"] < 8192, (before, after)  # about one batch

    mm = np.load(path, mmap_mode="r")  # the control: every touched page stays mapped
    before = _rss_kib()
    ref = 0.0
    for s in range(0, n, 32):
        ref += float(np.asarray(mm[np.sort(order[s : s + 32])])[:, 0, 0].sum())
    after = _rss_kib()
    assert after["RssFile"] - before["RssFile"] > file_kib // 2, (before, after, file_kib)
    assert ref == pytest.approx(checksum, rel=1e-5)
    del mm


def test_split_batch_covers_the_batch_evenly():
    for n in range(0, 13):
        for world in (1, 2, 3, 4):
            parts = [split_batch(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1
            np.testing.assert_array_equal(np.concatenate(np.array_split(np.arange(n), world)), np.arange(n))
            assert sizes == [len(a) for a in np.array_split(np.arange(n), world)]


def _epoch(loader: TrainLoader, epoch: int) -> list:
    return [(b.points.clone(), b.normals.clone(), b.global_size) for b in loader.epoch(epoch)]


def test_batches_do_not_depend_on_workers_or_world_size(tiny_data):
    from shapelatent.data.format import ShapeDataset

    train_idx = ShapeDataset(tiny_data).indices("train")  # 19 shapes: batches of 8, 8, 3
    assert len(train_idx) == 19
    opts = {"rotate": True, "scale": (0.8, 1.2), "with_normals": True}
    single = TrainLoader(tiny_data, train_idx, 8, seed=4, **opts)
    assert single.steps == 3
    e1 = _epoch(single, 1)
    assert [b[2] for b in e1] == [8, 8, 3]
    assert _epoch(single, 1)[2][0].equal(e1[2][0])  # an epoch can be re-read
    assert not _epoch(single, 2)[0][0].equal(e1[0][0])  # another epoch, another order/augmentation
    with_workers = TrainLoader(tiny_data, train_idx, 8, seed=4, workers=2, **opts)
    for a, b in zip(e1, _epoch(with_workers, 1), strict=True):
        assert a[0].equal(b[0]) and a[1].equal(b[1]) and a[2] == b[2]
    # two ranks read disjoint halves that together are the single-process batch, augmentation included
    halves = [_epoch(TrainLoader(tiny_data, train_idx, 8, seed=4, rank=r, world_size=2, **opts), 1) for r in (0, 1)]
    for step, whole in enumerate(e1):
        assert torch.cat([halves[0][step][0], halves[1][step][0]]).equal(whole[0])
        assert torch.cat([halves[0][step][1], halves[1][step][1]]).equal(whole[1])
    assert [len(h[2][0]) for h in halves] == [2, 1]  # the last batch of 3 is split 2 + 1
    # a last batch with fewer shapes than processes is skipped (19 = 4 * 4 + 3 with 4 processes)
    quad = TrainLoader(tiny_data, train_idx, 4, seed=4, rank=3, world_size=4)
    assert quad.steps == 4 and len(_epoch_points(quad)) == 4


def _epoch_points(loader: TrainLoader) -> list:
    return [b.points for b in loader.epoch(0)]


def test_training_with_worker_processes_gives_the_same_losses(tiny_data, tmp_path):
    def cfg(workers):
        return RunConfig(
            model=ModelConfig(num_points=64, latent_dim=8, encoder_channels=(16, 32), decoder_hidden=(32,)),
            train=TrainConfig(
                epochs=2, batch_size=8, lr=1e-3, seed=2, device="cpu", threads=1, augment_rotate=True, workers=workers
            ),
        )

    # The first numba Chamfer call in a process shifts later float results by ~1e-7 (an effect of ops/, seen
    # with or without workers); make both runs follow it so that the comparison can be exact.
    from shapelatent.ops.chamfer import chamfer_distance

    chamfer_distance(torch.zeros(1, 4, 3), torch.ones(1, 4, 3))
    a = train(tiny_data, tmp_path / "w0", cfg(0))
    b = train(tiny_data, tmp_path / "w2", cfg(2))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.summary["test_chamfer"] == b.summary["test_chamfer"]


def test_release_freed_heap_returns_memory_after_large_frees():
    import sys

    from shapelatent.train.malloc import release_freed_heap

    if not sys.platform.startswith("linux"):
        assert release_freed_heap() is False
        return

    def anon_mib() -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon")) / 1024

    # Many medium blocks (below glibc's mmap threshold) freed except the last one: the heap cannot shrink from its
    # top by itself, only malloc_trim hands the freed pages inside it back.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MiB on the heap
    for b in blocks:
        b[::4096] = b"\x01" * len(b[::4096])  # touch every page
    keep = blocks[-1]
    del blocks
    before = anon_mib()
    assert release_freed_heap() is True
    after = anon_mib()
    assert before - after > 100, (before, after)
    assert keep[0] == 1
