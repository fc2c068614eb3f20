"""The latent store: one code per shape, with what the shape is and which model made the code.

Layout of a store folder::

    store.json   format name and version, Z, count, the model's fingerprint and sampling/normalisation
    codes.npy    (N, Z) float32
    items.csv    index, id, source, class, split, source_id, refine, refine_cd_before, refine_cd_after
    provenance.json

Refined codes (``encode --refine N``, :mod:`shapelatent.latent.refine`): an item's ``refine`` column names the
settings its code was refined with (a key of ``store.json``'s ``refinements``, e.g. ``steps=100;lr=0.1;prior=0.0``;
empty for the encoder's own code), and ``refine_cd_before``/``refine_cd_after`` hold the Chamfer distance of the
decoded code to the shape's points before and after. ``refinements`` maps each key to its settings, how many codes
were refined with them and the seconds it took. Stores written before refinement existed have neither and read as
unrefined; older readers ignore both, so the format version is unchanged.

A store records the fingerprint (SHA-256 of the weights) of the model that made its codes; using it
with another model is an error (:meth:`LatentStore.check_model`).

Ids are unique in a store. ``source_id`` is the item's id in the dataset (or among the inputs) it was encoded
from: the same as ``id`` unless ``encode --id-prefix`` prefixed it; a dataset row is found again by
:func:`item_key` (``source_id`` and ``source``). Stores written before ``source_id`` existed read as
``source_id = id``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from shapelatent.errors import OutputExistsError, StoreError
from shapelatent.io.atomic import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["STORE_FORMAT", "STORE_VERSION", "LatentStore", "RefinementRecord", "item_key", "model_fingerprint"]

STORE_FORMAT = "shapelatent-store"
STORE_VERSION = 1
ITEM_COLUMNS = ("index", "id", "source", "class", "split", "source_id", "refine", "refine_cd_before", "refine_cd_after")
#: Ids of clashing items shown in an error message.
_SHOWN_IDS = 5


class RefinementRecord(NamedTuple):
    """How M codes appended together were refined (:mod:`shapelatent.latent.refine`).

    Attributes:
        key: the settings' short name (``RefineSettings.key``), stored in each item's ``refine`` column.
        settings: the settings as JSON (``RefineSettings.to_dict``), stored once per key in ``store.json``.
        chamfer_before: (M,) Chamfer of the encoder's codes to the shapes' points.
        chamfer_after: (M,) Chamfer of the refined codes.
        seconds_per_shape: refinement wall time per shape.
    """

    key: str
    settings: dict[str, Any]
    chamfer_before: Sequence[float]
    chamfer_after: Sequence[float]
    seconds_per_shape: float


def item_key(item: dict[str, str]) -> tuple[str, str]:
    """``(id in its dataset, source)`` of a store item, to find its row in the dataset it was encoded from.

    A dataset row ``m`` of ``ShapeDataset.meta`` matches when ``(m["id"], m["source"]) == item_key(item)``.
    """
    return item["source_id"], item["source"]


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's parameter and buffer names, shapes and bytes (hex, 64 chars).

    The occupancy head (``implicit.*`` weights) is left out: it does not change the codes, so a model that gained a
    head (``shapelatent train-implicit``) still matches every store its encoder made.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("implicit."):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class LatentStore:
    """A store folder, loaded in memory (codes are small: 1M x 128 float32 is 512 MB).

    Attributes:
        path: the folder.
        info: the parsed ``store.json``.
        codes: (N, Z) float32.
        items: N dicts with ``id``, ``source``, ``class``, ``split``, ``source_id``, ``refine`` (the refinement
            key, "" when not refined), ``refine_cd_before``, ``refine_cd_after`` (Chamfer as text, "" when not refined).
    """

    def __init__(self, path: Path, info: dict[str, Any], codes: np.ndarray, items: list[dict[str, str]]) -> None:
        self.path = path
        self.info = info
        self.codes = codes
        self.items = items
        self._index = {it["id"]: i for i, it in enumerate(items)}

    # ------------------------------------------------------------------ creation / loading
    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, latent_dim: int, model: dict[str, Any], force: bool = False
    ) -> LatentStore:
        """A new empty store (written to disk on the first :meth:`append`).

        Args:
            latent_dim: Z.
            model: ``{"fingerprint", "path", "sampling", ...}`` of the model that makes the codes.
            force: replace an existing store.
        """
        p = Path(path)
        if p.exists() and not force:
            raise OutputExistsError(f"{p}: already exists; pass --append to add to it, --force to replace it.")
        info = {
            "format": STORE_FORMAT,
            "format_version": STORE_VERSION,
            "latent_dim": int(latent_dim),
            "count": 0,
            "model": model,
        }
        return cls(p, info, np.zeros((0, latent_dim), dtype=np.float32), [])

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> LatentStore:
        """Load a store folder.

        Raises:
            FileNotFoundError: no such folder.
            StoreError: not a store, another format version, or files that disagree.
        """
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such latent store; make one with `shapelatent encode`.")
        meta = p / "store.json"
        if not meta.exists():
            raise StoreError(f"{p}: not a latent store (no store.json); make one with `shapelatent encode`.")
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{meta}: not valid JSON ({exc}).") from exc
        if info.get("format") != STORE_FORMAT:
            raise StoreError(f"{meta}: format {info.get('format')!r}, expected {STORE_FORMAT!r}.")
        if info.get("format_version") != STORE_VERSION:
            raise StoreError(
                f"{meta}: store format version {info.get('format_version')!r}, this shapelatent reads "
                f"{STORE_VERSION}; re-encode with `shapelatent encode --force`."
            )
        try:
            codes = np.load(p / "codes.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StoreError(f"{p / 'codes.npy'}: missing or unreadable ({exc}); re-encode the store.") from exc
        with open(p / "items.csv", newline="", encoding="utf-8") as fh:
            items = [{k: row.get(k) or "" for k in ITEM_COLUMNS[1:]} for row in csv.DictReader(fh)]
        for it in items:
            it["source_id"] = it["source_id"] or it["id"]  # stores written before source_id existed
        if codes.ndim != 2 or codes.shape != (len(items), info["latent_dim"]) or codes.dtype != np.float32:
            raise StoreError(
                f"{p}: codes.npy is {codes.shape} {codes.dtype} but the store holds {len(items)} items of "
                f"Z={info['latent_dim']} float32; the store is corrupt, re-encode it."
            )
        return cls(p, info, codes, items)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.items)

    @property
    def latent_dim(self) -> int:
        """Z."""
        return int(self.info["latent_dim"])

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the model that made the codes."""
        return str(self.info["model"]["fingerprint"])

    @property
    def refinements(self) -> dict[str, dict[str, Any]]:
        """Refinement settings by key (``store.json`` ``refinements``; empty when no code is refined)."""
        return dict(self.info.get("refinements") or {})

    @property
    def refined(self) -> np.ndarray:
        """(N,) bool: which codes were refined (:mod:`shapelatent.latent.refine`)."""
        return np.array([bool(it["refine"]) for it in self.items], dtype=bool)

    @property
    def ids(self) -> list[str]:
        """Item ids in index order."""
        return [it["id"] for it in self.items]

    @property
    def classes(self) -> list[str]:
        """Item classes in index order ('' when unknown)."""
        return [it["class"] for it in self.items]

    def index_of(self, item_id: str) -> int:
        """Index of an item id; KeyError-free: raises StoreError naming close matches."""
        if item_id in self._index:
            return self._index[item_id]
        close = [i for i in self._index if item_id in i][:5]
        hint = f"; did you mean one of {close}?" if close else ""
        raise StoreError(f"{self.path}: no item with id {item_id!r}{hint}")

    def check_model(self, fingerprint: str, model_path: str = "the model") -> None:
        """Raise StoreError unless the store's codes were made by the model with this fingerprint."""
        if fingerprint != self.fingerprint:
            raise StoreError(
                f"{self.path}: its codes were made by a different model (fingerprint {self.fingerprint[:12]}..., "
                f"made from {self.info['model'].get('path')}) than {model_path} ({fingerprint[:12]}...); "
                "re-encode the shapes with this model, or use the model that made the store."
            )

    def check_new_ids(self, ids: Sequence[str]) -> None:
        """Raise StoreError unless ``ids`` are unique among themselves and not already in the store.

        Cheap: call it before encoding anything, so a clash fails fast.
        """
        clash = sorted({i for i in ids if i in self._index})
        if clash:
            raise StoreError(
                f"{self.path}: duplicate ids: {len(clash)} of the {len(ids)} new ids are already in the store "
                f"(e.g. {clash[:_SHOWN_IDS]}); ids must be unique in a store. Keep both with "
                "`shapelatent encode --append --id-prefix PREFIX` (the new items are stored as PREFIX + id)."
            )
        counts = Counter(ids)
        twice = sorted(i for i, n in counts.items() if n > 1)
        if twice:
            raise StoreError(
                f"{self.path}: duplicate ids: the inputs hold {len(twice)} ids more than once "
                f"(e.g. {twice[:_SHOWN_IDS]}); ids must be unique in a store. Encode the inputs in separate "
                "`shapelatent encode --append --id-prefix PREFIX` calls, one prefix per input."
            )

    # ------------------------------------------------------------------ writing
    def append(
        self,
        codes: np.ndarray,
        ids: Sequence[str],
        sources: Sequence[str],
        classes: Sequence[str],
        splits: Sequence[str] | None = None,
        source_ids: Sequence[str] | None = None,
        refinement: RefinementRecord | None = None,
    ) -> None:
        """Add M codes and write the store atomically (each file via a temporary file + rename).

        Args:
            codes: (M, Z) float array.
            ids: M unique ids, not already in the store.
            source_ids: M ids of the items in the dataset or inputs they came from (default: ``ids``).
            refinement: how the M codes were refined (all of them), or None for the encoder's codes.

        Raises:
            StoreError: mismatched lengths, or ids that clash (see :meth:`check_new_ids`).
        """
        codes = np.asarray(codes, dtype=np.float32)
        m = len(ids)
        if codes.shape != (m, self.latent_dim):
            raise StoreError(f"{self.path}: codes must have shape ({m}, {self.latent_dim}); got {codes.shape}")
        lengths_ok = len(sources) == len(classes) == m
        if not (lengths_ok and all(s is None or len(s) == m for s in (splits, source_ids))):
            raise StoreError(f"{self.path}: ids, sources, classes (and splits, source_ids) must all have {m} entries.")
        self.check_new_ids(ids)
        if refinement is not None:
            self._record_refinement(refinement, m)
        for i, (item_id, src, cls) in enumerate(zip(ids, sources, classes, strict=True)):
            self._index[item_id] = len(self.items)
            self.items.append(
                {
                    "id": item_id,
                    "source": src,
                    "class": cls,
                    "split": splits[i] if splits else "",
                    "source_id": source_ids[i] if source_ids else item_id,
                    "refine": refinement.key if refinement is not None else "",
                    "refine_cd_before": f"{refinement.chamfer_before[i]:.7g}" if refinement is not None else "",
                    "refine_cd_after": f"{refinement.chamfer_after[i]:.7g}" if refinement is not None else "",
                }
            )
        self.codes = np.concatenate([self.codes, codes], axis=0)
        self.info["count"] = len(self.items)
        self.save()

    def _record_refinement(self, refinement: RefinementRecord, m: int) -> None:
        if len(refinement.chamfer_before) != m or len(refinement.chamfer_after) != m:
            raise StoreError(f"{self.path}: the refinement record must hold {m} Chamfer values before and after.")
        table = self.info.setdefault("refinements", {})
        entry = table.get(refinement.key)
        if entry is None:  # the key fixes what changes the codes (steps, lr, prior); the first settings are kept
            entry = table[refinement.key] = {"settings": dict(refinement.settings), "codes": 0, "seconds": 0.0}
        entry["codes"] += m
        entry["seconds"] = round(entry["seconds"] + refinement.seconds_per_shape * m, 3)

    def save(self) -> None:
        """Write all files (atomically, one by one; store.json last)."""
        self.path.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=ITEM_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i, it in enumerate(self.items):
            writer.writerow({"index": i, **it})
        atomic_write(self.path / "codes.npy", lambda p: np.save(p, self.codes))
        atomic_write_text(self.path / "items.csv", buf.getvalue())
        atomic_write_json(self.path / "store.json", self.info)
