"""Model and training levers on the same stratified folds, the same budget (issue 13's levers table).

Each lever is one change to a baseline training config; every lever trains one model per chosen fold of a
stratified K-fold split (``shapelatent.data.splits.stratified_folds``, fold f test, fold f+1 val, the rest
train) and is scored on the held-out fold:

* ``test CD``: mean Chamfer (squared distances, mean per direction, summed; unit-sphere normalisation) between
  each held-out shape and its reconstruction;
* ``ratio to NN``: mean over held-out shapes of CD(reconstruction) / CD(nearest training shape by Chamfer),
  the "is it better than looking up a memorised shape" figure (< 1: better); ``ratio of means``: the mean
  CD over the fold divided by the oracle's mean CD (the README's "x oracle"); the JSON also has the median;
* ``P@5``: class precision@5 of the held-out codes among the training codes (the share of the 5 nearest training
  codes with the query's class); the last row gives the same figure from Chamfer between the true clouds (the
  geometry ceiling of ``shapelatent.evaluate.ceiling``, here test fold against training shapes);
* ``5-NN acc.``: the test fold's classes voted by their 5 nearest training shapes (codes; and Chamfer for the
  ceiling), as ``shapelatent.evaluate.ceiling.neighbour_figures``; ``linear SVM``: trained on the training codes,
  scored on the test fold (``shapelatent.evaluate.latent.linear_svm``);
* with ``--refine N``: ``refined: ratio``, the same ratio after refining each held-out code for N Adam steps with
  the decoder frozen (``shapelatent.latent.refine``), and the seconds per shape;
* with ``--generation``: l-GMM generation as ``shapelatent evaluate`` scores it (Achlioptas et al. 2018: 32
  full-covariance components fitted on the fold's training codes, as many samples as test shapes, decoded) against
  the held-out fold, 1-NNA-EMD and COV-EMD (``shapelatent.metrics.generation``, PointFlow's definitions, EMD by the
  auction solver), next to the same figures for a random subset of the training shapes (the reference line); and
  the same samples meshed (Poisson) and sampled uniformly by area like the dataset (``l-GMM meshed``);
* with ``--generation --head-epochs N --archive LIBS``: an occupancy head (``cbn``, the default architecture) trained
  for N epochs on each fold's run with the encoder and point decoder frozen (``shapelatent train-implicit``, on the
  fold's labelled training shapes, occupancy samples built once from the ``.sh3f`` libraries), and the same l-GMM
  codes through it: implicit mesh (MISE 128^3), sampled by area like the dataset (``l-GMM implicit``), as the
  ``evaluate`` row "through the implicit head". About 15 minutes a fold for 120 epochs on 2 CPU cores.

Scores are cached beside each run (``score.json``, ``generation.json``), so a rerun only adds what is missing;
``--no-train`` scores the folds already trained and skips the others (to score while another call trains).

To fit a 2-core CPU the comparison trains at P = 1024 (the first 1024 of each shape's 2048 i.i.d. area-weighted
points: a sample of the same law) for ``--epochs`` epochs; the figures are mean +- sd over the folds run.

    python bench/levers.py --data /work/sh3d/data --other /work/sh3d/other --folds 5 --run-folds 0,1 \\
        --epochs 30 --out runs/bench/levers

``--other`` (a dataset of unlabelled items, e.g. the Sweet Home 3D ``other`` class) enables the ``+other data``
lever: those shapes are merged into every fold's training split (never tested on).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
from common import write_result  # bench/common.py

from shapelatent.data.format import SPLITS, ShapeDataset
from shapelatent.data.merge import merge_datasets
from shapelatent.data.resplit import write_split_view
from shapelatent.data.splits import stratified_folds
from shapelatent.evaluate.baselines import nearest_by_chamfer
from shapelatent.evaluate.folds import fold_split_codes
from shapelatent.io.atomic import atomic_write_json
from shapelatent.latent.encode import codes_for_points
from shapelatent.models.load import LoadedModel, load_model
from shapelatent.models.pointnet import ModelConfig
from shapelatent.train.config import RunConfig, TrainConfig
from shapelatent.train.loop import evaluate_chamfer, train

#: lever name -> (model overrides, train overrides, uses --other)
LEVERS: dict[str, tuple[dict, dict, bool]] = {
    "baseline": ({}, {}, False),
    "+rotate": ({}, {"augment_rotate": True}, False),
    "+mirror": ({}, {"augment_mirror": True}, False),
    "+mirror +aniso 0.9-1.1": ({}, {"augment_mirror": True, "augment_aniso": (0.9, 1.1)}, False),
    "latent 256": ({"latent_dim": 256}, {}, False),
    "decoder 512x512": ({"decoder_hidden": (512, 512)}, {}, False),
    "cosine lr": ({}, {"lr_schedule": "cosine"}, False),
    "weight decay 1e-4": ({}, {"weight_decay": 1e-4}, False),
    "+EMD 0.1": ({}, {"emd_weight": 0.1}, False),
    "+other data": ({}, {}, True),
    # +other data takes 3.4x the steps per epoch (685 vs 201 training shapes a fold): the same steps, labelled data only
    "baseline 3.4x epochs": ({}, {"epochs_x": 3.4}, False),
    # the shipped furniture model's recipe (other data, cosine, mirror; no rotation), at the comparison's budget
    "+other +cosine +mirror": ({}, {"lr_schedule": "cosine", "augment_mirror": True}, True),
    # the same with the shipped model's joint occupancy head (cbn; Chamfer + 0.01 BCE): needs --archive (occupancy
    # samples of both datasets) and about 3x the training time; with --generation its l-GMM codes go through the head
    "+other +cosine +mirror +joint head": (
        {"implicit": {"kind": "cbn"}},
        {"lr_schedule": "cosine", "augment_mirror": True},
        True,
    ),
    # a second stage (README, "Fine-tuning"): the recipe's fold model fine-tuned for 30 epochs with Chamfer +
    # 0.1 EMD, against the decoded points bunching on large parts (fresh Adam at 1e-4, cosine to 0)
    "+other +cosine +mirror then +EMD 0.1": (
        {},
        {
            "lr_schedule": "cosine",
            "augment_mirror": True,
            "emd_weight": 0.1,
            "init_lever": "+other +cosine +mirror",
            "epochs_abs": 30,
            "lr": 1e-4,
        },
        True,
    ),
}


def _slug(lever: str) -> str:
    return lever.replace(" ", "_").replace("+", "p").replace(".", "")


def prefix_dataset(src: Path, out: Path, points: int) -> Path:
    """A copy of dataset ``src`` keeping the first ``points`` points of each shape (i.i.d. samples: same law)."""
    ds = ShapeDataset(src)
    if (out / "dataset.json").exists():
        return out
    if points > ds.num_points:
        raise ValueError(f"{src}: has {ds.num_points} points per shape, fewer than {points}")
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in (("points.npy", ds.points), ("normals.npy", ds.normals)):
        np.save(tmp / name, np.ascontiguousarray(arr[:, :points]))
    shutil.copy(src / "metadata.csv", tmp / "metadata.csv")
    info = dict(ds.info)
    info["num_points"] = points
    info["sampling"] = {**info["sampling"], "num_points": points}
    info["derived"] = f"first {points} of the {ds.num_points} i.i.d. points per shape of {src.resolve()}"
    atomic_write_json(tmp / "dataset.json", info)
    tmp.rename(out)
    return out


def _p_at_5(dist: np.ndarray, query_classes: np.ndarray, ref_classes: np.ndarray) -> float:
    """Share of each query's 5 nearest references (rows of ``dist``, (M, N)) with the query's class, averaged."""
    top = np.argsort(dist, axis=1, kind="stable")[:, :5]
    return float((ref_classes[top] == query_classes[:, None]).mean())


def _all_chamfer(base: Path, out: Path) -> np.ndarray:
    """(N, N) Chamfer between all the labelled shapes' true clouds, cached in ``out/chamfer.npy``."""
    from shapelatent.metrics import pairwise_chamfer

    cache = out / "chamfer.npy"
    if cache.exists():
        return np.load(cache, allow_pickle=False)
    dist = pairwise_chamfer(np.asarray(ShapeDataset(base).points, dtype=np.float32))
    np.save(cache, dist)
    return dist


