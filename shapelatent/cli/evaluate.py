"""``shapelatent evaluate``: reconstruction, baselines, generation and latent metrics of a trained run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import ForceOpt, JsonOpt, bar, emit, emit_result, friendly
from shapelatent.cli.refine_opts import REFINE_LR, RefineLrOpt, RefineOpt

__all__ = ["evaluate_cmd", "register"]


def evaluate_cmd(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder sampled like the model's training data.")],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Run folder or model/checkpoint file (not with --folds, which trains)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: RUN/eval, where the report finds it; required with --folds)."
        ),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            help="K-fold cross-validation instead of one model: K folds stratified by class (seeded by --seed), a "
            "model trained and evaluated per fold, mean ± sd over folds, and the geometry ceiling; writes "
            "OUT/folds.json and OUT/folds.md. K must not exceed the smallest class."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="With --folds: training epochs per fold.")] = None,
    latent_dim: Annotated[int | None, typer.Option(help="With --folds: latent size Z of each fold's model.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="With --folds: TOML/JSON training config ([model], [train]) of each fold.")
    ] = None,
    ceiling_only: Annotated[
        bool,
        typer.Option(
            "--ceiling-only", help="With --folds: no training, only the geometry ceiling (Chamfer) on the folds."
        ),
    ] = False,
    split: Annotated[str, typer.Option(help="Evaluated split: train | val | test.")] = "test",
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated classes to restrict everything to, e.g. chair,sofa.")
    ] = None,
    emd_method: Annotated[str, typer.Option(help="EMD solver: auction | exact.")] = "auction",
    normalize: Annotated[
        str, typer.Option(help="Normalisation of both sets before the generation metrics: none | per_shape.")
    ] = "none",
    samples: Annotated[
        int | None, typer.Option(help="l-GMM samples to draw (default: as many as evaluated shapes).")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the barycentre, l-GMM, subsets and pairs (and of the folds with --folds).")
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda (with --folds, also where the folds train).")] = "cpu",
    k: Annotated[int, typer.Option("--k", help="Neighbours of class precision@k.")] = 5,
    barycenter_steps: Annotated[
        int, typer.Option(help="Adam steps of the mean-training-shape (Chamfer barycentre) baseline.")
    ] = 200,
    mesh_shapes: Annotated[
        int | None,
        typer.Option(
            help="Shapes whose meshes (implicit, Poisson on decoded points, Poisson on true points) are scored "
            "against the true mesh (F-score, Chamfer-L1, normal consistency, IoU); 0 skips. Default 16, 0 with --folds."
        ),
    ] = None,
    archive: Annotated[
        list[Path] | None,
        typer.Option("--archive", help="Sweet Home 3D .sh3f file/folder of the dataset (for the mesh metrics)."),
    ] = None,
    implicit_generation: Annotated[
        bool,
        typer.Option(
            help="With an occupancy head: also score the l-GMM codes through it (implicit mesh, then P surface "
            "points per code; about 1 s per sample)."
        ),
    ] = True,
    meshed_generation: Annotated[
        bool,
        typer.Option(
            help="Also score the l-GMM codes as delivered meshes: decoded points meshed by Poisson, then P surface "
            "points per code (about 0.5 s per sample)."
        ),
    ] = True,
    refine: RefineOpt = 0,
    refine_lr: RefineLrOpt = REFINE_LR,
    extra_data: Annotated[
        list[Path] | None,
        typer.Option(
            "--extra-data",
            help="With --folds: a dataset (labels not needed) merged into every fold's training split and never "
            "tested on, e.g. unlabelled items; repeat for several. Sampled like --data (else an error).",
        ),
    ] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a trained run on a dataset split (or cross-validate the recipe with --folds); print the tables.

    With --refine N, the reconstruction table gains a row from codes refined at test time (decoder frozen).
    """
    from shapelatent.evaluate import EvalConfig, run_evaluation
    from viewers.render import render_strip

    fold_only = {"--epochs": epochs, "--latent-dim": latent_dim, "--config": config, "--extra-data": extra_data}
    if folds is None:
        given = [name for name, value in fold_only.items() if value is not None] + (["--ceiling-only"] * ceiling_only)
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --folds K; add --folds or leave them out")
        if model is None:
            raise ValueError("--model is required (a run folder or model file), unless --folds K trains the models")

    chosen = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes is not None else None
    eval_config = EvalConfig(
        split=split,
        classes=chosen,
        emd_method=emd_method,
        normalize=normalize,
        samples=samples,
        seed=seed,
        device=device,
        k=k,
        barycenter_steps=barycenter_steps,
        mesh_shapes=mesh_shapes if mesh_shapes is not None else (16 if folds is None else 0),
        archives=tuple(str(a) for a in archive or ()),
        implicit_generation=implicit_generation,
        meshed_generation=meshed_generation,
        refine=refine,
        refine_lr=refine_lr,
    )
    if folds is not None:
        if model is not None:
            raise ValueError("--model cannot be combined with --folds: each fold trains its own model")
        if out is None:
            raise ValueError("--folds needs --out OUT, the folder of the fold views, runs and evaluations")
        _cross_validate(
            data, out, folds, config, epochs, latent_dim, ceiling_only, device, eval_config, force, as_json, extra_data
        )
        return
    assert model is not None  # checked above
    t0 = time.perf_counter()
    with bar("evaluating", None) as pb:

        def progress(stage: str, done: int, total: int) -> None:
            pb.update(0, description=stage, completed=done, total=total)

        evaluation, out_dir = run_evaluation(
            model, data, out, eval_config, force=force, progress=progress, draw=render_strip
        )
    seconds = time.perf_counter() - t0
    proto = evaluation.result["protocol"]
    files = [
        out_dir / name
        for name in ("evaluation.json", "evaluation.md", "samples.png", "provenance.json")
        if (out_dir / name).exists()
    ]

    def human() -> None:
        emit(
            f"evaluated [bold]{proto['n_shapes']}[/] {proto['split']} shapes in {seconds:.0f} s; "
            f"wrote [bold]{out_dir}[/]"
        )
        for path in files:
            emit(f"  {path}")
        typer.echo((out_dir / "evaluation.md").read_text(encoding="utf-8"))

    payload = {"out": out_dir, "files": files, "seconds": round(seconds, 3), "evaluation": evaluation.result}
    emit_result(payload, as_json, human)


