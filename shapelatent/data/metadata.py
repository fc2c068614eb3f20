"""``metadata.csv`` of a dataset folder (see :mod:`shapelatent.data.format`), read lazily: :class:`MetadataTable`.

Opening keeps 13 bytes a shape (a byte offset, a split code, a class code); a row is parsed only when asked for.
:mod:`shapelatent.data.format` re-exports :class:`MetadataTable` and :data:`SPLITS`.
"""

from __future__ import annotations

import csv
import io
import mmap
import operator
import os
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from shapelatent.errors import DatasetFormatError

__all__ = ["SPLITS", "MetadataTable"]

SPLITS = ("train", "val", "test")
_SEEDED = 255  # split code: no fixed split (the seeded one applies), or an unknown split name when reading


class MetadataTable(Sequence[dict[str, str]]):
    """``metadata.csv`` read lazily: row i is parsed from disk when asked for.

    Opening scans the file once, keeping only a byte offset, a split code and a class code per row
    (13 bytes), so memory stays small for millions of shapes and forked data-loader workers share it. The
    file is memory-mapped read-only (page cache, not anonymous memory); the table pickles without it.

    Attributes:
        path: the CSV file.
        columns: the header.
        split_codes: (N,) uint8, ``SPLITS[code]``, or 255 for a split name not in :data:`SPLITS`.
        class_codes: (N,) int32 into :attr:`class_names`.
        class_names: the distinct classes, in order of first appearance.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetFormatError(f"{self.path}: metadata file missing; rebuild the dataset.")
        offsets, splits, classes = array("q"), bytearray(), array("i")
        names: dict[str, int] = {}
        with open(self.path, "rb") as fh:
            self.columns = next(csv.reader([fh.readline().decode("utf-8")]), [])
            missing = [c for c in ("id", "split", "class") if c not in self.columns]
            if missing:
                raise DatasetFormatError(f"{self.path}: header {self.columns} lacks the columns {missing}.")
            split_col, class_col = self.columns.index("split"), self.columns.index("class")
            for n, row in enumerate(csv.reader(_record_lines(fh, offsets)), 1):
                if len(offsets) != n:  # a stray quote outside a quoted field: not a CSV shapelatent wrote
                    raise DatasetFormatError(f"{self.path}: row {n} is not valid CSV quoting; rebuild the dataset.")
                split = row[split_col] if len(row) > split_col else ""
                splits.append(SPLITS.index(split) if split in SPLITS else _SEEDED)
                classes.append(names.setdefault(row[class_col] if len(row) > class_col else "", len(names)))
            self._end = fh.tell()
        self._offsets = np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64)
        self.split_codes = np.frombuffer(splits, dtype=np.uint8) if splits else np.zeros(0, np.uint8)
        self.class_codes = np.frombuffer(classes, dtype=np.int32) if classes else np.zeros(0, np.int32)
        self.class_names = list(names)
        self._map: mmap.mmap | None = None

    def __len__(self) -> int:
        return len(self._offsets)

    def _row(self, i: int) -> dict[str, str]:
        if self._map is None:
            with open(self.path, "rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        stop = int(self._offsets[i + 1]) if i + 1 < len(self) else self._end
        text = self._map[int(self._offsets[i]) : stop].decode("utf-8")
        return dict(zip(self.columns, next(csv.reader(io.StringIO(text, newline=""))), strict=False))

    @overload
    def __getitem__(self, i: int) -> dict[str, str]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, str] | list[dict[str, str]]:
        """Row ``i`` as a dict of the columns (a slice gives a list of them)."""
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        j = operator.index(i)
        if not -len(self) <= j < len(self):
            raise IndexError(f"{self.path}: row {i} out of range for {len(self)} rows")
        return self._row(j % len(self))

    def __iter__(self) -> Iterator[dict[str, str]]:
        """Stream the rows in order (sequential read, nothing kept)."""
        with open(self.path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None}


def _record_lines(fh: BinaryIO, offsets: array) -> Iterator[str]:
    """Yield the decoded lines of a CSV body, appending the byte offset of each record's first line.

    A line starts a record when the quotes before it are balanced (``csv`` doubles quotes inside fields).
    """
    pos, quotes = fh.tell(), 0
    for line in fh:
        if quotes % 2 == 0:
            if line in (b"\n", b"\r\n"):  # a blank line between records: csv skips it
                pos += len(line)
                continue
            offsets.append(pos)
        quotes += line.count(b'"')
        pos += len(line)
        yield line.decode("utf-8")
