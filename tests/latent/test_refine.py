"""Test-time code refinement (shapelatent.latent.refine): behaviour against the plain-torch Chamfer oracle, the store
record, the no-decoder error and the ``--refine`` flag of the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.cli.refine_opts import REFINE_LR, REFINE_STEPS
from shapelatent.data.format import ShapeDataset
from shapelatent.errors import CheckpointError
from shapelatent.latent import refine as refine_mod
from shapelatent.latent.encode import codes_for_points, encode_to_store
from shapelatent.latent.refine import RefineSettings, refine_codes, require_decoder
from shapelatent.latent.store import LatentStore
from shapelatent.models import ModelConfig
from shapelatent.models.load import load_model
from shapelatent.models.pointnet import PointCloudAutoencoder
from shapelatent.ops.chamfer import chamfer_reference
from shapelatent.train.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()


def _random_model(seed: int = 0) -> PointCloudAutoencoder:
    torch.manual_seed(seed)
    return PointCloudAutoencoder(ModelConfig(num_points=128, latent_dim=8, decoder_hidden=(64,))).eval()


def _decode(model: PointCloudAutoencoder, codes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.decode(torch.from_numpy(np.asarray(codes, dtype=np.float32))).points.numpy()


def _oracle_cd(model: PointCloudAutoencoder, codes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(B,) Chamfer by the full-matrix plain-torch oracle, in float64."""
    x = torch.from_numpy(_decode(model, codes)).double()
    return chamfer_reference(x, torch.from_numpy(targets).double(), reduction="none").loss.numpy()


@pytest.fixture(scope="module")
def perturbed():
    """A random decoder, 4 target clouds decoded from known codes, and those codes perturbed."""
    model = _random_model()
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4, 8)).astype(np.float32)
    targets = _decode(model, true)
    start = (true + 0.5 * rng.normal(size=true.shape)).astype(np.float32)
    return model, true, targets, start


def test_refinement_lowers_the_chamfer_of_a_perturbed_code(perturbed):
    model, true, targets, start = perturbed
    res = refine_codes(model, targets, start, 150, lr=0.05)
    assert res.codes.shape == (4, 8) and res.codes.dtype == np.float32
    # the reported Chamfer is the project's definition (checked against the brute-force oracle)
    np.testing.assert_allclose(res.chamfer_before, _oracle_cd(model, start, targets), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.chamfer_after, _oracle_cd(model, res.codes, targets), rtol=1e-4, atol=1e-7)
    assert np.all(res.chamfer_after < 0.5 * res.chamfer_before)
    # the refined codes moved towards the codes the targets were decoded from
    assert np.all(np.linalg.norm(res.codes - true, axis=1) < np.linalg.norm(start - true, axis=1))
    assert res.seconds_per_shape > 0
    assert res.settings["steps"] == 150 and res.settings["lr"] == 0.05 and "DeepSDF" in res.settings["reference"]
    summary = res.summary()
    assert summary["shapes"] == 4 and summary["ratio"] == pytest.approx(
        summary["chamfer_after"] / summary["chamfer_before"]
    )


def test_never_worse_than_the_start_code(perturbed):
    model, _, targets, start = perturbed
    wild = refine_codes(model, targets, start, 5, lr=1e3)  # steps far too large: every step makes things worse
    assert np.all(wild.chamfer_after <= wild.chamfer_before)
    kept = wild.chamfer_after == wild.chamfer_before
    assert kept.any()
    np.testing.assert_array_equal(wild.codes[kept], start[kept])  # the start code itself is returned
    none = refine_codes(model, targets, start, 0)
    np.testing.assert_array_equal(none.codes, start)
    np.testing.assert_array_equal(none.chamfer_after, none.chamfer_before)


def test_batches_do_not_change_the_result_and_the_model_is_left_as_it_was(perturbed):
    model, _, targets, start = perturbed
    model.train()
    model.decoder.net[0].weight.requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    one = refine_codes(model, targets, start, 20, lr=0.05, batch_size=1)
    four = refine_codes(model, targets, start, 20, lr=0.05, batch_size=4)
    np.testing.assert_allclose(one.codes, four.codes, rtol=1e-4, atol=1e-5)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights never move
    assert torch.get_num_threads() == threads
    model.eval()


