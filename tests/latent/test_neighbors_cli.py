from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from matplotlib.image import imread
from typer.testing import CliRunner

from shapelatent.cli.latent_neighbors import register
from shapelatent.data.build import SamplingConfig, sample_file
from shapelatent.data.sources.procedural import build_procedural
from shapelatent.latent.encode import codes_for_points, encode_to_store
from shapelatent.latent.store import LatentStore
from shapelatent.models import ModelConfig
from shapelatent.models.load import load_model
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import train

REAL_MESHES = Path(__file__).parents[1] / "fixtures" / "meshes"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app


APP = _app()


def _cfg(seed: int) -> RunConfig:
    return RunConfig(
        model=ModelConfig(num_points=64, latent_dim=8, decoder_hidden=(32,)),
        train=TrainConfig(epochs=1, batch_size=8, device="cpu", seed=seed, threads=1),
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("neighbors")
    data = root / "data"
    build_procedural(data, 24, sampling=SamplingConfig(num_points=64), workers=1)
    train(data, root / "run", _cfg(seed=0))
    train(data, root / "other", _cfg(seed=1))  # same data and config, another initialisation
    store, _ = encode_to_store(root / "run", [data], root / "store", workers=1)
    return {"root": root, "data": data, "run": root / "run", "other": root / "other", "store": store}


def _ok(args):
    res = runner.invoke(APP, ["neighbors", *[str(a) for a in args]])
    assert res.exit_code == 0, res.output
    return " ".join(res.stdout.split())  # results go to stdout


def _fails(args, *needles):
    res = runner.invoke(APP, ["neighbors", *[str(a) for a in args]])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())  # errors go to stderr
    for n in needles:
        assert n in text, (n, text)


def _oracle_ids(store: LatentStore, code: np.ndarray, k: int, exclude: int | None = None) -> list[str]:
    d = np.sqrt(((store.codes.astype(np.float64) - code.astype(np.float64)) ** 2).sum(1))
    if exclude is not None:
        d[exclude] = np.inf
    order = np.lexsort((np.arange(len(d)), d))[:k]
    return [store.ids[i] for i in order]


def _rows(text: str, ids: list[str]) -> None:
    """The ids appear in the table in this order, with ranks 1.. ."""
    pos = -1
    for rank, item_id in enumerate(ids, 1):
        nxt = text.find(f"│ {rank} │ {item_id} │", pos + 1)
        assert nxt > pos, (rank, item_id, text)
        pos = nxt


def test_query_by_id_excludes_itself(env):
    store = env["store"]
    text = _ok(["--store", store.path, "chair_000003", "-k", 4])
    want = _oracle_ids(store, store.codes[3], 4, exclude=3)
    _rows(text, want)
    assert "│ chair_000003 │" not in text
    assert "distance (L2)" in text and "4 nearest to chair_000003" in text
    cos = _ok(["--store", store.path, "chair_000003", "-k", 2, "--metric", "cosine", "--index", "faiss-flat"])
    assert "distance (1 - cos)" in cos and "index faiss-flat" in cos


def test_query_by_file_with_and_without_model(env):
    store, mesh = env["store"], REAL_MESHES / "deck_chair" / "model.obj"
    loaded = load_model(env["run"])
    cfg = SamplingConfig.from_dict(store.info["model"]["sampling"])
    code = codes_for_points(loaded.model, sample_file(mesh, cfg, seed=cfg.seed).points[None])[0]
    want = _oracle_ids(store, code, 3)
    _rows(_ok(["--store", store.path, mesh, "-k", 3, "--model", env["run"]]), want)
    _rows(_ok(["--store", store.path, mesh, "-k", 3]), want)  # the model path the store records


def test_query_by_code(env, tmp_path):
    store = env["store"]
    code = store.codes[5]
    text = _ok(["--store", store.path, ",".join(repr(float(v)) for v in code), "-k", 2])
    _rows(text, _oracle_ids(store, code, 2))
    assert "│ 1 │ chair_000005 │" in text and "│ 0 │" in text  # a code is not excluded: itself at distance 0
    np.save(tmp_path / "code.npy", code)
    _rows(_ok(["--store", store.path, tmp_path / "code.npy", "-k", 3]), _oracle_ids(store, code, 3))
    np.save(tmp_path / "code2d.npy", code[None])
    _rows(_ok(["--store", store.path, tmp_path / "code2d.npy", "-k", 3]), _oracle_ids(store, code, 3))
    neg = -np.abs(code)
    _rows(_ok(["--store", store.path, "-k", 2, "--", ",".join(map(str, neg))]), _oracle_ids(store, neg, 2))


def test_model_mismatch_is_an_error(env):
    store, mesh = env["store"], REAL_MESHES / "deck_chair" / "model.obj"
    for query in (mesh, "chair_000001"):
        _fails(
            ["--store", store.path, query, "--model", env["other"]],
            "its codes were made by a different model",
            "re-encode the shapes with this model",
        )


