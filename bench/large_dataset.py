"""Datasets larger than memory: build a 200k-shape dataset and train one epoch on it, in bounded RAM.

Builds ``--count`` procedural chairs at ``--points`` points (200,000 x 2048 by default: about 9.8 GB of
``points.npy`` + ``normals.npy``) with ``shapelatent data build procedural``, then runs ONE training epoch
over it with ``shapelatent train --epochs 1`` and a deliberately small model (Z=32, encoder 16-32, decoder
64). Each stage runs as a child process; every ``--interval`` seconds the whole process tree (the CLI and
its worker processes) is sampled from ``/proc/<pid>/status`` (VmRSS, RssAnon, RssFile) and
``/proc/<pid>/smaps_rollup`` (Pss_Anon, Pss_File: shared pages divided among the processes that map them, so
the tree's sum is not inflated by fork). The kernel's own peak (``ru_maxrss`` of the child) is recorded too.

The RAM question does not depend on the model size: a bigger model adds a fixed amount of weights and
activations per batch, not per shape in the dataset. Anonymous memory is what a process owns; file-backed
memory is page cache of the memory-mapped arrays, which the kernel reclaims under pressure.

``--quick`` builds 20,000 shapes; ``--reuse`` trains on a dataset already built; ``--train-limit S`` stops
training after S seconds (shapes/s then comes from the trainer's last progress line). The JSON is rewritten
after each stage. The dataset and run go under ``--root`` (default ``runs/large``, git-ignored) and are deleted
at the end unless ``--keep``. Environment variables that change memory (``MALLOC_*``, ``NUMBA_*``, ``OMP_*``)
are passed to the children and recorded in the JSON.

Example::

    nohup .venv/bin/python bench/large_dataset.py --json runs/large/bench.json > runs/large.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import markdown_table, write_result  # bench/common.py

MIB = 1024 * 1024
_STATUS_KEYS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
_ROLLUP_KEYS = {"Pss_Anon": "pss_anon", "Pss_File": "pss_file"}
_ENV_PREFIXES = ("MALLOC_", "NUMBA_", "OMP_", "MKL_")  # settings that change memory or speed, kept in the JSON
SMALL_MODEL_TOML = """\
# A deliberately small model: the bench measures data-path memory, which does not depend on the model size.
[model]
encoder_channels = [16, 32]
decoder_hidden = [64]
"""


@dataclass
class StageStats:
    """Wall time and memory of one child process tree. Memory in MiB; peaks over the samples."""

    stage: str
    command: list[str]
    returncode: int = 0
    wall_s: float = 0.0
    samples: int = 0
    max_processes: int = 0
    peak_rss_mib: float = 0.0  # sum of VmRSS over the tree (shared pages counted once per process)
    peak_anon_mib: float = 0.0  # sum of RssAnon
    peak_file_mib: float = 0.0  # sum of RssFile
    peak_pss_anon_mib: float = 0.0  # sum of Pss_Anon (shared anonymous pages split among their processes)
    peak_pss_file_mib: float = 0.0  # sum of Pss_File
    peak_main_anon_mib: float = 0.0  # RssAnon of the CLI process alone
    kernel_maxrss_mib: float = 0.0  # ru_maxrss from wait4: the largest single process's peak RSS
    extra: dict[str, object] = field(default_factory=dict)


def _read_kib(path: str, keys: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[keys[name]] = float(rest.split()[0]) / 1024  # kB -> MiB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass  # the process ended between listing and reading
    return out


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent ids in ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _rchar(pid: int) -> int:
    """Bytes the process has read with read-like system calls (``/proc/<pid>/io``), 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("rchar:")), 0)
    except OSError:
        return 0