def test_prior_keeps_codes_nearer_the_start(perturbed):
    model, _, targets, start = perturbed
    free = refine_codes(model, targets, start, 60, lr=0.05)
    tied = refine_codes(model, targets, start, 60, lr=0.05, prior=1.0)
    assert np.linalg.norm(tied.codes - start) < np.linalg.norm(free.codes - start)


def test_bad_inputs_name_the_problem(perturbed):
    model, _, targets, start = perturbed
    with pytest.raises(ValueError, match=r"codes must have shape \(4, 8\)"):
        refine_codes(model, targets, start[:, :3], 2)
    with pytest.raises(ValueError, match=r"points must be an \(N, P, 3\) array"):
        refine_codes(model, targets[..., :2], start, 2)
    with pytest.raises(ValueError, match="finite"):
        refine_codes(model, np.full_like(targets, np.nan), start, 2)
    with pytest.raises(ValueError, match="--refine\\) must be an integer >= 0"):
        refine_codes(model, targets, start, -1)
    with pytest.raises(ValueError, match="--refine-lr\\) must be a finite number > 0"):
        refine_codes(model, targets, start, 2, lr=0.0)


def test_no_decoder_weights_is_a_clear_error(perturbed, tmp_path):
    model, _, targets, start = perturbed

    class EncoderOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.encoder

    with pytest.raises(CheckpointError, match=r"enc\.safetensors: the model has no decoder weights.*--refine"):
        refine_codes(EncoderOnly(), targets, start, 2, model_name="enc.safetensors")
    broken = _random_model()
    with torch.no_grad():
        broken.decoder.net[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="decoder weights are not finite"):
        require_decoder(broken, "nan.safetensors")


def _encoder_only_checkpoint(run: Path, out: Path) -> Path:
    """A copy of a run's checkpoint without the decoder's tensors (an encoder-only export)."""
    ckpt = load_checkpoint(run / "model.safetensors" if (run / "model.safetensors").exists() else run)
    model = load_model(run).model

    class EncoderOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.encoder

    return save_checkpoint(out, EncoderOnly(), ckpt.config, ckpt.state)


def test_refinement_of_an_encoder_only_checkpoint_names_the_file_and_the_fix(tiny_run, tiny_data, tmp_path):
    enc = _encoder_only_checkpoint(tiny_run, tmp_path / "encoder_only.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder_only\.safetensors: the checkpoint has no usable decoder"):
        encode_to_store(enc, [tiny_data], tmp_path / "s", workers=1, refine=RefineSettings(steps=2))
    res = runner.invoke(app, ["encode", str(tiny_data), "-m", str(enc), "-o", str(tmp_path / "s"), "--refine", "2"])
    assert res.exit_code == 2 and res.exception is not None and isinstance(res.exception, SystemExit)
    assert "no usable decoder" in res.stderr and "leave out --refine" in res.stderr and "Traceback" not in res.output


def test_store_records_which_codes_are_refined_and_how(tiny_run, tiny_data, real_mesh_paths, tmp_path):
    settings = RefineSettings(steps=5, lr=0.05, batch_size=16)
    seen = []
    store, failed = encode_to_store(
        tiny_run, [tiny_data], tmp_path / "s", workers=1, refine=settings, on_refined=seen.append
    )
    assert not failed and store.refined.all() and sum(len(r.codes) for r in seen) == 36
    plain = codes_for_points(load_model(tiny_run).model, np.asarray(ShapeDataset(tiny_data).points))
    np.testing.assert_allclose(np.concatenate([r.codes for r in seen]), store.codes)
    assert not np.allclose(store.codes, plain)  # refined, not the encoder's codes
    recorded = json.loads((tmp_path / "s" / "provenance.json").read_text())["config"]["refine"]
    assert recorded["shapes"] == 36 and recorded["settings"]["steps"] == 5 and recorded["chamfer_after"] > 0
    # unrefined items appended later are marked as such
    store, _ = encode_to_store(tiny_run, [real_mesh_paths[0]], tmp_path / "s", append=True, workers=1)
    reopened = LatentStore.open(tmp_path / "s")
    assert reopened.refined.tolist() == [True] * 36 + [False]
    key = "steps=5;lr=0.05;prior=0.0"
    assert {it["refine"] for it in reopened.items[:36]} == {key} and reopened.items[36]["refine"] == ""
    before = np.array([float(it["refine_cd_before"]) for it in reopened.items[:36]])
    after = np.array([float(it["refine_cd_after"]) for it in reopened.items[:36]])
    assert np.all(after <= before) and after.mean() < before.mean()
    np.testing.assert_allclose(before, np.concatenate([r.chamfer_before for r in seen]), rtol=1e-6)
    info = json.loads((tmp_path / "s" / "store.json").read_text())
    entry = info["refinements"][key]
    assert entry["codes"] == 36 and entry["settings"]["steps"] == 5 and entry["settings"]["lr"] == 0.05
    assert entry["settings"]["prior"] == 0.0 and entry["seconds"] >= 0