def _cross_validate(
    data: Path,
    out: Path,
    folds: int,
    config: Path | None,
    epochs: int | None,
    latent_dim: int | None,
    ceiling_only: bool,
    device: str,
    eval_config,
    force: bool,
    as_json: bool,
    extra_data: list[Path] | None,
) -> None:
    """``evaluate --folds K``: :func:`shapelatent.evaluate.folds.run_cross_validation`, a bar on stderr, the table."""
    from shapelatent.evaluate.folds import run_cross_validation
    from shapelatent.train.config import RunConfig, load_config
    from viewers.render import render_strip

    base = load_config(config) if config else RunConfig()
    run_config = base.with_overrides(model={"latent_dim": latent_dim}, train={"epochs": epochs, "device": device})
    t0 = time.perf_counter()
    with bar("cross-validation", None) as pb:

        def progress(stage: str, done: int, total: int) -> None:
            pb.update(0, description=stage, completed=done, total=total)

        record = run_cross_validation(
            data,
            out,
            folds,
            seed=eval_config.seed,
            run_config=run_config,
            eval_config=eval_config,
            ceiling_only=ceiling_only,
            extra_data=extra_data or (),
            force=force,
            progress=progress,
            draw=render_strip,
        )
    seconds = time.perf_counter() - t0
    files = [out / "folds.json", out / "folds.md"]

    def human() -> None:
        emit(f"cross-validated [bold]{folds}[/] folds in {seconds:.0f} s; wrote [bold]{out}[/]")
        for path in files:
            emit(f"  {path}")
        typer.echo((out / "folds.md").read_text(encoding="utf-8"))

    emit_result({"out": out, "files": files, "seconds": round(seconds, 3), "folds": record}, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the main app."""
    app.command("evaluate")(friendly(evaluate_cmd))
