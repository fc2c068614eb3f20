"""The benchmark harness: machine record, result files, Markdown tables, run_all. No timings are checked."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def common():
    # bench/ is not a package: its scripts import `common` because Python puts bench/ first on sys.path
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        yield importlib.import_module("common")


@pytest.fixture(scope="module")
def run_all(common):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        yield importlib.import_module("run_all")


def test_machine_info_has_every_key(common):
    info = common.machine_info()
    assert set(info) == set(common.MACHINE_KEYS)
    assert info["cpu_logical_cores"] >= 1 and info["torch_threads"] >= 1
    assert info["torch_build"] == "cpu" or info["torch_build"].startswith(("cuda ", "rocm "))
    assert info["cuda_device_count"] == len(info["cuda_devices"])
    assert dt.datetime.fromisoformat(info["date"]).tzinfo is not None
    assert info["torch"] and info["python"] and info["numba"]  # core dependencies are installed
    json.dumps(info)  # serialisable as it is


def test_markdown_table_formats_cells_and_aligns_numbers(common):
    rows = [
        {"name": "a|b", "ms": 1234.56, "share": 0.12345, "ok": True, "n": 3},
        {"name": "long name", "ms": 2.5, "ok": False, "n": None, "extra": "ignored"},
    ]
    assert common.markdown_table(rows, ["name", "ms", "share", "ok", "n"]) == textwrap.dedent(
        """\
        | name      |   ms | share | ok  |   n |
        | --------- | ---: | ----: | --- | --: |
        | a\\|b      | 1235 | 0.123 | yes |   3 |
        | long name | 2.50 |       | no  |     |
        """
    )


def test_markdown_table_without_rows_is_a_header(common):
    assert common.markdown_table([], ["x"]) == "| x   |\n| --- |\n"
    with pytest.raises(ValueError, match="at least one column"):
        common.markdown_table([{"x": 1}], [])


def test_write_result_writes_the_four_keys_and_the_table(common, tmp_path):
    args = argparse.Namespace(json=tmp_path / "r.json", sizes=(1, 2), quick=True)
    results = {"value": np.float32(1.5), "array": np.arange(3), "nan": float("nan"), "path": Path("x")}
    out = common.write_result(tmp_path / "r.json", "demo", results, args, table=[{"a": 1, "b": 2.0}], columns=["b"])
    payload = json.loads(out.read_text())
    assert {"bench", "machine", "args", "results"} <= set(payload) and payload["bench"] == "demo"
    assert set(payload["machine"]) == set(common.MACHINE_KEYS)
    assert payload["args"] == {"json": str(tmp_path / "r.json"), "sizes": [1, 2], "quick": True}
    assert payload["results"] == {"value": 1.5, "array": [0, 1, 2], "nan": None, "path": "x"}
    assert payload["table"] == {"columns": ["b"], "rows": [{"a": 1, "b": 2.0}]}
    assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]  # no temporary file left behind
    assert common.write_result(None, "demo", {}, args) is None


def test_every_bench_script_takes_quick_and_json(run_all):
    for bench in run_all.BENCHES:
        script = BENCH / bench.script
        if bench.optional_script and not script.exists():
            continue
        text = script.read_text()
        assert '"--quick"' in text and '"--json"' in text, script


def _script(path: Path, body: str) -> str:
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_run_benches_reports_failures_and_goes_on(run_all, tmp_path):
    Bench = run_all.Bench
    ok = _script(
        tmp_path / "ok.py",
        """\
        import json, sys
        out = sys.argv[sys.argv.index("--json") + 1]
        table = {"columns": ["argv"], "rows": [{"argv": " ".join(sys.argv[1:])}]}
        json.dump({"bench": "ok", "table": table}, open(out, "w"))
        print("ok ran")
        """,
    )
    bad = _script(tmp_path / "bad.py", "import sys\nprint('something broke')\nsys.exit(3)\n")
    silent = _script(tmp_path / "silent.py", "print('forgot the JSON')\n")
    benches = [
        Bench("bad", bad, "fails"),
        Bench("ok", ok, "works"),
        Bench("silent", silent, "writes nothing"),
        Bench("needs_model", ok, "needs a run", model="required"),
    ]
    out = tmp_path / "out"
    out.mkdir()
    echoed: list[str] = []
    records = run_all.run_benches(
        benches, out, quick=True, model=tmp_path / "no_run", extra={"ok": ["--tiny"]}, echo=echoed.append
    )
    assert [r["status"] for r in records] == ["failed", "ok", "failed", "skipped"]
    assert records[0]["rc"] == 3 and records[0]["reason"] == "exit status 3"
    assert records[2]["reason"] == "exit status 0 but no silent.json"
    assert "make demo" in records[3]["reason"]
    assert records[1]["table"]["rows"][0]["argv"] == f"--quick --json {out / 'ok.json'} --tiny"
    assert "ok ran" in echoed and "ok ran" in (out / "ok.log").read_text()
    text = run_all.summary_markdown(out, records, {"cpu_model": "test cpu"}, "Benchmarks")
    assert "| cpu_model | test cpu |" in text and "## ok" in text and "--tiny" in text
    assert "something broke" in text  # the failed bench's log tail is quoted


def test_select_rejects_what_cannot_run(run_all, tmp_path):
    script = _script(tmp_path / "big.py", "")
    benches = [run_all.Bench("big", script, "large", in_quick=False, large=True), run_all.Bench("a", script, "a")]
    assert [b.name for b in run_all.select(None, quick=True, with_large=True, benches=benches)] == ["a"]
    assert [b.name for b in run_all.select(None, quick=False, with_large=True, benches=benches)] == ["big", "a"]
    assert [b.name for b in run_all.select(None, quick=False, with_large=False, benches=benches)] == ["a"]
    with pytest.raises(ValueError, match="needs --with-large"):
        run_all.select(["big"], quick=False, with_large=False, benches=benches)
    with pytest.raises(ValueError, match="unknown bench nope; choose from big, a"):
        run_all.select(["nope"], quick=False, with_large=False, benches=benches)
    missing = [run_all.Bench("gone", str(tmp_path / "gone.py"), "missing", optional_script=True)]
    assert run_all.select(None, quick=True, with_large=False, benches=missing) == []
    with pytest.raises(ValueError, match="does not exist"):
        run_all.select(["gone"], quick=True, with_large=False, benches=missing)


def test_run_all_command_line_errors(run_all, tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    for argv, needle in (
        (["--only", "nope"], "unknown bench nope"),
        (["--quick", "--with-large"], "not part of --quick"),
        (["--only", "train", "--bench-args", "chamfer=--batch 2"], "--bench-args for chamfer, which is not run"),
        (["--only", "train", "--bench-args", "train"], "NAME=ARGS"),
        (["--only", "train", "--out", str(tmp_path)], "is not empty"),
    ):
        with pytest.raises(SystemExit) as exc:
            run_all.main(argv)
        assert exc.value.code == 2
        assert needle in capsys.readouterr().err


def test_run_all_quick_only_train_writes_summary(tmp_path):
    out = tmp_path / "bench"
    tiny = "train=--points 64 --batch-size 4 --shapes 4 --warmup 1 --steps 2"
    cmd = [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "train", "--out", str(out)]
    proc = subprocess.run([*cmd, "--bench-args", tiny], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "quick" and summary["failed"] == []
    assert [(b["name"], b["status"]) for b in summary["benches"]] == [("train", "ok")]
    assert summary["machine"]["cpu_logical_cores"] >= 1
    result = json.loads((out / "train.json").read_text())
    assert result["bench"] == "train" and result["args"]["quick"] is True
    rows = result["results"]["rows"]
    assert [(r["device"], r["P"], r["B"], r["status"]) for r in rows] == [("cpu", 64, 4, "ok")]
    assert rows[0]["shapes/s"] > 0 and np.isfinite(rows[0]["loss"])
    md = (out / "summary.md").read_text()
    assert "## Machine" in md and "## train" in md and "| cpu    |  64 |" in md


def test_train_bench_rows_follow_the_train_config_fields(common):
    import dataclasses

    from shapelatent.train.config import TrainConfig

    train = importlib.import_module("train")  # bench/train.py (bench/ is on sys.path through `common`)
    flags = {"sweep": True, "amp": True, "resident": True, "quick": True}
    args = argparse.Namespace(device=["cpu"], points=[32], batch_size=[2], shapes=2, warmup=0, steps=1, **flags)
    result = train.run(args, log=lambda _: None)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    amps = [r["amp"] for r in result["rows"]]
    assert amps == (["no", "bfloat16"] if "amp" in fields else ["no"])
    assert all(r["status"] == "ok" and r["B"] == 2 and r["shapes/s"] > 0 for r in result["rows"])
    assert any("--sweep applies to CUDA only" in n for n in result["notes"])
    if "amp" not in fields:
        assert any("no 'amp' field" in n for n in result["notes"])


def test_result_without_table_shows_its_flat_rows(run_all, tmp_path):
    script = _script(
        tmp_path / "rows.py",
        """\
        import json, sys
        rows = [{"kind": "a", "ms": 1.5, "nested": {"x": 1}}, {"kind": "b", "ms": 2.5, "nested": {}}]
        json.dump({"bench": "rows", "results": rows}, open(sys.argv[sys.argv.index("--json") + 1], "w"))
        """,
    )
    out = tmp_path / "out"
    out.mkdir()
    (record,) = run_all.run_benches(
        [run_all.Bench("rows", script, "rows")], out, quick=False, model=tmp_path, echo=lambda _: None
    )
    assert record["status"] == "ok" and record["table"]["columns"] == ["kind", "ms"]
    assert "| b    | 2.50 |" in run_all.summary_markdown(out, [record], {}, "Benchmarks")


def test_summary_embeds_tables_given_as_dicts_or_as_markdown_text(run_all, tmp_path):
    records = [
        {"name": "a", "about": "dict table", "status": "ok", "wall_s": 1.0, "json": "a.json", "log": "a.log",
         "table": {"columns": ["x", "y"], "rows": [{"x": 1, "y": 2}]}},
        {"name": "b", "about": "text table", "status": "ok", "wall_s": 1.0, "json": "b.json", "log": "b.log",
         "table": "| p | q |\n|---|---|\n| 3 | 4 |\n"},
    ]  # fmt: skip
    md = run_all.summary_markdown(tmp_path, records, {"cpu": "x"}, "Benchmarks")
    assert "| p | q |" in md and "| 3 | 4 |" in md
    assert "## a" in md and "## b" in md and "y" in md