def _knn(dist: np.ndarray, view: Path) -> float:
    """5-NN class accuracy of the test fold voted by its training shapes (``shapelatent.evaluate.ceiling``)."""
    from shapelatent.evaluate.ceiling import neighbour_figures

    ds = ShapeDataset(view)
    return float(neighbour_figures(dist, ds.classes(), ds.indices("test"), ds.indices("train"), 5).figures[
        "knn_accuracy"]["value"])  # fmt: skip


def _geometry(view: Path, dist: np.ndarray) -> dict[str, float]:
    """The codes' figures from Chamfer between the true clouds (test fold against training shapes): the ceiling."""
    ds = ShapeDataset(view)
    test, tr = ds.indices("test"), ds.indices("train")
    classes = np.array(ds.classes())
    return {"p_at_5": _p_at_5(dist[np.ix_(test, tr)], classes[test], classes[tr]), "knn": _knn(dist, view)}


def _gmm_samples(
    run: Path, view: Path, seed: int
) -> tuple[ShapeDataset, np.ndarray, np.ndarray, LoadedModel, np.ndarray]:
    """The fold's dataset, its (N, P, 3) points, training indices, the loaded run, and (M, Z) l-GMM codes.

    32 full-covariance components fitted on the fold's training codes (Achlioptas et al. 2018), as many samples as
    test shapes; the same codes for every seed-equal call, so decoded and meshed rows score the same samples.
    """
    from shapelatent.latent.generate import LatentGMM

    ds = ShapeDataset(view)
    test, tr = ds.indices("test"), ds.indices("train")
    pts = np.asarray(ds.points, dtype=np.float32)
    loaded = load_model(run)
    tr_codes = codes_for_points(loaded.model, pts[tr])
    return ds, pts, tr, loaded, LatentGMM(min(32, len(tr)), "full", seed).fit(tr_codes).sample(len(test))


