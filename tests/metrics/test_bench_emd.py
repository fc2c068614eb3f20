"""bench/emd.py runs end to end on tiny sizes and writes its JSON (no timing is checked)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench_emd():
    with pytest.MonkeyPatch.context() as mp:  # bench/ is not a package
        mp.syspath_prepend(str(BENCH))
        yield importlib.import_module("emd")


def test_quick_run_writes_json(bench_emd, tmp_path, capsys):
    out = tmp_path / "emd.json"
    argv = ["--quick", "--points", "24", "--pairs", "2", "--kinds", "random", "resample", "--pairwise", "2"]
    assert bench_emd.main([*argv, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["bench"] == "emd"
    assert [(r["kind"], r["points"]) for r in payload["results"]] == [("random", 24), ("resample", 24)]
    for r in payload["results"]:
        assert r["converged"] and -1e-12 <= r["rel_err_mean"] <= r["rel_err_max"] <= 0.01
    assert payload["pairwise"]["pairs"] == 2 * 2 + 2
    assert "| random | 24 | 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_emd.main([*argv, "--json", str(out)])  # exists, no --force


def test_make_pairs_kinds(bench_emd):
    for kind in bench_emd.KINDS:
        x, y = bench_emd.make_pairs(kind, 2, 16)
        assert x.shape == y.shape == (2, 16, 3)
    with pytest.raises(ValueError, match="unknown kind"):
        bench_emd.make_pairs("sphere", 1, 8)
