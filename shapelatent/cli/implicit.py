"""CLI for the implicit (occupancy) head: ``train-implicit`` and ``data occupancy``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shapelatent.cli.common import ForceOpt, JsonOpt, WorkersOpt, bar, emit, emit_result, friendly
from shapelatent.cli.refine_opts import REFINE_LR, RefineLrOpt, RefineOpt, refine_line, refine_settings

__all__ = ["register"]

_RUN_FILES = ("model.safetensors", "checkpoints/last.safetensors", "metrics.jsonl", "metrics.json", "loss_curve.png")


def train_implicit_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Trained run folder, checkpoint or shipped model name.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset with occupancy samples (`data occupancy`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New run folder (the source model plus the head).")],
    kind: Annotated[
        str,
        typer.Option(
            help="Head architecture: cbn (Occupancy Networks' conditional-batch-norm ResNet) | concat (IM-NET MLP "
            "on the query and code concatenated) | film (the ResNet with FiLM, no normalisation)."
        ),
    ] = "cbn",
    hidden: Annotated[
        int | None, typer.Option(help="Width of the head's layers (default per kind: cbn 128, concat 256, film 128).")
    ] = None,
    blocks: Annotated[
        int | None, typer.Option(help="ResNet blocks (cbn, film) or hidden layers (concat); default 3, 4, 4.")
    ] = None,
    fourier: Annotated[int, typer.Option(help="Fourier-feature bands of the query (0: raw coordinates).")] = 4,
    local: Annotated[
        int,
        typer.Option(
            help="Each query also reads its K nearest decoded points (offsets through a small PointNet); 0: the "
            "code alone."
        ),
    ] = 0,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the train split (default 100; with --resume: the stored run's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Shapes per step (B).")] = 32,
    queries: Annotated[
        int, typer.Option(help="Occupancy queries per shape per step (T; half uniform, half near the surface).")
    ] = 2048,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 5e-4,
    seed: Annotated[int, typer.Option(help="Seed (head initialisation, shuffling, query sampling).")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    replace_head: Annotated[
        bool,
        typer.Option(
            "--replace-head",
            help="The model already has a head: start a new one with --kind/--hidden/--blocks/--fourier/--local "
            "instead of training that one further (the codes stay the same).",
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue OUT from OUT/checkpoints/last.safetensors (its settings).")
    ] = False,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Give a trained model an occupancy head (for `--mesher implicit`): the encoder and point decoder stay frozen,
    so the codes and every store made with the model keep matching."""
    from shapelatent.models.implicit import ImplicitConfig
    from shapelatent.train.implicit import ImplicitTrainConfig, train_implicit

    head = ImplicitConfig(kind=kind, hidden=hidden, blocks=blocks, fourier=fourier, local=local)
    cfg: ImplicitTrainConfig | None = ImplicitTrainConfig(
        epochs=epochs or 100, batch_size=batch_size, queries=queries, lr=lr, seed=seed, device=device
    )
    if resume and epochs is None:
        cfg = None  # the stored run's settings and epoch count
    with bar("epochs", None if cfg is None else cfg.epochs) as pb:

        def on_step(s: dict[str, Any]) -> None:
            pb.update(0, info=f"epoch {s['epoch']} step {s['step']}/{s['steps']} BCE {s['loss']:.4f}")

        def on_epoch(row: dict[str, Any]) -> None:
            iou = row["val_iou"]
            pb.update(
                0,
                completed=row["epoch"],
                info=f"train BCE {row['train_bce']:.4f} val IoU {'-' if iou is None else f'{iou:.3f}'} "
                f"({row['shapes_per_s']:.0f} shapes/s)",
            )

        result = train_implicit(
            model,
            data,
            out,
            head,
            cfg,
            resume=resume,
            force=force,
            on_step=on_step,
            on_epoch=on_epoch,
            replace_head=replace_head,
        )
    files = [result.run_dir / n for n in _RUN_FILES if (result.run_dir / n).exists()]

    def human() -> None:
        s = result.summary
        if s.get("test_iou") is not None:
            emit(f"test IoU (mean over {s['test_shapes']} shapes): [bold]{s['test_iou']:.3f}[/]")
        emit(f"run folder: [bold]{result.run_dir}[/]")
        for path in files:
            emit(f"  {path}")

    emit_result({"run_dir": result.run_dir, "files": files, "summary": result.summary}, as_json, human)


