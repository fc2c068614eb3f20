"""What every benchmark shares: the machine record, the JSON result file and Markdown tables.

A result file is one JSON object::

    {"bench": NAME, "machine": machine_info(), "args": {...}, "results": ..., "table": {"columns", "rows"}}

``table`` is optional: the bench's headline rows, which ``bench/run_all.py`` puts into ``summary.md``.

The scripts under ``bench/`` import this module as ``common``: Python puts a script's own folder first on
``sys.path``. (``bench/`` is not a package; tests put it on ``sys.path`` the same way.)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import logging
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from shapelatent.io.atomic import atomic_write_json

__all__ = ["MACHINE_KEYS", "jsonable", "machine_info", "markdown_table", "write_result"]

logger = logging.getLogger(__name__)

MACHINE_KEYS = (
    "date",
    "hostname",
    "os",
    "cpu_model",
    "cpu_logical_cores",
    "cpu_physical_cores",
    "ram_gib",
    "load_average",
    "python",
    "torch",
    "torch_build",
    "torch_threads",
    "cuda_device_count",
    "cuda_devices",
    "numpy",
    "numba",
    "faiss",
    "open3d",
    "pykeops",
    "pytorch3d",
    "git_commit",
)

# Distribution names that provide each optional package (the first one installed wins).
_DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "numba": ("numba",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
    "open3d": ("open3d-cpu", "open3d"),
    "pykeops": ("pykeops",),
    "pytorch3d": ("pytorch3d",),
}


def _version(package: str) -> str | None:
    """Installed version of ``package`` read from its distribution metadata (nothing is imported), or None."""
    for dist in _DISTRIBUTIONS[package]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _cpuinfo() -> tuple[str, int | None]:
    """CPU model name and number of physical cores from ``/proc/cpuinfo`` (Linux), else ``platform``."""
    model = platform.processor() or platform.machine()
    cores: set[tuple[str, str]] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, None
    physical = core = ""
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif not key and core:  # a blank line ends one logical CPU's block
            cores.add((physical, core))
            physical = core = ""
    return model, len(cores) or None


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """Describe the machine and software a benchmark ran on.

    Returns:
        a JSON-serialisable dict with the keys of ``MACHINE_KEYS``: ``date`` (ISO 8601, UTC), ``hostname``,
        ``os``, ``cpu_model``, ``cpu_logical_cores``, ``cpu_physical_cores`` (None where unknown), ``ram_gib``,
        ``load_average`` (1, 5, 15 min; the machine may be shared), ``python``, ``torch``, ``torch_build``
        (``"cpu"``, ``"cuda 12.4"`` or ``"rocm ..."``), ``torch_threads``, ``cuda_device_count``,
        ``cuda_devices`` (names), the versions of ``numpy``, ``numba``, ``faiss``, ``open3d``, ``pykeops``
        and ``pytorch3d`` (None when not installed) and ``git_commit`` (``-dirty`` marks uncommitted changes;
        None outside a checkout).
    """
    import torch

    from shapelatent.provenance import git_commit

    cpu_model, physical = _cpuinfo()
    if torch.version.cuda:
        build = f"cuda {torch.version.cuda}"
    elif getattr(torch.version, "hip", None):
        build = f"rocm {torch.version.hip}"
    else:
        build = "cpu"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical,
        "ram_gib": _ram_gib(),
        "load_average": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_build": build,
        "torch_threads": torch.get_num_threads(),
        "cuda_device_count": count,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(count)],
    }
    info.update({name: _version(name) for name in _DISTRIBUTIONS})
    info["git_commit"] = git_commit()
    return info


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` accepts: paths and unknown objects become strings, numpy
    scalars and arrays become Python numbers and lists, tuples become lists, dataclasses become dicts, and
    non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return jsonable(value.tolist())
    return str(value)


def write_result(
    path: str | os.PathLike[str] | None,
    bench_name: str,
    results: Any,
    args: argparse.Namespace | Mapping[str, Any] | None,
    *,
    table: Sequence[Mapping[str, Any]] | None = None,
    columns: Sequence[str] | None = None,
) -> Path | None:
    """Write a benchmark's results with the machine record as JSON, atomically.

    Args:
        path: the JSON file; None writes nothing (the bench ran without ``--json``).
        bench_name: the bench's name (``chamfer``, ``train``, ...).
        results: anything JSON-like (see :func:`jsonable`).
        args: the parsed command line (or a dict) that produced the results.
        table: the headline rows for ``summary.md`` (dicts keyed by column).
        columns: the keys of ``table`` to show, in order (default: the keys of the first row).

    Returns:
        the path written, or None when ``path`` is None.
    """
    if path is None:
        return None
    payload: dict[str, Any] = {
        "bench": bench_name,
        "machine": machine_info(),
        "args": jsonable(args or {}),
        "results": jsonable(results),
    }
    if table is not None:
        rows = [dict(r) for r in table]
        cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
        payload["table"] = {"columns": cols, "rows": jsonable(rows)}
    out = atomic_write_json(path, payload)
    logger.info("wrote %s", out)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        a = abs(value)
        if a >= 100:
            return f"{value:.0f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of ``rows``, one line per row, ending with a newline.

    Cells: None and missing keys are empty, booleans ``yes``/``no``, floats rounded to what a benchmark can
    resolve (>= 100: no decimals; >= 1: two decimals; below 1: three significant digits), ``|`` escaped.
    Columns whose cells are all numbers are right-aligned.

    Args:
        rows: dicts keyed by column name.
        columns: the keys to show, in order; they are also the header.

    Raises:
        ValueError: ``columns`` is empty.
    """
    if not columns:
        raise ValueError("markdown_table needs at least one column; got none")
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    numeric = [
        any(is_number(r.get(c)) for r in rows) and all(r.get(c) is None or is_number(r.get(c)) for r in rows)
        for c in columns
    ]
    header = [_cell(str(c)) for c in columns]
    widths = [max([len(h), 3] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]
    layout = list(zip(widths, numeric, strict=True))

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if num else v.ljust(w) for v, (w, num) in zip(values, layout, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in layout) + " |"
    return "\n".join([line(header), rule, *(line(row) for row in cells)]) + "\n"


def add_held_out_args(ap: Any, max_shapes: int) -> None:
    """The options that pick held-out shapes with an occupancy-head model (``implicit_meshes``, ``head_code_fit``)."""
    ap.add_argument("--model", required=True, help="run folder / model with an occupancy head")
    ap.add_argument("--data", required=True, type=Path, help="dataset sampled like the model's training data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--classes", default=None, help="comma-separated classes (default: all)")
    ap.add_argument("--max-shapes", type=int, default=max_shapes)
    ap.add_argument("--archive", action="append", default=[], help="Sweet Home 3D library file/folder")


def held_out_indices(ds: Any, split: str, classes: str | None, max_shapes: int) -> Any:
    """Rows of ``ds`` (a ``ShapeDataset``) in ``split``, of the comma-separated ``classes`` (None: all), the first
    ``max_shapes``: (M,) int64."""
    import numpy as np

    idx = ds.indices(split)
    if classes:
        keep = {c.strip() for c in classes.split(",")}
        idx = np.asarray([i for i in idx if ds.meta[int(i)]["class"] in keep], dtype=np.int64)
    return idx[:max_shapes]