def _against_test(ds: ShapeDataset, clouds: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    """Generation metrics (CD and EMD) of ``clouds`` against the fold's test shapes; JSD's notes to the log.

    JSD's grid spans the sphere of radius 0.5 (as ``evaluate`` does): unit-sphere clouds are halved; 1-NNA and
    COV do not change under a global scale.
    """
    from shapelatent.evaluate.generation import generation_scale
    from shapelatent.metrics import generation_metrics, jsd_notes_to_log

    s = generation_scale(ds, "none")
    with jsd_notes_to_log(logging.getLogger("levers")):
        return generation_metrics(clouds * s, pts[ds.indices("test")] * s, metrics=("cd", "emd"))


def _generation(run: Path, view: Path, seed: int) -> dict[str, float]:
    """l-GMM samples and a training subset against the held-out fold: 1-NNA and COV (scale-free), cached."""
    from shapelatent.evaluate.reconstruction import decode_clouds

    cache = run / "generation.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    ds, pts, tr, loaded, codes = _gmm_samples(run, view, seed)
    subset = np.sort(np.random.default_rng(seed).choice(len(tr), len(codes), replace=False))
    model = _against_test(ds, decode_clouds(loaded, codes), pts)
    ref = _against_test(ds, pts[tr][subset], pts)
    row = {
        "gen_1nna_emd": model["1-NNA-EMD"],
        "gen_1nna_cd": model["1-NNA-CD"],
        "gen_cov_emd": model["COV-EMD"],
        "gen_jsd": model["JSD"],
        "train_1nna_emd": ref["1-NNA-EMD"],
        "train_1nna_cd": ref["1-NNA-CD"],
        "train_cov_emd": ref["COV-EMD"],
        "train_jsd": ref["JSD"],
    }
    atomic_write_json(cache, row)
    return row


def _generation_meshed(run: Path, view: Path, seed: int) -> dict[str, float]:
    """The same l-GMM samples as :func:`_generation`, each decoded cloud meshed (Poisson, the mesher the product
    uses for a point decoder) and sampled uniformly by area as the dataset sampled its meshes; 1-NNA and COV
    against the held-out fold, cached. This is how generators that output meshes are compared on point-cloud
    metrics (the decoded points themselves bunch, which EMD punishes). The same function makes ``evaluate``'s
    "meshed by Poisson" row (:func:`shapelatent.evaluate.meshes.poisson_surface_samples`)."""
    from shapelatent.evaluate.meshes import poisson_surface_samples
    from shapelatent.latent.decode import decode_codes

    cache = run / "generation_poisson.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    ds, pts, _, loaded, codes = _gmm_samples(run, view, seed)
    oversample = (ds.info.get("sampling") or {}).get("oversample")
    clouds, left_out = poisson_surface_samples(
        *decode_codes(loaded, codes), ds.num_points, oversample=oversample, seed=seed
    )
    failed = len(left_out)
    got = _against_test(ds, clouds, pts)
    row = {
        "gen_poisson_1nna_emd": got["1-NNA-EMD"],
        "gen_poisson_1nna_cd": got["1-NNA-CD"],
        "gen_poisson_cov_emd": got["COV-EMD"],
        "gen_poisson_jsd": got["JSD"],
        "gen_poisson_failed": failed,
    }
    atomic_write_json(cache, row)
    return row


def _occupancy_view(
    src: Path, base: Path, out: Path, codes: np.ndarray, record: dict, archives: list[Path], whole: Path
) -> Path:
    """The view ``out`` of ``base`` (split ``codes``) with occupancy samples linked in.

    The samples are built once for every shape, on a view ``whole`` of the full dataset ``src``: recovering each
    source mesh's normalisation needs all the stored points, and the occupancy of a shape does not depend on how many
    of its points a model reads.
    """
    from shapelatent.data.occupancy_build import add_occupancy
    from shapelatent.data.occupancy_format import FILES, META_FILE, has_occupancy

    write_split_view(src, whole, ShapeDataset(src).meta.split_codes, {"method": "as built"})
    if not has_occupancy(whole):
        if not archives:
            raise SystemExit("occupancy heads need --archive (the .sh3f libraries the datasets were built from)")
        add_occupancy(whole, archives=archives, force=True)
    view = write_split_view(base, out, codes, record)
    for name in (META_FILE, *FILES.values()):
        if not (view / name).exists():
            (view / name).symlink_to((whole / name).resolve())
    return view


def _head(run: Path, occ_view: Path, epochs: int, seed: int) -> Path:
    """The fold's run with a ``cbn`` occupancy head trained for ``epochs`` epochs (encoder and decoder frozen)."""
    from shapelatent.models.implicit import ImplicitConfig
    from shapelatent.train.implicit import ImplicitTrainConfig, train_implicit

    out = run.parent / f"{run.name}_head{epochs}"
    if not (out / "model.safetensors").exists():
        resume = (out / "checkpoints" / "last.safetensors").exists()
        train_implicit(
            run,
            occ_view,
            out,
            ImplicitConfig(kind="cbn"),
            None if resume else ImplicitTrainConfig(epochs=epochs, seed=seed),
            resume=resume,
            force=not resume,
        )
    return out


def _generation_implicit(head_run: Path, view: Path, seed: int) -> dict[str, float]:
    """The same l-GMM codes as :func:`_generation` (the head leaves the codes unchanged) through the occupancy head,
    as ``evaluate``'s implicit row: MISE 128^3 mesh, sampled by area like the dataset; cached."""
    from shapelatent.evaluate.generation import IMPLICIT_GENERATION_RESOLUTION
    from shapelatent.evaluate.meshes import implicit_surface_samples

    cache = head_run / "generation_implicit.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    ds, pts, _, loaded, codes = _gmm_samples(head_run, view, seed)
    clouds, empty = implicit_surface_samples(
        loaded.model,
        codes,
        ds.num_points,
        oversample=(ds.info.get("sampling") or {}).get("oversample"),
        resolution=IMPLICIT_GENERATION_RESOLUTION,
        seed=seed,
    )
    got = _against_test(ds, clouds, pts)
    row = {
        "gen_implicit_1nna_emd": got["1-NNA-EMD"],
        "gen_implicit_1nna_cd": got["1-NNA-CD"],
        "gen_implicit_cov_emd": got["COV-EMD"],
        "gen_implicit_jsd": got["JSD"],
        "gen_implicit_empty": len(empty),
    }
    atomic_write_json(cache, row)
    return row


def _score(run: Path, view: Path, refine: int) -> dict[str, float]:
    """The reconstruction, retrieval and (with ``refine``) refinement figures of one trained run, cached."""
    cache = run / "score.json"
    if cache.exists():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("refine_steps", 0) == refine and "ratio_median" in cached:  # scored with every figure
            return {k: v for k, v in cached.items() if k != "refine_steps"}
    row = _score_uncached(run, view, refine)
    atomic_write_json(cache, {**row, "refine_steps": refine})
    return row


def _score_uncached(run: Path, view: Path, refine: int) -> dict[str, float]:
    import torch

    from shapelatent.evaluate.latent import linear_svm
    from shapelatent.latent.refine import refine_codes

    ds = ShapeDataset(view)
    test, tr = ds.indices("test"), ds.indices("train")
    loaded = load_model(run)
    cd = evaluate_chamfer(loaded.model, ds, test, torch.device("cpu"))  # (M,)
    pts = np.asarray(ds.points)
    nn = nearest_by_chamfer(pts[test], pts[tr])
    oracle = np.maximum(nn.chamfer, 1e-12)
    codes = codes_for_points(loaded.model, pts)
    classes = np.array(ds.classes())
    d = ((codes[:, None, :] - codes[None, :, :]) ** 2).sum(-1)  # (N, N)
    row = {
        "test_cd": float(cd.mean()),
        "ratio_nn": float(np.mean(cd / oracle)),
        "ratio_of_means": float(cd.mean() / oracle.mean()),
        "ratio_median": float(np.median(cd / oracle)),
        "p_at_5": _p_at_5(d[np.ix_(test, tr)], classes[test], classes[tr]),
        "knn": _knn(d, view),
        "svm": float(linear_svm(codes[tr], list(classes[tr]), codes[test], list(classes[test]))["value"]),
        "nn_cd": float(np.mean(nn.chamfer)),
    }
    if refine:
        res = refine_codes(loaded.model, pts[test], codes[test], refine)
        row.update(
            refined_cd=float(res.chamfer_after.mean()),
            ratio_refined=float(np.mean(res.chamfer_after / oracle)),
            ratio_refined_of_means=float(res.chamfer_after.mean() / oracle.mean()),
            ratio_refined_median=float(np.median(res.chamfer_after / oracle)),
            refine_s_per_shape=float(res.seconds_per_shape),
        )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="labelled dataset (e.g. the Sweet Home 3D build)")
    ap.add_argument("--other", type=Path, help="unlabelled dataset merged into training for '+other data'")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--run-folds", default="0,1", help="comma-separated folds to run (all: 0..K-1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--levers", default=",".join(LEVERS), help="comma-separated lever names")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/levers"))
    ap.add_argument("--json", type=Path, help="write the result here too")
    ap.add_argument("--refine", type=int, default=0, help="also score codes refined for N steps (0: off)")
    ap.add_argument("--generation", action="store_true", help="also score l-GMM generation (1-NNA-EMD, COV-EMD)")
    ap.add_argument("--no-train", action="store_true", help="score only the runs already trained; skip the others")
    ap.add_argument(
        "--head-epochs",
        type=int,
        default=0,
        help="with --generation: also train an occupancy head per fold run "
        "for N epochs and score the l-GMM codes through it (0: off)",
    )
    ap.add_argument(
        "--archive", type=Path, action="append", default=[], help=".sh3f file or folder (--head-epochs, joint head)"
    )
    ap.add_argument("--device", default="cpu", help="training device: cpu, cuda or auto (the scores run on the CPU)")
    args = ap.parse_args(argv)
    levers = [x.strip() for x in args.levers.split(",") if x.strip()]
    unknown = [x for x in levers if x not in LEVERS]
    if unknown:
        ap.error(f"unknown levers {unknown}; choose from {list(LEVERS)}")
    run_folds = [int(f) for f in args.run_folds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    base = prefix_dataset(args.data, args.out / f"data_p{args.points}", args.points)
    ds = ShapeDataset(base)
    folds = stratified_folds(ds.classes(), args.folds, args.seed)
    other = None
    if args.other is not None and any(LEVERS[x][2] for x in levers):
        o = prefix_dataset(args.other, args.out / f"other_p{args.points}", args.points)
        other = write_split_view(
            o,
            args.out / "other_train",
            np.full(len(ShapeDataset(o)), SPLITS.index("train"), np.uint8),
            {"method": "all train"},
        )
    results: dict[str, list[dict]] = {}
    done = args.out / "levers.json"
    if done.exists():  # levers scored by earlier calls stay in the table (rerun one with --levers NAME)
        earlier = json.loads(done.read_text(encoding="utf-8"))
        results = {k: [r for r in v if r["fold"] in run_folds] for k, v in earlier.items() if k in LEVERS}
        results = {k: v for k, v in results.items() if k not in levers and v}
    geometry: list[dict] = []
    dist = _all_chamfer(base, args.out)
    for f in run_folds:
        codes_f = fold_split_codes(folds, f, args.folds)
        record_f = {"method": "stratified folds", "k": args.folds, "fold": f, "seed": args.seed}
        view = write_split_view(base, args.out / f"fold{f}" / "data", codes_f, record_f)

        def occ_view(codes: np.ndarray = codes_f, record: dict = record_f, fold: int = f) -> Path:
            """The fold's view with the occupancy samples of its shapes (for the occupancy heads)."""
            where = args.out / f"fold{fold}" / "data_occ"
            return _occupancy_view(args.data, base, where, codes, record, args.archive, args.out / "occupancy")

        geometry.append({"fold": f, **_geometry(view, dist)})
        for lever in levers:
            m_over, t_over, uses_other = LEVERS[lever]
            if uses_other and other is None:
                print(f"skipping {lever!r}: no --other dataset", file=sys.stderr)
                continue
            run = args.out / f"fold{f}" / _slug(lever)
            data = view
            joint = "implicit" in m_over
            if uses_other:
                data = args.out / f"fold{f}" / ("mixed_occ" if joint else "mixed")
                if not (data / "dataset.json").exists():
                    if joint:
                        o_codes = ShapeDataset(other).meta.split_codes
                        o_occ = _occupancy_view(
                            args.other, other, args.out / "other_train_occ", o_codes, {"method": "all train"},
                            args.archive, args.out / "occupancy_other",
                        )  # fmt: skip
                        merge_datasets([occ_view(), o_occ], data)
                    else:
                        merge_datasets([view, other], data)
            t_over = {"lr": 5e-4, **t_over}
            epochs = t_over.pop("epochs_abs", round(args.epochs * t_over.pop("epochs_x", 1.0)))
            init = t_over.pop("init_lever", None)
            init_run = None if init is None else args.out / f"fold{f}" / _slug(init)
            if init_run is not None and not (init_run / "model.safetensors").exists():
                print(f"fold {f} {lever}: train {init!r} on this fold first, skipped", file=sys.stderr)
                continue
            cfg = RunConfig(
                model=ModelConfig(num_points=args.points, predict_normals=True, **m_over),
                train=TrainConfig(epochs=epochs, batch_size=50, seed=args.seed, device=args.device, **t_over),
            )
            if not (run / "model.safetensors").exists():
                if args.no_train:
                    print(f"fold {f} {lever}: not trained yet, skipped (--no-train)", file=sys.stderr)
                    continue
                resume = (run / "checkpoints" / "last.safetensors").exists()
                train(data, run, None if resume else cfg, resume=resume, force=not resume,
                      init_from=None if resume else init_run)  # fmt: skip
            spent = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["train_time_s"]
            row = {"fold": f, **_score(run, view, args.refine), "train_s": spent}
            if args.generation:
                row.update(_generation(run, view, args.seed))
                row.update(_generation_meshed(run, view, args.seed))
                if joint:
                    row.update(_generation_implicit(run, view, args.seed))
                elif args.head_epochs:
                    head_run = _head(run, occ_view(), args.head_epochs, args.seed)
                    row.update(_generation_implicit(head_run, view, args.seed))
            results[lever] = [r for r in results.get(lever, []) if r["fold"] != f] + [row]  # a rerun replaces its fold
            print(f"fold {f} {lever}: {row}", file=sys.stderr)
            atomic_write_json(args.out / "levers.json", {**results, "geometry ceiling": geometry})
    lines = [
        f"Stratified {args.folds}-fold split (seed {args.seed}), folds {run_folds}; P = {args.points}, "
        f"{args.epochs} epochs, batch 50, Adam 5e-4; mean +- sd over folds.",
        "",
        "| lever | test CD x1e3 | ratio to nearest training shape | ratio of means | refined: ratio "
        "| refined: ratio of means | class P@5 (codes) | 5-NN acc. | linear SVM | l-GMM 1-NNA-EMD "
        "| l-GMM meshed 1-NNA-EMD | l-GMM implicit 1-NNA-EMD | training shapes 1-NNA-EMD | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ms(rows: list[dict], key: str, scale: float = 1.0) -> str:
        if not rows or any(key not in r for r in rows):
            return "—"  # scored before the figure existed, or not asked for (--refine)
        v = np.array([r[key] for r in rows]) * scale
        return f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"

    for lever, rows in results.items():
        lines.append(
            f"| {lever} | {ms(rows, 'test_cd', 1e3)} | {ms(rows, 'ratio_nn')} | {ms(rows, 'ratio_of_means')} | "
            f"{ms(rows, 'ratio_refined')} | {ms(rows, 'ratio_refined_of_means')} | "
            f"{ms(rows, 'p_at_5')} | {ms(rows, 'knn')} | {ms(rows, 'svm')} | {ms(rows, 'gen_1nna_emd')} | "
            f"{ms(rows, 'gen_poisson_1nna_emd')} | {ms(rows, 'gen_implicit_1nna_emd')} | "
            f"{ms(rows, 'train_1nna_emd')} | "
            f"{np.mean([r['train_s'] for r in rows]):.0f} |"
        )
    lines.append(
        f"| geometry ceiling (Chamfer between the true clouds) | — | — | — | — | — | {ms(geometry, 'p_at_5')} | "
        f"{ms(geometry, 'knn')} | — | — | — | — | — | — |"
    )
    table = "\n".join(lines)
    print(table)
    (args.out / "levers.md").write_text(table + "\n", encoding="utf-8")
    write_result(args.json, "levers", {"levers": results, "geometry": geometry}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