def run_monitored(stage: str, cmd: list[str], log: Path, interval: float, limit: float | None = None) -> StageStats:
    """Run ``cmd``, sampling the memory of its process tree every ``interval`` seconds until it exits.

    With ``limit`` (seconds) the process group is interrupted (SIGINT, then SIGKILL) when the limit is
    reached; ``extra["stopped_at_limit"]`` says so and ``extra["read_mib_per_s"]`` is the rate the tree read
    data over the second half of the run (bytes read by its workers, from ``/proc/<pid>/io``).
    ``extra["anon_series"]`` holds ``(seconds, tree anon PSS MiB, CLI anon MiB)`` every 10th sample.
    """
    stats = StageStats(stage, [str(c) for c in cmd])
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(stats.command)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(stats.command, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    reads: list[tuple[float, int]] = []  # (seconds, bytes read by the tree so far)
    series: list[tuple[float, float, float]] = []
    stats.extra["anon_series"] = series
    stop_sent = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            stats.kernel_maxrss_mib = usage.ru_maxrss / 1024  # KiB on Linux
            break
        now = time.perf_counter() - t0
        if limit is not None and now > limit and not stop_sent:
            stats.extra["stopped_at_limit"] = True
            stop_sent = now
            os.killpg(proc.pid, signal.SIGINT)
        elif stop_sent and now > stop_sent + 60:
            os.killpg(proc.pid, signal.SIGKILL)
        tree = _descendants(proc.pid)
        total = {"rss": 0.0, "anon": 0.0, "file": 0.0, "pss_anon": 0.0, "pss_file": 0.0}
        for p in tree:
            for key, value in (_read_kib(f"/proc/{p}/status", _STATUS_KEYS) | _read_kib(
                    f"/proc/{p}/smaps_rollup", _ROLLUP_KEYS)).items():  # fmt: skip
                total[key] += value
                if p == proc.pid and key == "anon":
                    stats.peak_main_anon_mib = max(stats.peak_main_anon_mib, value)
        if not stop_sent:
            reads.append((now, sum(_rchar(p) for p in tree)))
        if stats.samples % 10 == 0:  # every 10th sample: (s, anon PSS of the tree, anon of the CLI) in MiB
            cli_anon = _read_kib(f"/proc/{proc.pid}/status", {"RssAnon": "anon"}).get("anon", 0.0)
            series.append((round(now, 1), round(total["pss_anon"], 1), round(cli_anon, 1)))
        stats.samples += 1
        stats.max_processes = max(stats.max_processes, len(tree))
        for key, value in total.items():
            attr = f"peak_{key}_mib"
            setattr(stats, attr, max(getattr(stats, attr), value))
        time.sleep(interval)
    stats.wall_s = time.perf_counter() - t0
    stats.returncode = proc.returncode
    if len(reads) > 4:
        (t_a, r_a), (t_b, r_b) = reads[len(reads) // 2], reads[-1]
        stats.extra["read_mib_per_s"] = round(max(0, r_b - r_a) / MIB / max(t_b - t_a, 1e-9), 2)
    return stats


def _last_progress(log: Path) -> tuple[int, float] | None:
    """(steps done, seconds) from the last ``step S/T ... H:MM:SS`` progress line the trainer wrote, if any."""
    tail = log.read_bytes()[-20000:].decode("utf-8", errors="replace")
    found = re.findall(r"step (\d+)/\d+.*?(\d+):(\d\d):(\d\d)", tail)
    if not found:
        return None
    steps, h, m, sec = (int(v) for v in found[-1])
    return steps, float(h * 3600 + m * 60 + sec)


def _row(s: StageStats, count: int, points: int) -> dict[str, object]:
    return {
        "stage": s.stage, "shapes": count, "P": points, "wall s": round(s.wall_s, 1),
        "shapes/s": s.extra.get("shapes_per_s"), "processes": s.max_processes,
        "peak anon MiB (PSS)": round(s.peak_pss_anon_mib), "peak anon MiB (RSS sum)": round(s.peak_anon_mib),
        "peak CLI anon MiB": round(s.peak_main_anon_mib), "peak file-backed MiB (PSS)": round(s.peak_pss_file_mib),
        "peak RSS MiB (sum)": round(s.peak_rss_mib), "kernel maxrss MiB": round(s.kernel_maxrss_mib),
    }  # fmt: skip


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("shapelatent")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from shapelatent.cli.main import app; app()"]


def _train_has_workers(cli: list[str]) -> bool:
    text = subprocess.run([*cli, "train", "--help"], capture_output=True, text=True, env={**os.environ,
                          "COLUMNS": "200"}).stdout  # fmt: skip
    return "--workers" in text


def _report(args: argparse.Namespace, stages: list[StageStats], data_bytes: tuple[int, int] | None) -> None:
    """Print the tables so far and (re)write the JSON: a run cut short keeps the finished stages."""
    rows = [_row(s, args.count, args.points) for s in stages]
    columns = list(rows[0]) if rows else ["stage"]
    print(markdown_table(rows, columns), flush=True)
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    result: dict[str, object] = {"count": args.count, "points": args.points, "stages": [asdict(s) for s in stages],
                                 "load_average": os.getloadavg(), "env": env}  # fmt: skip
    if data_bytes is not None:
        disk, arrays = data_bytes
        peak_anon = max((s.peak_pss_anon_mib for s in stages), default=0.0)
        sizes = [{"dataset on disk GiB": disk / 1024**3, "points+normals GiB": arrays / 1024**3,
                  "peak anon GiB (any stage, PSS)": peak_anon / 1024,
                  "peak anon / arrays": peak_anon * MIB / arrays}]  # fmt: skip
        print(markdown_table(sizes, list(sizes[0])), flush=True)
        result.update(disk_bytes=disk, array_bytes=arrays)
    if args.json:
        write_result(args.json, "large_dataset", result, args, table=rows, columns=columns)
        print(f"wrote {args.json}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=None, help="shapes to build (default 200000; 20000 with --quick)")
    ap.add_argument("--points", type=int, default=2048, help="P, points per shape (default 2048)")
    ap.add_argument("--root", type=Path, default=Path("runs/large"), help="folder for the dataset and the run")
    ap.add_argument("--quick", action="store_true", help="20,000 shapes")
    ap.add_argument("--build-workers", type=int, default=None, help="build processes (default: all cores)")
    ap.add_argument("--train-workers", type=int, default=2, help="--workers of `shapelatent train` (default 2)")
    ap.add_argument("--latent-dim", type=int, default=32, help="Z of the small model (default 32)")
    ap.add_argument("--batch-size", type=int, default=50, help="training batch size (default 50)")
    ap.add_argument("--train-limit", type=float, default=None,
                    help="stop training after this many seconds (default: the whole epoch)")  # fmt: skip
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples (default 0.5)")
    ap.add_argument("--no-train", action="store_true", help="build only")
    ap.add_argument("--reuse", action="store_true", help="use the dataset already at the output folder, if any")
    ap.add_argument("--keep", action="store_true", help="keep the dataset and run (otherwise deleted at the end)")
    ap.add_argument("--json", type=Path, help="write the results here (rewritten after each stage)")
    args = ap.parse_args(argv)
    if args.count is None:
        args.count = 20_000 if args.quick else 200_000
    if args.count < 10 or args.points < 1:
        ap.error(f"--count must be >= 10 and --points >= 1; got {args.count}, {args.points}")

    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"chairs_{args.count}x{args.points}"
    run = root / f"run_{args.count}x{args.points}"
    log = root / f"large_dataset_{args.count}x{args.points}.log"
    cli = _cli()
    stages: list[StageStats] = []
    try:
        if not (args.reuse and (data / "dataset.json").exists()):
            cmd = [*cli, "data", "build", "procedural", "--count", args.count, "--points", args.points,
                   "--out", data, "--force"]  # fmt: skip
            if args.build_workers is not None:
                cmd += ["--workers", args.build_workers]
            print(f"building {args.count} x {args.points} into {data} (log: {log})", flush=True)
            stats = run_monitored("build", cmd, log, args.interval)
            stats.extra["shapes_per_s"] = round(args.count / stats.wall_s, 1)
            stages.append(stats)
            if stats.returncode:
                raise SystemExit(f"build failed (exit {stats.returncode}); see {log}")
        info = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
        sizes = _disk_bytes(data), sum((data / n).stat().st_size for n in ("points.npy", "normals.npy"))
        _report(args, stages, sizes)
        if not args.no_train:
            (root / "small_model.toml").write_text(SMALL_MODEL_TOML, encoding="utf-8")
            cmd = [*cli, "train", "--data", data, "--out", run, "--config", root / "small_model.toml",
                   "--epochs", 1, "--latent-dim", args.latent_dim, "--batch-size", args.batch_size,
                   "--device", "cpu", "--force"]  # fmt: skip
            workers = _train_has_workers(cli)
            if workers:
                cmd += ["--workers", args.train_workers]
            note = f"--workers {args.train_workers}" if workers else "no --workers option yet"
            train_n = info["split"]["counts"].get("train", 0)
            print(f"training 1 epoch on {train_n} shapes ({note})", flush=True)
            stats = run_monitored("train 1 epoch", cmd, log, args.interval, limit=args.train_limit)
            stats.extra["workers_option"] = workers
            if stats.extra.get("stopped_at_limit"):
                stats.stage = f"train, stopped at {args.train_limit:.0f} s"
                steps = _last_progress(log)
                if steps is not None:  # the progress bar's last state: steps done and its elapsed time
                    stats.extra["shapes_per_s"] = round(steps[0] * args.batch_size / max(steps[1], 1), 1)
                    stats.extra["steps_done"] = steps[0]
                else:  # the trainer reads points only (no normals for this model): P * 3 float32 a shape
                    rate = float(stats.extra.get("read_mib_per_s", 0.0)) * MIB / (args.points * 3 * 4)
                    stats.extra["shapes_per_s"] = f"~{rate:.1f} (read rate)"
            elif stats.returncode:
                raise SystemExit(f"training failed (exit {stats.returncode}); see {log}")
            else:
                epoch = json.loads((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
                stats.extra.update(shapes_per_s=epoch["shapes_per_s"], epoch_s=epoch["time_s"])
            stages.append(stats)
            _report(args, stages, sizes)
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
