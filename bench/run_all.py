"""Run the benchmarks one after another and write a combined summary (``make bench``, ``make bench QUICK=1``).

Each bench runs as a subprocess of this Python (``bench/NAME.py [--quick] --json OUT/NAME.json ...``); its output is
shown as it comes and kept in ``OUT/NAME.log``. A bench that fails (non-zero exit, or no JSON written) is reported
and the next one runs; the exit status is 1 when any failed. A bench whose input is missing is skipped with the
reason (``interpolation`` needs a trained run, by default ``runs/demo`` from ``make demo``). Then ``OUT/summary.json``
(every bench's status, wall time, command and headline table, plus the machine) and ``OUT/summary.md`` (the same as
Markdown: a machine header, then one section per bench) are written.

``bench/emd.py`` runs when present; ``bench/large_dataset.py`` (many minutes, writes about 10 GB) runs only in the
full set and only with ``--with-large``.

Example::

    .venv/bin/python bench/run_all.py --quick
    .venv/bin/python bench/run_all.py --only chamfer,train --out runs/bench/mine
    .venv/bin/python bench/run_all.py --quick --only train --bench-args "train=--points 256 --steps 2"
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import jsonable, machine_info, markdown_table  # bench/common.py

from shapelatent.io.atomic import atomic_write_json, atomic_write_text

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LOG_TAIL = 15  # log lines quoted in summary.md for a failed bench


@dataclass(frozen=True)
class Bench:
    """One benchmark script and how the harness calls it.

    Attributes:
        name: the ``--only`` name; the JSON and log are ``NAME.json`` and ``NAME.log``.
        script: a file under ``bench/`` (or an absolute path).
        about: one line for summary.md.
        args: extra arguments of the full run.
        quick_args: extra arguments of the ``--quick`` run.
        in_quick: part of ``--quick``.
        large: only with ``--with-large``.
        model: ``"required"``: gets ``--model RUN`` and is skipped without a trained run; ``"optional"``: gets
            ``--model RUN`` when there is one; None: never.
        cuda: only when torch sees a CUDA device.
        optional_script: another engineer's script that may not exist yet; left out while it is missing.
    """

    name: str
    script: str
    about: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    in_quick: bool = True
    large: bool = False
    model: str | None = None
    cuda: bool = False
    optional_script: bool = False


BENCHES: tuple[Bench, ...] = (
    Bench("chamfer", "chamfer.py", "Chamfer fwd+bwd time and peak memory of every backend (CPU)"),
    Bench("chamfer_cuda", "chamfer.py", "Chamfer backends on CUDA", args=("--device", "cuda"),
          quick_args=("--device", "cuda"), cuda=True),
    Bench("train", "train.py", "training-step throughput (shapes/s) of the default model", args=("--sweep", "--amp")),
    Bench("encode", "encode.py", "mesh files -> codes in a store, meshes/s", model="optional"),
    Bench("retrieval", "retrieval.py", "latent retrieval latency and recall@K, exact and FAISS"),
    Bench("meshing", "meshing.py", "meshers on procedural chairs: Chamfer to the true surface"),
    Bench("implicit_extract", "implicit_extract.py", "implicit decoder -> mesh (MISE): evaluations, s per shape"),
    Bench("implicit_head", "implicit_head.py", "occupancy-head architectures: IoU and F-score after a CPU budget"),
    Bench("interpolation", "interpolation.py", "class consistency of interpolated codes", model="required"),
    Bench("refine", "refine.py", "test-time code refinement: Chamfer before/after, s per shape", model="required"),
    Bench("emd", "emd.py", "earth mover's distance: exact solver against the auction (time, error)",
          optional_script=True),
    Bench("large_dataset", "large_dataset.py", "building and reading a dataset of about 10 GB", in_quick=False,
          large=True, optional_script=True),
)  # fmt: skip


def _script(bench: Bench) -> Path:
    return BENCH_DIR / bench.script


def _has_model(run: Path) -> bool:
    return (run / "model.safetensors").exists() or (run / "checkpoints" / "last.safetensors").exists()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def select(
    names: Sequence[str] | None, *, quick: bool, with_large: bool, benches: Sequence[Bench] = BENCHES
) -> list[Bench]:
    """The benches to run, in ``benches`` order.

    Raises:
        ValueError: an unknown name, a named bench whose script is missing, or ``large_dataset`` asked for
            without ``with_large`` or with ``quick``.
    """
    by_name = {b.name: b for b in benches}
    if names:
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise ValueError(f"unknown bench {', '.join(unknown)}; choose from {', '.join(by_name)}")
        for name in names:
            b = by_name[name]
            if not _script(b).exists():
                raise ValueError(f"--only {name}: {_script(b)} does not exist (yet)")
            if b.cuda and not _cuda_available():
                raise ValueError(f"--only {name}: torch sees no CUDA device here")
            if b.large and (quick or not with_large):
                raise ValueError(f"--only {name}: it runs for many minutes and writes about 10 GB; it needs "
                                 "--with-large and is not part of --quick")  # fmt: skip
        return [b for b in benches if b.name in names]
    chosen = []
    for b in benches:
        if (quick and not b.in_quick) or (b.large and not with_large) or (b.cuda and not _cuda_available()):
            continue
        if b.optional_script and not _script(b).exists():
            continue
        chosen.append(b)
    return chosen


def _stream(cmd: list[str], log: Path, echo: Callable[[str], None]) -> int:
    """Run ``cmd``, writing its stdout and stderr to ``log`` and to ``echo`` line by line; return its exit code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, bufsize=1
        ) as proc:
            assert proc.stdout is not None  # PIPE was asked for
            for line in proc.stdout:
                fh.write(line)
                echo(line.rstrip("\n"))
        return proc.wait()