def test_bad_queries_have_clear_messages(env, tmp_path):
    store = env["store"]
    _fails(["--store", store.path, "1,2,3"], "query has Z=3, the store's codes have Z=8")
    _fails(["--store", store.path, "chair_000001", "-k", 24], "k=24 is larger than the store (24 items) less the")
    _fails(["--store", store.path, "1,2,3,4,5,6,7,8", "-k", 25], "k=25 is larger than the store (24 items)")
    _fails(["--store", store.path, "1,2,3,4,5,6,7,nan"], "contain NaN or inf")
    _fails(["--store", store.path, "chair_0000"], "is not an item of the store", "did you mean one of")
    _fails(["--store", store.path, "chair_000001", "--metric", "manhattan"], "unknown metric 'manhattan'")
    _fails(["--store", tmp_path / "nope", "chair_000001"], "no such latent store")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    _fails(["--store", store.path, tmp_path / "junk.npy"], "junk.npy: not a readable .npy array")
    # a store whose recorded model path is gone: a file query must say to pass --model
    moved = tmp_path / "moved"
    shutil.copytree(store.path, moved)
    info = json.loads((moved / "store.json").read_text())
    info["model"]["path"] = str(tmp_path / "gone")
    (moved / "store.json").write_text(json.dumps(info))
    mesh = REAL_MESHES / "deck_chair" / "model.obj"
    _fails(["--store", moved, mesh], "is a shape file; encoding it needs the model", "does not exist; pass --model RUN")
    _ok(["--store", moved, "chair_000001"])  # an id query needs no model


def _not_blank(png) -> None:
    img = imread(png)[..., :3]
    assert img.shape[0] > 50 and img.shape[1] > 200
    assert (img.min(axis=2) < 0.5).mean() > 0.002  # some dark (drawn) pixels
    assert img.std() > 0.02


def test_gallery(env, tmp_path):
    store = env["store"]
    out = tmp_path / "g.png"
    text = _ok(["--store", store.path, "chair_000002", "-k", 3, "--gallery", out])  # re-sampled procedural chairs
    assert out.exists() and "gallery:" in text and "decoded" not in text
    _not_blank(out)
    out2 = tmp_path / "g2.png"
    text = _ok(["--store", store.path, "chair_000002", "-k", 2, "--gallery", out2, "--dataset", env["data"]])
    assert "decoded" not in text
    _not_blank(out2)
    out3 = tmp_path / "g3.png"
    text = _ok(["--store", store.path, ",".join(map(str, store.codes[0])), "-k", 2, "--gallery", out3])
    assert "drawn decoded from their codes (no points available): query code" in text
    _not_blank(out3)
    _fails(
        ["--store", store.path, "chair_000002", "--gallery", tmp_path / "x.png", "--dataset", env["run"]],
        "not a shapelatent dataset",
    )


def test_gallery_decodes_items_whose_source_is_gone(env, tmp_path):
    src = tmp_path / "src"
    for name in ("deck_chair", "technical_table"):
        shutil.copytree(REAL_MESHES / name, src / name)
    store, failed = encode_to_store(env["run"], [src], tmp_path / "files_store", workers=1)
    assert not failed and len(store) == 2
    shutil.rmtree(src)
    out = tmp_path / "g.png"
    text = _ok(["--store", store.path, store.ids[0], "-k", 1, "--gallery", out])
    assert f"drawn decoded from their codes (no points available): query {store.ids[0]}, {store.ids[1]}" in text
    _not_blank(out)


def test_prefixed_ids_find_their_own_dataset_rows(env, tmp_path):
    from shapelatent.cli.latent_neighbors import _item_points
    from shapelatent.data.format import ShapeDataset

    second = tmp_path / "second"
    build_procedural(second, 4, sampling=SamplingConfig(num_points=64), seed=7, workers=1)  # ids chair_000000..
    shutil.copytree(env["store"].path, tmp_path / "store")
    store, _ = encode_to_store(env["run"], [second], tmp_path / "store", append=True, workers=1, id_prefix="b/")
    assert len(store) == 28 and store.ids[25] == "b/chair_000001"
    text = _ok(["--store", store.path, "b/chair_000001", "-k", 3])
    _rows(text, _oracle_ids(store, store.codes[25], 3, exclude=25))
    first_ds, second_ds = ShapeDataset(env["data"]), ShapeDataset(second)
    points, decoded = _item_points(store, 25, None, second_ds, {})  # no model needed with a dataset
    np.testing.assert_array_equal(points, second_ds.points[1])
    assert not decoded
    with pytest.raises(ValueError, match=r"has no shape with id 'chair_000001' from source .*'b/chair_000001'"):
        _item_points(store, 25, None, first_ds, {})  # same dataset id, another chair: not silently taken
