"""The on-disk dataset format: a folder that scales past memory.

Layout of a dataset folder::

    dataset.json       format name and version, sampling and normalisation parameters, classes, splits
    points.npy         (N, P, 3) float32, memory-mappable
    normals.npy        (N, P, 3) float32 unit normals, memory-mappable
    metadata.csv       one row per shape: index, id, source, class, split, license, creator, extra (JSON)
    build_report.json  what was built and every input that was skipped, with the reason
    provenance.json    config, seed, package version and commit that made it

Memory is a few bytes per shape, never per point, building or reading. A build streams arrays (:class:`NpyAppender`)
and metadata rows (a spool CSV) to disk, keeping an id hash and a split code per shape; reading
memory-maps the arrays, and :class:`MetadataTable` (in :mod:`shapelatent.data.metadata`) parses a metadata row
only when asked for, keeping 13 bytes a shape. A build is written into ``<out>.partial`` and renamed at the end;
an existing dataset is never overwritten without ``force``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shapelatent.data.metadata import _SEEDED, SPLITS, MetadataTable  # re-exported: MetadataTable, SPLITS
from shapelatent.errors import DatasetFormatError, OutputExistsError
from shapelatent.io.atomic import atomic_write_json

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_COLUMNS",
    "SPLITS",
    "DatasetWriter",
    "MetadataTable",
    "NpyAppender",
    "ShapeDataset",
    "assign_splits",
    "split_codes",
]

FORMAT_NAME = "shapelatent-dataset"
FORMAT_VERSION = 1
METADATA_COLUMNS = ("index", "id", "source", "class", "split", "license", "creator", "extra")
_HEADER_BYTES = 256  # fixed .npy header length so the final shape can be written in place


class NpyAppender:
    """Append rows to a ``.npy`` file of shape ``(N, *row_shape)`` without holding them in memory.

    The header is written with a fixed length and rewritten with the final N on :meth:`close`.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: str = "<f4") -> None:
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(self._header(0))

    def _header(self, n: int) -> bytes:
        desc = {"descr": self.dtype.str, "fortran_order": False, "shape": (n, *self.row_shape)}
        body = repr(desc).encode("latin1")
        magic = b"\x93NUMPY\x01\x00"
        pad = _HEADER_BYTES - len(magic) - 2 - len(body) - 1
        return magic + (_HEADER_BYTES - len(magic) - 2).to_bytes(2, "little") + body + b" " * pad + b"\n"

    def append(self, rows: np.ndarray) -> None:
        """Append rows of shape ``(k, *row_shape)`` or one row of shape ``row_shape``."""
        arr = np.ascontiguousarray(rows, dtype=self.dtype)
        if arr.shape == self.row_shape:
            arr = arr[None]
        if arr.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows must have shape (k, {self.row_shape}); got {arr.shape}")
        self._fh.write(arr.tobytes())
        self.count += len(arr)

    def close(self) -> None:
        """Write the final shape into the header and close the file."""
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(self._header(self.count))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def split_codes(n: int, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """Model-level split as compact codes: a seeded permutation of the N shapes cut by the fractions.

    Returns:
        (N,) uint8, ``SPLITS[code]`` is the split of each shape; the same as :func:`assign_splits`.
    """
    if set(fractions) - set(SPLITS):
        raise ValueError(f"split fractions must use the names {SPLITS}; got {sorted(fractions)}")
    total = sum(fractions.values())
    if any(f < 0 for f in fractions.values()) or not abs(total - 1.0) < 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1; got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    codes = np.zeros(n, dtype=np.uint8)
    start = 0
    for code, name in enumerate(SPLITS):
        stop = start + round(fractions.get(name, 0.0) * n) if name != SPLITS[-1] else n
        codes[order[start:stop]] = code
        start = stop
    return codes


def assign_splits(n: int, seed: int, fractions: dict[str, float]) -> list[str]:
    """Model-level split: a seeded permutation of the N shapes cut by the fractions.

    Returns:
        a list of N split names, each in :data:`SPLITS`.
    """
    return [SPLITS[c] for c in split_codes(n, seed, fractions).tolist()]


def _id_hash(shape_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(shape_id.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class DatasetWriter:
    """Streams shapes into a new dataset folder, in memory bounded independently of N.

    Points and normals go straight to ``.npy`` files; metadata rows to a spool CSV on disk. Per shape only
    9 bytes stay in memory (an id hash for the duplicate check and a split code). Use as a context manager;
    on success call :meth:`finalize`. Everything is written into ``<out>.partial`` first, and moved onto
    ``out`` only when complete.

    Attributes:
        count: shapes added so far.
        skipped: inputs that could not be used, with the reason.
    """

    out: Path
    num_points: int
    force: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.out.exists() and not self.force:
            raise OutputExistsError(
                f"{self.out}: already exists; pass --force to rebuild it (the old dataset is replaced "
                "only after the new one is complete), or choose another --out."
            )
        self.tmp = self.out.with_name(self.out.name + ".partial")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)  # a previous interrupted build; never a finished dataset
        self.tmp.mkdir(parents=True)
        self._points = NpyAppender(self.tmp / "points.npy", (self.num_points, 3))
        self._normals = NpyAppender(self.tmp / "normals.npy", (self.num_points, 3))
        self._spool_path = self.tmp / "metadata.spool.csv"
        self._spool = open(self._spool_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in _close
        self._spool_csv = csv.writer(self._spool, lineterminator="\n")
        self._spool_csv.writerow(METADATA_COLUMNS)
        self._hashes = array("Q")  # (N,) 64-bit id hashes: duplicate check without keeping the ids
        self._fixed = bytearray()  # (N,) fixed split code, _SEEDED when the split is seeded
        self._bad_splits: set[str] = set()
        self._classes: Counter[str] = Counter()
        self._final: Path | None = None

    @property
    def rows(self) -> MetadataTable:
        """The metadata rows added so far, read back lazily from disk (after :meth:`finalize`, the final ones)."""
        if self._final is not None:
            return MetadataTable(self._final / "metadata.csv")
        if not self._spool.closed:
            self._spool.flush()
        return MetadataTable(self._spool_path)

    def add(self, shape_id: str, points: np.ndarray, normals: np.ndarray, **meta: Any) -> None:
        """Add one shape.

        Args:
            shape_id: unique id.
            points: (P, 3) float32 normalised points.
            normals: (P, 3) float32 unit normals.
            **meta: source, class, license, creator, split (optional: fixed split, e.g. an official one;
                otherwise the seeded split), and anything else (stored as JSON in ``extra``).
        """
        self._points.append(points)
        self._normals.append(normals)
        row = {k: meta.pop(k, "") for k in ("source", "class", "license", "creator", "split")}
        split = row["split"]
        if split and split not in SPLITS:
            self._bad_splits.add(str(split))
        self._fixed.append(SPLITS.index(split) if split in SPLITS else _SEEDED)
        extra = json.dumps(meta, sort_keys=True) if meta else ""
        self._spool_csv.writerow(
            (self.count, shape_id, row["source"], row["class"], "", row["license"], row["creator"], extra)
        )
        self._hashes.append(_id_hash(shape_id))
        self._classes[row["class"]] += 1
        self.count += 1

    def skip(self, source: str, reason: str) -> None:
        """Record an input that could not be used, with the reason."""
        self.skipped.append({"source": source, "reason": reason})

    def _close(self) -> None:
        self._points.close()
        self._normals.close()
        self._spool.close()

    def abort(self) -> None:
        """Drop the partial build."""
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _duplicate_ids(self) -> list[str]:
        hashes = np.frombuffer(self._hashes, dtype=np.uint64) if self.count else np.zeros(0, np.uint64)
        uniq, counts = np.unique(hashes, return_counts=True)
        suspects = {int(h) for h in uniq[counts > 1]}
        if not suspects:
            return []
        with open(self._spool_path, newline="", encoding="utf-8") as fh:  # only ids whose hash repeats
            seen = Counter(r["id"] for r in csv.DictReader(fh) if _id_hash(r["id"]) in suspects)
        return [k for k, v in seen.items() if v > 1]

    def finalize(
        self, info: dict[str, Any], split_seed: int, fractions: dict[str, float], split_method: str = "random"
    ) -> Path:
        """Assign splits, write metadata and ``dataset.json``, and move the folder into place.

        Rows are streamed from the spool into ``metadata.csv``; memory stays bounded independently of N.

        Args:
            info: stored in ``dataset.json`` (source, sampling, ...).
            split_seed: seeds the split of the rows added without a fixed one.
            fractions: ``{split: fraction}`` of that split.
            split_method: ``random`` (one seeded permutation of all shapes, :func:`split_codes`) or ``stratified``
                (cut per class, :func:`shapelatent.data.splits.stratified_split`; reads the classes back from the
                spool, 4 bytes a shape). Rows with a fixed split keep it either way.

        Raises:
            DatasetFormatError: no shape could be built (the report lists why), duplicate ids, or unknown
                split names.
            ValueError: an unknown split method.
        """
        from shapelatent.data.splits import check_split_method

        check_split_method(split_method)
        self._close()
        report = {"built": self.count, "skipped": self.skipped}
        atomic_write_json(self.tmp / "build_report.json", report)
        if not self.count:
            reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in self.skipped[:5])
            raise DatasetFormatError(
                f"{self.out}: no shape could be built from the inputs ({len(self.skipped)} skipped: {reasons}). "
                f"The partial build is in {self.tmp}."
            )
        dupes = self._duplicate_ids()
        if dupes:
            raise DatasetFormatError(f"{self.out}: duplicate shape ids {dupes[:5]}; ids must be unique.")
        if self._bad_splits:
            raise DatasetFormatError(f"{self.out}: unknown split names {sorted(self._bad_splits)}; allowed: {SPLITS}.")
        # Rows that came with a split (e.g. ModelNet's official one) keep it; the others are split seeded.
        fixed = np.frombuffer(self._fixed, dtype=np.uint8)
        if split_method == "stratified":
            codes = fixed.copy()
            seeded = np.flatnonzero(fixed == _SEEDED)
            codes[seeded] = self._stratified(seeded, split_seed, fractions)
        else:
            codes = np.where(fixed == _SEEDED, split_codes(self.count, split_seed, fractions), fixed)  # (N,)
        with (
            open(self._spool_path, newline="", encoding="utf-8") as src,
            open(self.tmp / "metadata.csv", "w", newline="", encoding="utf-8") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
            writer.writerow(next(reader))
            split_col = METADATA_COLUMNS.index("split")
            for row, code in zip(reader, codes.tolist(), strict=True):
                row[split_col] = SPLITS[code]
                writer.writerow(row)
            dst.flush()
            os.fsync(dst.fileno())
        self._spool_path.unlink()
        counts = np.bincount(codes, minlength=len(SPLITS))
        full = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "num_shapes": self.count,
            "num_points": self.num_points,
            "conventions": {"up": "+Y", "front": "+Z"},
            **info,
            "split": {
                "method": split_method,
                "seed": split_seed,
                "fractions": fractions,
                "counts": {name: int(c) for name, c in zip(SPLITS, counts, strict=True) if c},
            },
            "classes": dict(sorted(self._classes.items())),
            "skipped": len(self.skipped),
        }
        atomic_write_json(self.tmp / "dataset.json", full)
        if self.out.exists():  # only reachable with force=True; the new build is complete
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self._final = self.out
        return self.out

    def _stratified(self, rows: np.ndarray, seed: int, fractions: dict[str, float]) -> np.ndarray:
        """(R,) uint8 stratified split codes of the spool's rows ``rows`` (sorted), classes read back from the spool."""
        from shapelatent.data.splits import stratified_split

        names: dict[str, int] = {}
        class_codes = array("i")
        with open(self._spool_path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            col = next(reader).index("class")
            for row in reader:
                class_codes.append(names.setdefault(row[col], len(names)))
        labels = list(names)
        chosen = np.frombuffer(class_codes, dtype=np.int32)[rows]  # (R,)
        return stratified_split([labels[c] for c in chosen.tolist()], seed, fractions)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.tmp.exists() and not (self.tmp / "build_report.json").exists():
            self.abort()
        elif exc_type is not None:
            self._close()


class ShapeDataset:
    """A dataset folder opened read-only, with arrays memory-mapped.

    Attributes:
        root: the folder.
        info: the parsed ``dataset.json``.
        points: (N, P, 3) float32 memmap.
        normals: (N, P, 3) float32 memmap.
        meta: the N metadata rows (:class:`MetadataTable`: ``meta[i]`` is a dict of the columns, read lazily).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        info_path = self.root / "dataset.json"
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such dataset folder; build one with `shapelatent data build`.")
        if not info_path.exists():
            raise DatasetFormatError(
                f"{self.root}: not a shapelatent dataset (no dataset.json); build one with `shapelatent data build`."
            )
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetFormatError(f"{info_path}: not valid JSON ({exc}).") from exc
        if self.info.get("format") != FORMAT_NAME:
            raise DatasetFormatError(f"{info_path}: format is {self.info.get('format')!r}, expected {FORMAT_NAME!r}.")
        version = self.info.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetFormatError(
                f"{info_path}: dataset format version {version!r}, this shapelatent reads version {FORMAT_VERSION}; "
                "rebuild the dataset with this version (`shapelatent data build ... --force`)."
            )
        try:
            self.points = np.load(self.root / "points.npy", mmap_mode="r", allow_pickle=False)
            self.normals = np.load(self.root / "normals.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetFormatError(f"{self.root}: points.npy/normals.npy missing or unreadable ({exc}).") from exc
        self.meta = MetadataTable(self.root / "metadata.csv")
        n, p = self.info["num_shapes"], self.info["num_points"]
        for name, arr in (("points.npy", self.points), ("normals.npy", self.normals)):
            if arr.shape != (n, p, 3) or arr.dtype != np.float32:
                raise DatasetFormatError(
                    f"{self.root / name}: shape {arr.shape} {arr.dtype}, dataset.json says ({n}, {p}, 3) float32; "
                    "the dataset is truncated or corrupt, rebuild it."
                )
        if len(self.meta) != n:
            raise DatasetFormatError(f"{self.root / 'metadata.csv'}: {len(self.meta)} rows, expected {n}.")

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def num_points(self) -> int:
        """P, points per shape."""
        return int(self.info["num_points"])

    def indices(self, split: str | None = None) -> np.ndarray:
        """(M,) int64 indices of the shapes in a split (all shapes when None)."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        return np.flatnonzero(self.meta.split_codes == SPLITS.index(split)).astype(np.int64)

    def classes(self) -> list[str]:
        """The class of every shape, in index order."""
        names = self.meta.class_names
        return [names[c] for c in self.meta.class_codes.tolist()]
