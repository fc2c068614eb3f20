"""Benchmark latent retrieval: query latency, recall@K against exact search, build time and memory.

For each store size N (default 10k, 100k, 1M; ``--quick``: 10k, 100k) it draws N codes of Z = 128 and M held-out
queries from the same seeded Gaussian mixture, shaped like the demo model's codes (which are non-negative
max-pooled features with a large common offset and a low intrinsic dimension: 5 principal components hold 90%
of their variance): ``--clusters`` components (default 1000, Dirichlet weights) whose means lie in a random
32-d subspace around a positive offset, each spread along its own random 16-d subspace, plus isotropic noise.
Uniform noise would be both unrealistic and the hardest case for approximate indexes.

Then, for every index of ``shapelatent.latent.retrieval``:

* exact search (``exact``, torch, and ``faiss-flat``) once;
* ``faiss-hnsw`` built once (``--hnsw-m`` links, ``--ef-construction``) and queried at each ``--ef-search``;
* ``faiss-ivf`` built once (nlist about 4 sqrt(N)) and queried at each ``--nprobe``.

Single-query latency is measured with all ``--threads`` and with one thread: on a shared machine a tiny
multi-threaded call mostly measures OpenMP waiting for a core another process holds (10k codes, 2 threads,
load 2: 7 ms per exact query against 0.4 ms on one thread), and a server answering one query per core runs
one thread per query anyway.

Reported per row: build time; index memory (what the index holds beyond the caller's codes: FAISS's serialised
size, which includes its own copy of the codes; ``exact`` searches the caller's array in place and keeps only
the norms); peak memory the build added to the resident size (the script re-runs itself with
``MALLOC_MMAP_THRESHOLD_`` fixed, so that freed indexes really return their memory); batch latency (all M
queries in one call, median of ``--repeats``, divided by M); single-query latency (median over ``--single``
one-query calls, including the Python wrapper); recall@K against exact search (torch). The load average
before and after is recorded.

Example::

    .venv/bin/python bench/retrieval.py --json out/bench_retrieval.json
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import write_result  # bench/common.py

from shapelatent.latent.retrieval import NeighborIndex, recall_at_k


# ---------------------------------------------------------------------------- data
@dataclass
class Mixture:
    """A Gaussian mixture over Z-d codes (see the module docstring)."""

    offset: np.ndarray  # (Z,)
    means: np.ndarray  # (C, Z)
    bases: np.ndarray  # (C, R, Z) local spread directions, scaled
    weights: np.ndarray  # (C,)
    noise: float

    @classmethod
    def make(
        cls, dim: int, clusters: int, seed: int, subspace: int = 32, rank: int = 16, noise: float = 0.05
    ) -> Mixture:
        rng = np.random.default_rng(seed)
        offset = rng.uniform(1.0, 3.0, dim)
        global_basis = np.linalg.qr(rng.standard_normal((dim, subspace)))[0].T  # (subspace, Z) orthonormal
        means = offset + rng.standard_normal((clusters, subspace)) @ global_basis  # (C, Z)
        bases = np.stack(
            [np.linalg.qr(rng.standard_normal((dim, rank)))[0].T * rng.uniform(0.3, 0.7) for _ in range(clusters)]
        )  # (C, R, Z)
        weights = rng.dirichlet(np.full(clusters, 2.0))
        return cls(offset, means, bases, weights, noise)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, Z) float32 codes."""
        rng = np.random.default_rng(seed)
        assign = rng.choice(len(self.weights), n, p=self.weights)
        out = np.empty((n, self.means.shape[1]), dtype=np.float32)
        order = np.argsort(assign, kind="stable")
        bounds = np.searchsorted(assign[order], np.arange(len(self.weights) + 1))
        for c in range(len(self.weights)):
            rows = order[bounds[c] : bounds[c + 1]]
            if len(rows):
                local = rng.standard_normal((len(rows), self.bases.shape[1])) @ self.bases[c]  # (n_c, Z)
                out[rows] = self.means[c] + local + self.noise * rng.standard_normal(local.shape)
        return out


