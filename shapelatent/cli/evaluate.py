"""``shapelatent evaluate``: reconstruction, baselines, generation and latent metrics of a trained run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import ForceOpt, JsonOpt, bar, emit, emit_result, friendly

__all__ = ["evaluate_cmd", "register"]


def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or model/checkpoint file.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder sampled like the model's training data.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: RUN/eval, where the report finds it).")
    ] = None,
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
    seed: Annotated[int, typer.Option(help="Seed of the barycentre, l-GMM, subsets and pairs.")] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda.")] = "cpu",
    k: Annotated[int, typer.Option("--k", help="Neighbours of class precision@k.")] = 5,
    barycenter_steps: Annotated[
        int, typer.Option(help="Adam steps of the mean-training-shape (Chamfer barycentre) baseline.")
    ] = 200,
    mesh_shapes: Annotated[
        int,
        typer.Option(
            help="Shapes whose meshes (implicit, Poisson on decoded points, Poisson on true points) are scored "
            "against the true mesh (F-score, Chamfer-L1, normal consistency, IoU); 0 skips."
        ),
    ] = 16,
    archive: Annotated[
        list[Path] | None,
        typer.Option("--archive", help="Sweet Home 3D .sh3f file/folder of the dataset (for the mesh metrics)."),
    ] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a trained run on a dataset split; write evaluation.json/.md, samples.png; print the tables."""
    from shapelatent.evaluate import EvalConfig, run_evaluation
    from viewers.render import render_strip

    chosen = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes is not None else None
    config = EvalConfig(
        split=split,
        classes=chosen,
        emd_method=emd_method,
        normalize=normalize,
        samples=samples,
        seed=seed,
        device=device,
        k=k,
        barycenter_steps=barycenter_steps,
        mesh_shapes=mesh_shapes,
        archives=tuple(str(a) for a in archive or ()),
    )
    t0 = time.perf_counter()
    with bar("evaluating", None) as pb:

        def progress(stage: str, done: int, total: int) -> None:
            pb.update(0, description=stage, completed=done, total=total)

        evaluation, out_dir = run_evaluation(
            model, data, out, config, force=force, progress=progress, draw=render_strip
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


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the main app."""
    app.command("evaluate")(friendly(evaluate_cmd))
