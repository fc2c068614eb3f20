"""``shapelatent evaluate`` end to end (files, printed table, --force) and the report's Evaluation section."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app
from viewers.report import write_report

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_eval(tiny_run, eval_data):
    """One CLI run with the default --out (RUN/eval)."""
    args = ["evaluate", "--model", str(tiny_run), "--data", str(eval_data), "--seed", "1", "--barycenter-steps", "20"]
    args += ["--mesh-shapes", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res, tiny_run / "eval"


def test_cli_writes_json_md_png_and_prints_the_table(cli_eval, eval_data):
    res, out = cli_eval
    for name in ("evaluation.json", "evaluation.md", "samples.png", "provenance.json"):
        assert (out / name).is_file(), name
    assert (out / "samples.png").read_bytes().startswith(b"\x89PNG") and (out / "samples.png").stat().st_size > 5000
    record = json.loads((out / "evaluation.json").read_text())
    assert record["format"] == "shapelatent-evaluation" and record["protocol"]["seed"] == 1
    assert record["protocol"]["dataset"]["path"] == str(eval_data.resolve())
    assert json.loads((out / "provenance.json").read_text())["seed"] == 1
    md = (out / "evaluation.md").read_text()
    assert "| model (reconstruction) |" in md and "## Generation" in md and "## Latent space" in md
    assert "| model (reconstruction) |" in res.stdout  # the table is printed at the end


def test_cli_refuses_to_overwrite_without_force(cli_eval, tiny_run, eval_data):
    _, out = cli_eval
    before = (out / "evaluation.json").read_text()
    args = [
        "evaluate",
        "--model",
        str(tiny_run),
        "--data",
        str(eval_data),
        "--out",
        str(out),
        "--barycenter-steps",
        "5",
        "--mesh-shapes",
        "0",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "already exists and is not empty; pass --force" in " ".join(res.output.split())
    assert (out / "evaluation.json").read_text() == before
    res = runner.invoke(app, [*args, "--force", "--seed", "2", "--classes", "sofa,stool", "--emd-method", "exact"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "evaluation.json").read_text())
    assert record["protocol"]["seed"] == 2 and record["protocol"]["classes"] == ["sofa", "stool"]
    assert record["protocol"]["emd_method"] == "exact"


def test_cli_errors_are_one_line(tiny_run, eval_data, tmp_path):
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tiny_run),
            "--data",
            str(eval_data),
            "--out",
            str(tmp_path / "e"),
            "--normalize",
            "unit_cube",
        ],
    )
    assert res.exit_code == 2 and "--normalize must be one of" in res.output
    assert not (tmp_path / "e").exists()


def test_report_has_an_evaluation_section(cli_eval, tiny_run, tmp_path):
    html = write_report(tiny_run, tmp_path / "report.html").read_text()
    assert '<section id="evaluation"><h2>Evaluation</h2>' in html
    for needle in ("model (reconstruction)", "CD mean (×10³)", "Generation (reference: the", "Latent space"):
        assert needle in html, needle
    section = html.split('<section id="evaluation">', 1)[1].split("</section>", 1)[0]
    assert '<img src="data:image/png;base64,' in section and "eval/samples.png" in section


def test_report_without_evaluation_says_so(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    html = write_report(run).read_text()
    assert 'id="evaluation"' not in html and "no eval/evaluation.json" in html
