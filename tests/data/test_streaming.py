"""Datasets larger than memory: building and reading back take memory that does not grow with the dataset.

Memory is measured in child processes (``ru_maxrss``, ``/proc/self/status``), never time. Each check compares
a small and a large run, so the interpreter's and the libraries' own footprint cancels out.
"""

from __future__ import annotations

import csv
import json
import operator
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from shapelatent.data.build import parallel_map
from shapelatent.data.format import SPLITS, DatasetWriter, MetadataTable, ShapeDataset
from shapelatent.errors import DatasetFormatError

MIB = 1024 * 1024


def _child(code: str, *args: object) -> dict:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = args); it prints one JSON object last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


BUILD = """
    import json, resource, sys
    from shapelatent.data.build import SamplingConfig
    from shapelatent.data.sources.procedural import build_procedural
    out, count, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    build_procedural(out, count, sampling=SamplingConfig(num_points=points), seed=1, workers=1)
    print(json.dumps({"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def test_build_peak_rss_does_not_grow_with_count(tmp_path):
    # P=2048: 900 more shapes are 900 * 2048 * 3 * 4 * 2 = 42 MiB more points + normals on disk.
    points, small_n, large_n = 2048, 100, 1000
    small = _child(BUILD, tmp_path / "small", small_n, points)["maxrss"]
    large = _child(BUILD, tmp_path / "large", large_n, points)["maxrss"]
    data_diff = (large_n - small_n) * points * 3 * 4 * 2
    disk = sum((tmp_path / "large" / n).stat().st_size for n in ("points.npy", "normals.npy"))
    assert disk > data_diff  # the data really is on disk
    assert large - small < data_diff / 8, f"peak RSS grew {(large - small) / MIB:.1f} MiB for {data_diff / MIB:.0f} MiB"


WRITER = """
    import json, resource, sys
    import numpy as np
    from shapelatent.data.format import DatasetWriter
    out, count = sys.argv[1], int(sys.argv[2])
    zeros = np.zeros((4, 3), np.float32)
    params = {f"param_{k}": 0.123456789 * k for k in range(40)}  # about 1 KiB of metadata per row, like a chair's
    with DatasetWriter(out, 4) as writer:
        for i in range(count):
            writer.add(f"shape_{i:07d}", zeros, zeros, source=f"src/{i}", license="CC0-1.0", creator="test",
                       params=params, **{"class": f"c{i % 7}"})
        writer.finalize({}, split_seed=0, fractions={"train": 0.8, "val": 0.1, "test": 0.1})
    print(json.dumps({"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def test_writer_peak_rss_does_not_grow_with_metadata_rows(tmp_path):
    """Metadata rows, the split assignment and the duplicate-id check stay on disk, not in memory."""
    small = _child(WRITER, tmp_path / "small", 500)["maxrss"]
    large = _child(WRITER, tmp_path / "large", 20_000)["maxrss"]
    csv_diff = (tmp_path / "large" / "metadata.csv").stat().st_size - (
        tmp_path / "small" / "metadata.csv"
    ).stat().st_size
    assert csv_diff > 15 * MIB
    # a few bytes a row are kept (id hash, split code); holding the rows would cost several times csv_diff
    assert large - small < csv_diff / 8, f"peak RSS grew {(large - small) / MIB:.1f} MiB for {csv_diff / MIB:.0f} MiB"
    ds = ShapeDataset(tmp_path / "large")
    assert ds.info["split"]["counts"] == {"train": 16_000, "val": 2_000, "test": 2_000}
    assert ds.meta[12_345]["id"] == "shape_0012345" and ds.classes()[12_345] == "c4"


READ = """
    import json, sys
    import numpy as np
    from shapelatent.data.format import ShapeDataset

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

    ds = ShapeDataset(sys.argv[1])
    base, peak, total = anon(), 0, 0.0
    for i in range(len(ds)):  # row by row, as a data loader does
        total += float(np.array(ds.points[i]).sum()) + float(np.array(ds.normals[i]).sum())
        _ = ds.meta[i]["id"]
        if i % 50 == 0:
            peak = max(peak, anon())
    ids = [m["id"] for m in ds.meta]
    peak = max(peak, anon())
    whole = np.array(ds.points)  # positive control: a copy of the whole array is anonymous memory
    print(json.dumps({"base": base, "peak": peak, "whole": anon(), "total": total, "ids": len(ids)}))
"""


def test_reading_row_by_row_needs_no_anonymous_copy(tmp_path):
    n, p = 1500, 2048  # 2 x 35 MiB of arrays
    rng = np.random.default_rng(0)
    expected = 0.0
    with DatasetWriter(tmp_path / "ds", p) as writer:
        for i in range(n):
            pts, nrm = rng.random((p, 3), dtype=np.float32), rng.random((p, 3), dtype=np.float32)
            expected += float(pts.sum()) + float(nrm.sum())
            writer.add(f"s{i}", pts, nrm, **{"class": "x"})
        writer.finalize({}, split_seed=0, fractions={"train": 1.0})
    got = _child(READ, tmp_path / "ds")
    array_bytes = n * p * 3 * 4
    assert got["total"] == pytest.approx(expected, rel=1e-4) and got["ids"] == n
    assert got["peak"] - got["base"] < array_bytes / 8, (
        f"anonymous memory grew {(got['peak'] - got['base']) / MIB:.1f} MiB"
    )
    assert got["whole"] - got["base"] > array_bytes * 0.9  # the measurement does see a real copy


class _Recorded(Sequence):
    """A lazy sequence of ints that remembers the highest index anyone asked for."""

    def __init__(self, n: int) -> None:
        self.n, self.highest = n, -1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.highest = max(self.highest, i)
        return i


def test_parallel_map_keeps_a_bounded_window():
    tasks = _Recorded(2000)
    it = parallel_map(operator.neg, tasks, workers=2)
    assert next(it) == 0
    assert tasks.highest < 200  # a few chunks ahead of the consumer, not the whole task list
    assert [0, *it] == [-i for i in range(2000)]


def test_parallel_map_stops_early_without_error():
    it = parallel_map(operator.neg, range(5000), workers=2)
    assert [next(it) for _ in range(3)] == [0, -1, -2]
    it.close()  # the consumer gives up: pending chunks are cancelled, the pool shuts down


AWKWARD = [
    ("a", {"source": 'quote " and, comma', "creator": "line\nbreak", "class": "chair"}),
    ("b", {"source": "ünïcødé/路径", "creator": "", "class": "table", "split": "test", "note": 'x"\n"y'}),
    ("c", {"source": "", "creator": "\r\n", "class": "chair"}),
    ("d", {"source": "plain", "creator": "plain", "class": "sofa", "split": "val"}),
]


def _write(out: Path, rows=AWKWARD, fractions=None) -> Path:
    with DatasetWriter(out, 2) as writer:
        for sid, meta in rows:
            writer.add(sid, np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), **dict(meta))
        return writer.finalize({}, split_seed=0, fractions=fractions or {"train": 0.5, "val": 0.5})


def test_metadata_table_matches_csv_reader(tmp_path):
    ds = ShapeDataset(_write(tmp_path / "ds"))
    with open(tmp_path / "ds" / "metadata.csv", newline="", encoding="utf-8") as fh:
        oracle = list(csv.DictReader(fh))  # brute force: the whole file parsed at once
    assert len(ds.meta) == len(oracle) == 4
    assert [ds.meta[i] for i in range(4)] == oracle == list(ds.meta) == ds.meta[:]
    assert ds.meta[-1] == oracle[-1] and ds.meta[np.int64(1)] == oracle[1] and ds.meta[1:3] == oracle[1:3]
    assert ds.meta[0]["creator"] == "line\nbreak" and json.loads(ds.meta[1]["extra"]) == {"note": 'x"\n"y'}
    assert ds.meta[2]["creator"] == "\r\n"
    assert ds.classes() == [m["class"] for m in oracle]
    for split in SPLITS:
        assert ds.indices(split).tolist() == [i for i, m in enumerate(oracle) if m["split"] == split]
    assert ds.meta[1]["split"] == "test" and ds.meta[3]["split"] == "val"  # fixed splits are kept
    again = pickle.loads(pickle.dumps(ds.meta))
    assert list(again) == oracle and again[2] == oracle[2]
    with pytest.raises(IndexError, match="row 4 out of range for 4 rows"):
        ds.meta[4]


def test_writer_rows_are_read_from_disk(tmp_path):
    with DatasetWriter(tmp_path / "ds", 2) as writer:
        writer.add("x", np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), **{"class": "c"})
        assert len(writer.rows) == 1 and writer.rows[0]["id"] == "x" and writer.rows[0]["split"] == ""
        writer.finalize({}, split_seed=0, fractions={"train": 1.0})
    assert isinstance(writer.rows, MetadataTable) and writer.rows[0]["split"] == "train"


def test_writer_refuses_duplicate_ids(tmp_path):
    rows = [(f"s{i}", {"class": "c"}) for i in range(50)] + [("s7", {"class": "c"}), ("s3", {"class": "c"})]
    with pytest.raises(DatasetFormatError, match=r"duplicate shape ids \['s3', 's7'\]; ids must be unique"):
        _write(tmp_path / "ds", rows)
    assert not (tmp_path / "ds").exists()


def test_writer_refuses_unknown_split_names(tmp_path):
    rows = [("a", {"class": "c", "split": "training"}), ("b", {"class": "c"})]
    with pytest.raises(DatasetFormatError, match=r"unknown split names \['training'\]; allowed"):
        _write(tmp_path / "ds", rows)


def test_metadata_table_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"missing\.csv: metadata file missing; rebuild the dataset"):
        MetadataTable(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("index,name\n0,a\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"bad\.csv: header \['index', 'name'\] lacks the columns"):
        MetadataTable(tmp_path / "bad.csv")
    (tmp_path / "stray.csv").write_text('index,id,class,split\n0,a"b,c,train\n1,b,c,val\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"stray\.csv: row 2 is not valid CSV quoting; rebuild the dataset"):
        MetadataTable(tmp_path / "stray.csv")