def run_benches(
    benches: Sequence[Bench],
    out: Path,
    *,
    quick: bool,
    model: Path,
    extra: dict[str, list[str]] | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run each bench in a subprocess; one record per bench (``name``, ``status`` ok/failed/skipped, ...)."""
    records = []
    for bench in benches:
        record: dict[str, Any] = {"name": bench.name, "about": bench.about, "script": bench.script}
        cmd = [sys.executable, str(_script(bench))] + (["--quick"] if quick else [])
        cmd += ["--json", str(out / f"{bench.name}.json")]
        cmd += list(bench.quick_args if quick else bench.args)
        if bench.model is not None and _has_model(model):
            cmd += ["--model", str(model)]
        elif bench.model == "required":
            record.update(status="skipped", reason=f"no trained run at {model} (run `make demo`, or pass --model RUN)")
            echo(f"\n=== {bench.name}: skipped: {record['reason']}")
            records.append(record)
            continue
        elif bench.model == "optional":
            record["note"] = f"no trained run at {model}: timed an untrained model of the default architecture"
        cmd += (extra or {}).get(bench.name, [])
        record["command"] = shlex.join(cmd)
        echo(f"\n=== {bench.name}: {record['command']}")
        log = out / f"{bench.name}.log"
        start = time.perf_counter()
        try:
            rc = _stream(cmd, log, echo)
        except OSError as exc:
            rc, record["reason"] = -1, f"could not start: {exc}"
        record.update(rc=rc, wall_s=round(time.perf_counter() - start, 1), log=log.name)
        result = out / f"{bench.name}.json"
        if rc == 0 and result.exists():
            try:
                payload = json.loads(result.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                record.update(status="failed", reason=f"{result.name} is not valid JSON ({exc})")
            else:
                table = payload.get("table") if isinstance(payload, dict) else None
                if table is None and isinstance(payload, dict):
                    table = _auto_table(payload.get("results"))
                record.update(status="ok", json=result.name, table=table)
        else:
            record["status"] = "failed"
            record.setdefault("reason", f"exit status {rc}" if rc != 0 else f"exit status 0 but no {result.name}")
        echo(f"=== {bench.name}: {record['status']} in {record['wall_s']} s" + (
            f" ({record['reason']})" if record["status"] != "ok" else ""))  # fmt: skip
        records.append(record)
    return records


def _auto_table(results: Any) -> dict[str, Any] | None:
    """For a result file without ``table``: its ``results`` as the table when they are a list of flat rows."""
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        return None
    columns = [k for k, v in results[0].items() if v is None or isinstance(v, (str, int, float, bool))]
    return {"columns": columns, "rows": results} if columns else None


def _log_tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL:])
    except OSError:
        return "(no log)"


def summary_markdown(out: Path, records: Sequence[dict[str, Any]], machine: dict[str, Any], header: str) -> str:
    """summary.md: the machine, an overview table, then one section per bench."""
    lines = [f"# {header}", "", "## Machine", ""]
    lines.append(markdown_table([{"key": k, "value": jsonable(v)} for k, v in machine.items()], ["key", "value"]))
    overview = [{k: r.get(k) for k in ("name", "status", "wall_s", "reason", "note")} for r in records]
    lines += ["## Overview", "", markdown_table(overview, ["name", "status", "wall_s", "reason", "note"])]
    for r in records:
        lines += [f"## {r['name']}", "", f"{r['about']}. Status: **{r['status']}**"
                  + (f" in {r['wall_s']} s" if "wall_s" in r else "") + ".", ""]  # fmt: skip
        if r.get("command"):
            lines += ["```", r["command"], "```", ""]
        if r.get("note"):
            lines += [f"Note: {r['note']}.", ""]
        table = r.get("table")
        if r["status"] == "ok" and isinstance(table, str):  # a bench that prints its own markdown table
            lines += [table.strip(), ""]
        elif r["status"] == "ok" and isinstance(table, dict) and table.get("columns"):
            lines += [markdown_table(table["rows"], table["columns"])]
        if r["status"] == "ok":
            lines += [f"Full results: `{r['json']}`; output: `{r['log']}`.", ""]
        elif r["status"] == "failed":
            lines += [f"Reason: {r['reason']}. Last lines of `{r['log']}`:", "", "```", _log_tail(out / r["log"]),
                      "```", ""]  # fmt: skip
        else:
            lines += [f"Reason: {r['reason']}.", ""]
    return "\n".join(lines)


def _parse_extra(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            parser.error(f"--bench-args takes NAME=ARGS (e.g. 'train=--steps 2'); got {item!r}")
        extra.setdefault(name, []).extend(shlex.split(text))
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; all benches in a few minutes")
    parser.add_argument("--only", help=f"comma-separated benches, from: {', '.join(b.name for b in BENCHES)}")
    parser.add_argument("--with-large", action="store_true", help="also large_dataset (full run only; writes ~10 GB)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/bench/<date>-<time>)")
    parser.add_argument("--force", action="store_true", help="reuse a non-empty --out, replacing its results")
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "demo", help="trained run (default runs/demo)")
    parser.add_argument(
        "--bench-args", action="append", default=[], metavar="NAME=ARGS",
        help="extra arguments for one bench, e.g. 'train=--points 256 --steps 2' (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick and args.with_large:
        parser.error("--with-large is not part of --quick: large_dataset runs for many minutes")
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if args.only is not None and not names:
        parser.error("--only needs at least one bench name")
    try:
        benches = select(names, quick=args.quick, with_large=args.with_large)
    except ValueError as exc:
        parser.error(str(exc))
    extra = _parse_extra(args.bench_args, parser)
    unknown = sorted(set(extra) - {b.name for b in benches})
    if unknown:
        parser.error(f"--bench-args for {', '.join(unknown)}, which is not run; running: "
                     f"{', '.join(b.name for b in benches)}")  # fmt: skip
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    out = args.out if args.out is not None else ROOT / "runs" / "bench" / stamp
    if out.exists() and any(out.iterdir()) and not args.force:
        parser.error(f"{out} is not empty; choose another --out or pass --force to replace its results")
    out.mkdir(parents=True, exist_ok=True)
    for b in benches:  # with --force: never mistake an old result for a new one
        for suffix in (".json", ".log"):
            (out / f"{b.name}{suffix}").unlink(missing_ok=True)

    mode = "quick" if args.quick else "full"
    print(f"benchmarks ({mode}): {', '.join(b.name for b in benches)} -> {out}")
    machine = machine_info()  # load_average: before the first bench
    start = time.perf_counter()
    records = run_benches(benches, out, quick=args.quick, model=args.model, extra=extra)
    total = round(time.perf_counter() - start, 1)
    machine["load_average_end"] = machine_info()["load_average"]
    failed = [r["name"] for r in records if r["status"] == "failed"]
    summary = {
        "mode": mode,
        "args": jsonable(args),
        "machine": machine,
        "total_wall_s": total,
        "failed": failed,
        "benches": records,
    }
    atomic_write_json(out / "summary.json", summary)
    text = summary_markdown(out, records, machine, f"Benchmarks ({mode}), {machine['date']}, {total} s in all")
    atomic_write_text(out / "summary.md", text)
    print("\n" + text)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.json'}; total {total} s")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see their logs in {out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
