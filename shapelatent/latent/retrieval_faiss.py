"""FAISS indexes over latent codes: flat, HNSW and IVF, built and searched on the CPU.

Needs the ``faiss`` extra (``pip install 'shapelatent[faiss]'``); asking for a FAISS index without it raises
``BackendUnavailableError``. See ``shapelatent.latent.retrieval`` for what each index trades.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from shapelatent.errors import BackendUnavailableError

__all__ = ["FaissIndex", "default_nlist"]

logger = logging.getLogger(__name__)

#: Training points per IVF list (FAISS warns below 39).
_IVF_TRAIN_PER_LIST = 40


def _faiss(index: str) -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise BackendUnavailableError(
            f"index {index!r} needs FAISS, which does not import ({exc}); install it with "
            "`pip install 'shapelatent[faiss]'`, or use index='exact'."
        ) from exc
    return faiss


def default_nlist(num_items: int) -> int:
    """IVF lists for N codes: ``round(4 sqrt(N))``, but no fewer than the training points FAISS asks per list."""
    return max(1, min(round(4 * math.sqrt(num_items)), num_items // _IVF_TRAIN_PER_LIST))


class FaissIndex:
    """One FAISS index over (N, Z) float32 codes (unit rows for cosine, searched by inner product).

    Args:
        x: (N, Z) C-contiguous float32 codes, unit rows when ``metric`` is ``"cosine"``.
        metric: ``"euclidean"`` or ``"cosine"``.
        index: ``"faiss-flat"``, ``"faiss-hnsw"`` or ``"faiss-ivf"``.
        hnsw_m: links per node of ``faiss-hnsw``.
        ef_construction: candidate list size while building ``faiss-hnsw``.
        nlist: lists of ``faiss-ivf``, 1 <= nlist <= N.
        seed: seeds the sample ``faiss-ivf`` is trained on and its k-means.

    Raises:
        BackendUnavailableError: FAISS is not installed.
    """

    def __init__(
        self, x: np.ndarray, metric: str, index: str, *, hnsw_m: int, ef_construction: int, nlist: int, seed: int
    ) -> None:
        faiss = _faiss(index)
        self.index = index
        self.nlist = nlist
        num_items, z = x.shape
        ip = metric == "cosine"
        faiss_metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        self._quantizer: Any = None
        if index == "faiss-flat":
            idx = faiss.IndexFlatIP(z) if ip else faiss.IndexFlatL2(z)
        elif index == "faiss-hnsw":
            idx = faiss.IndexHNSWFlat(z, hnsw_m, faiss_metric)
            idx.hnsw.efConstruction = ef_construction
        else:
            quantizer = faiss.IndexFlatIP(z) if ip else faiss.IndexFlatL2(z)
            idx = faiss.IndexIVFFlat(quantizer, z, nlist, faiss_metric)
            idx.cp.seed = seed
            idx.cp.spherical = ip
            n_train = min(num_items, _IVF_TRAIN_PER_LIST * nlist)
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(num_items, n_train, replace=False))
            idx.train(np.ascontiguousarray(x[sample]))
            self._quantizer = quantizer  # the IVF index does not own its quantizer: keep it alive
        idx.add(x)
        logger.debug("built %s (%s) over %d codes of Z=%d", index, metric, num_items, z)
        self.native = idx  # the FAISS index itself

    def search(self, q: np.ndarray, k: int, *, ef_search: int, nprobe: int) -> np.ndarray:
        """(M, k) int64 neighbour indices of (M, Z) float32 queries q (-1 where fewer than k were found).

        ``ef_search`` (raised to k) applies to ``faiss-hnsw``, ``nprobe`` (capped at nlist) to ``faiss-ivf``.
        """
        if self.index == "faiss-hnsw":
            self.native.hnsw.efSearch = max(ef_search, k)
        elif self.index == "faiss-ivf":
            self.native.nprobe = min(nprobe, self.nlist)
        _, idx = self.native.search(q, k)
        return np.asarray(idx, dtype=np.int64)