def occupancy_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder to add occupancy samples to (in place).")],
    queries: Annotated[
        int, typer.Option(help="Queries per shape (Q; half uniform in the box, half near the surface).")
    ] = 8192,
    seed: Annotated[int, typer.Option(help="Seed of the query sampling.")] = 0,
    archive: Annotated[
        list[Path] | None,
        typer.Option(
            "--archive",
            help="Sweet Home 3D .sh3f file or folder the dataset was built from (repeatable; needed for "
            "Sweet Home 3D datasets, whose rows name their archive only).",
        ),
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add occupancy samples (points + inside labels) to an existing dataset without re-sampling its points.

    Q/2 queries uniform in [-1.1, 1.1]^3 and Q/2 near the surface (noise sigma 0.01 and 0.05); labels from the
    winding number (closed meshes) plus a one-voxel shell (open meshes). Broken shapes are reported and kept with
    valid=False.
    """
    from shapelatent.data.format import ShapeDataset
    from shapelatent.data.occupancy import add_occupancy

    n = len(ShapeDataset(dataset))
    with bar("occupancy", n) as pb:
        report = add_occupancy(
            dataset,
            queries=queries,
            seed=seed,
            workers=workers,
            force=force,
            progress=lambda k: pb.update(pb.task_ids[0], advance=k),
            archives=tuple(archive or ()),
        )
    from dataclasses import asdict

    payload = asdict(report)

    def human() -> None:
        emit(
            f"occupancy samples for [bold]{report.valid}[/] of {report.built} shapes in [bold]{dataset}[/] "
            f"({report.seconds:.1f} s; labels: {', '.join(f'{k} {v}' for k, v in report.label_methods.items())})"
        )
        for f in report.failed[:20]:
            emit(f"  no labels for {f['id']} ({f['source']}): {f['reason']}", highlight=False)

    emit_result({"path": dataset, **payload}, as_json, human)


def reconstruct_cmd(
    files: Annotated[list[Path], typer.Argument(help="Mesh files to reconstruct through the model.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Run folder, checkpoint or shipped model name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (<stem>.<format> per input).")],
    mesher: Annotated[
        str,
        typer.Option(
            help="auto (implicit when the model has an occupancy head, else poisson) | implicit | poisson | "
            "ball_pivoting | alpha."
        ),
    ] = "auto",
    mesh_format: Annotated[str, typer.Option(help="ply | obj | glb.")] = "ply",
    compare: Annotated[
        bool, typer.Option("--compare/--no-compare", help="Side-by-side picture: input | points | Poisson | implicit.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for meshing.")] = 0,
    force: ForceOpt = False,
    refine: RefineOpt = 0,
    refine_lr: RefineLrOpt = REFINE_LR,
    as_json: JsonOpt = False,
) -> None:
    """Mesh in, code, mesh out: each output lies over its input (written in the input file's coordinates).

    With --refine N, each code is refined (decoder frozen) to fit the input's points before it is decoded.
    """
    from shapelatent.latent.reconstruct import run_reconstruct
    from viewers.render import render_strip

    settings = refine_settings(refine, refine_lr)
    with bar("shapes", len(files) * (1 if settings is None else 2)) as pb:
        manifest = run_reconstruct(
            model,
            files,
            out,
            mesher=mesher,
            mesh_format=mesh_format,
            compare=compare,
            force=force,
            seed=seed,
            draw=render_strip if compare else None,
            progress=lambda: pb.update(pb.task_ids[0], advance=1),
            refine=settings,
        )

    def human() -> None:
        emit(f"{len(manifest['items'])} shapes reconstructed ({manifest['mesher']}) into [bold]{out}[/]")
        line = refine_line(manifest.get("refine"))
        if line:
            emit(line)
        for r in manifest["items"]:
            mesh = f"{out / r['mesh']}  ({r['triangles']} triangles)" if "mesh" in r else "no mesh"
            emit(f"  {Path(r['input']).name}: {mesh}; points Chamfer {r['chamfer_points']:.5f}", highlight=False)
            if "compare_png" in r:
                emit(f"    {out / r['compare_png']}")

    emit_result({"out": out, **manifest}, as_json, human)


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``train-implicit`` and ``reconstruct`` to the app and ``occupancy`` to ``data``."""
    app.command("train-implicit")(friendly(train_implicit_cmd))
    app.command("reconstruct")(friendly(reconstruct_cmd))
    data_app.command("occupancy")(friendly(occupancy_cmd))