def test_store_from_before_refinement_reads_as_unrefined(tiny_run, tiny_data, tmp_path):
    encode_to_store(tiny_run, [tiny_data], tmp_path / "s", workers=1)
    items_csv = tmp_path / "s" / "items.csv"
    lines = items_csv.read_text().splitlines()
    items_csv.write_text("\n".join(",".join(line.split(",")[:6]) for line in lines) + "\n")  # no refine columns
    store = LatentStore.open(tmp_path / "s")
    assert not store.refined.any() and store.refinements == {}


def test_cli_defaults_match_the_library():
    assert (REFINE_STEPS, REFINE_LR) == (refine_mod.DEFAULT_STEPS, refine_mod.DEFAULT_LR)


def _ok(args) -> dict:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_cli_refine_flag_on_encode_reconstruct_interpolate_and_neighbors(tiny_run, tiny_data, tmp_path):
    box = tmp_path / "box.obj"
    trimesh.creation.box((2.0, 1.0, 0.5)).export(box)
    ball = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2).export(ball)
    flags = ["--refine", "4", "--refine-lr", "0.05", "--json"]

    enc = _ok(["encode", tiny_data, "-m", tiny_run, "-o", tmp_path / "s", "--workers", "1", *flags])
    r = enc["refine"]
    assert r["shapes"] == 36 and r["chamfer_after"] <= r["chamfer_before"] and r["seconds_per_shape"] > 0
    assert r["settings"]["steps"] == 4 and r["settings"]["lr"] == 0.05
    assert LatentStore.open(tmp_path / "s").refined.all()
    plain = _ok(["encode", tiny_data, "-m", tiny_run, "-o", tmp_path / "p", "--workers", "1", "--json"])
    assert "refine" not in plain  # the keys of a plain run are unchanged

    rec = _ok(["reconstruct", box, "-m", tiny_run, "-o", tmp_path / "r", "--mesher", "poisson", "--no-compare", *flags])
    item = rec["items"][0]
    assert item["refine"]["chamfer_after"] <= item["refine"]["chamfer_before"]
    assert item["chamfer_points"] == pytest.approx(item["refine"]["chamfer_after"], rel=1e-4)
    assert rec["refine"]["shapes"] == 1

    interp = _ok(["interpolate", box, ball, "-m", tiny_run, "-o", tmp_path / "i", "--steps", "3", "--mesher", "none",
                  *flags])  # fmt: skip
    assert interp["refine"]["shapes"] == 2 and all("refine" in s for s in interp["shapes"])
    manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
    assert manifest["refine"]["settings"]["steps"] == 4

    nb = _ok(["neighbors", box, "--store", tmp_path / "s", "-k", "3", *flags])
    assert nb["query"]["refine"]["shapes"] == 1 and nb["store_refined"] == 36 and len(nb["neighbors"]) == 3
    res = runner.invoke(app, ["neighbors", "chair_000001", "--store", str(tmp_path / "s"), "--refine", "4"])
    assert res.exit_code == 2 and "--refine refines the code of a shape file" in res.stderr
    res = runner.invoke(
        app, ["encode", str(tiny_data), "-m", str(tiny_run), "-o", str(tmp_path / "x"), "--refine", "-3"]
    )
    assert res.exit_code == 2 and "must be an integer >= 0" in res.stderr