# ---------------------------------------------------------------------------- memory
def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def _rss() -> int:
    try:
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    try:  # Linux: "5" resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak() -> int:
    try:
        return _proc_status_kib("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------- timing
def _index_bytes(idx: NeighborIndex) -> int:
    """Memory the index holds beyond the caller's codes: FAISS's serialised size, or exact's norms/copy."""
    if idx._faiss_index is None:
        copy = idx._x.nbytes if idx._x is not idx._raw else 0
        return copy + (idx._t_sq.numel() * 4 if idx._t_sq is not None else 0)
    import faiss

    writer = faiss.VectorIOWriter()
    faiss.write_index(idx._faiss_index.native, writer)
    return int(writer.data.size())


def _build(codes: np.ndarray, metric: str, index: str, **params: Any) -> tuple[NeighborIndex, dict[str, float]]:
    gc.collect()
    base = _rss()
    _reset_peak()
    start = time.perf_counter()
    idx = NeighborIndex(codes, metric, index, **params)
    build_s = time.perf_counter() - start
    peak = max(0, _peak() - base)
    return idx, {"build_s": build_s, "index_mib": _index_bytes(idx) / 2**20, "build_peak_mib": peak / 2**20}


def _threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def _single(idx: NeighborIndex, queries: np.ndarray, k: int, count: int) -> float:
    one = []
    for i in range(min(count, len(queries))):
        start = time.perf_counter()
        idx.search(queries[i : i + 1], k)
        one.append(time.perf_counter() - start)
    return statistics.median(one) * 1e3


def _time(idx: NeighborIndex, queries: np.ndarray, k: int, args: argparse.Namespace) -> dict[str, Any]:
    idx.search(queries[:8], k)  # warm-up (threads, allocator)
    batch = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        res = idx.search(queries, k)
        batch.append(time.perf_counter() - start)
    single_all = _single(idx, queries, k, args.single)
    _threads(1)
    try:
        single_one = _single(idx, queries, k, args.single)
    finally:
        _threads(args.threads)
    return {
        "batch_ms_per_query": statistics.median(batch) / len(queries) * 1e3,
        "single_ms_1thread": single_one,
        "single_ms": single_all,
        "indices": res.indices,
    }


def _row(n: int, index: str, params: str, build: dict[str, float], timing: dict[str, Any], exact: np.ndarray) -> dict:
    return {
        "n": n,
        "index": index,
        "params": params,
        **build,
        "batch_ms_per_query": timing["batch_ms_per_query"],
        "single_ms_1thread": timing["single_ms_1thread"],
        "single_ms": timing["single_ms"],
        "recall": recall_at_k(timing["indices"], exact),
    }


def bench_size(n: int, args: argparse.Namespace, mixture: Mixture, log) -> list[dict]:
    codes = mixture.sample(n, seed=args.seed + 1)
    queries = mixture.sample(args.queries, seed=args.seed + 2)
    rows: list[dict] = []
    idx, build = _build(codes, args.metric, "exact")
    timing = _time(idx, queries, args.k, args)
    exact = timing["indices"]
    rows.append(_row(n, "exact", "torch", build, timing, exact))
    log(rows[-1])
    del idx
    todo = [x for x in args.indexes if x != "exact"]
    if "faiss-flat" in todo:
        idx, build = _build(codes, args.metric, "faiss-flat")
        rows.append(_row(n, "faiss-flat", "", build, _time(idx, queries, args.k, args), exact))
        log(rows[-1])
        del idx
    if "faiss-hnsw" in todo:
        idx, build = _build(codes, args.metric, "faiss-hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
        for ef in args.ef_search:
            idx.ef_search = ef
            params = f"M={args.hnsw_m} efC={args.ef_construction} efSearch={ef}"
            rows.append(_row(n, "faiss-hnsw", params, build, _time(idx, queries, args.k, args), exact))
            log(rows[-1])
        del idx
    if "faiss-ivf" in todo:
        idx, build = _build(codes, args.metric, "faiss-ivf", seed=args.seed)
        for nprobe in args.nprobe:
            if nprobe > idx.nlist:
                continue
            idx.nprobe = nprobe
            params = f"nlist={idx.nlist} nprobe={nprobe}"
            rows.append(_row(n, "faiss-ivf", params, build, _time(idx, queries, args.k, args), exact))
            log(rows[-1])
        del idx
    return rows


# ---------------------------------------------------------------------------- report
def _faiss_threads() -> int | None:
    try:
        import faiss
    except ImportError:
        return None
    return faiss.omp_get_max_threads()


HEADER = (
    f"{'N':>9} {'index':<11} {'params':<32} {'build s':>8} {'index MiB':>9} {'peak MiB':>8} "
    f"{'batch ms/q':>10} {'1 ms/q 1t':>9} {'1 ms/q':>9} {'recall':>7}"
)


def _fmt(r: dict) -> str:
    return (
        f"{r['n']:>9,} {r['index']:<11} {r['params']:<32} {r['build_s']:>8.2f} {r['index_mib']:>9.0f} "
        f"{r['build_peak_mib']:>8.0f} {r['batch_ms_per_query']:>10.3f} {r['single_ms_1thread']:>9.3f} "
        f"{r['single_ms']:>9.3f} {r['recall']:>7.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="store sizes N")
    parser.add_argument("--quick", action="store_true", help="only N = 10k and 100k")
    parser.add_argument("--dim", type=int, default=128, help="latent size Z")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries M (batch timing and recall)")
    parser.add_argument("--single", type=int, default=100, help="one-query calls timed for the single latency")
    parser.add_argument("--k", type=int, default=10, help="neighbours K (recall@K)")
    parser.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    parser.add_argument(
        "--indexes", nargs="+", default=["exact", "faiss-flat", "faiss-hnsw", "faiss-ivf"], help="indexes to time"
    )
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--clusters", type=int, default=1000, help="mixture components")
    parser.add_argument("--repeats", type=int, default=3, help="batch timings; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and FAISS threads")
    parser.add_argument("--target-ms", type=float, default=5.0, help="single-query latency target")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--json", type=Path, default=None, help="write the results and machine here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    args = parser.parse_args(argv)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and argv is None:
        # glibc keeps freed large blocks in its heap once its mmap threshold has grown, so an index built after
        # another was freed would not grow the resident size: fix the threshold so big blocks go back at free.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    if args.quick:
        args.sizes = [10_000, 100_000]
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f"{args.json} exists; pass --force to overwrite it")

    _threads(args.threads)
    mixture = Mixture.make(args.dim, args.clusters, args.seed)
    load_before = os.getloadavg()
    started = time.perf_counter()
    print(f"Z={args.dim}, K={args.k}, {args.metric}, M={args.queries} queries, {args.clusters}-component mixture")
    print(HEADER)
    print("-" * len(HEADER))
    results: list[dict] = []
    for n in args.sizes:
        results += bench_size(n, args, mixture, lambda r: print(_fmt(r), flush=True))
    load_after = os.getloadavg()
    print(
        "index MiB: what the index holds beyond the codes (FAISS: serialised size); peak MiB: resident memory the\n"
        "build added at its peak; batch ms/q: M queries in one call / M (median of --repeats); 1 ms/q: one-query\n"
        f"calls (median of --single), '1t' with one thread, else {args.threads} threads;\n"
        f"recall: recall@{args.k} against exact. Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} CPUs)."
    )
    for n in args.sizes:
        ok = [
            r
            for r in results
            if r["n"] == n
            and r["recall"] >= args.target_recall
            and min(r["single_ms"], r["single_ms_1thread"]) <= args.target_ms
        ]
        best = min(ok, key=lambda r: min(r["single_ms"], r["single_ms_1thread"])) if ok else None
        verdict = (
            f"{best['index']} {best['params']}: {min(best['single_ms'], best['single_ms_1thread']):.2f} ms/query "
            f"at recall {best['recall']:.3f}"
            if best
            else "none"
        )
        print(f"N={n:,}: fastest single query with recall@{args.k} >= {args.target_recall} and <= "
              f"{args.target_ms} ms: {verdict}")  # fmt: skip
    if args.json is not None:
        payload = {
            "data": "seeded Gaussian mixture (see bench/retrieval.py docstring)",
            "faiss_threads": _faiss_threads(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "total_s": time.perf_counter() - started,
            "rows": results,
        }
        table = [
            {
                "N": r["n"],
                "index": r["index"],
                "params": r["params"],
                "build s": r["build_s"],
                "index MiB": r["index_mib"],
                "batch ms/q": r["batch_ms_per_query"],
                "1 ms/q 1t": r["single_ms_1thread"],
                f"1 ms/q {args.threads}t": r["single_ms"],
                f"recall@{args.k}": r["recall"],
            }
            for r in results
        ]
        write_result(args.json, "retrieval", payload, args, table=table)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
