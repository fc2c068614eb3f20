"""The ``shapelatent`` command line: one app, subcommands by task."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from shapelatent import __version__
from shapelatent.cli import evaluate as evaluate_cli
from shapelatent.cli import implicit as implicit_cli
from shapelatent.cli import latent as latent_cli
from shapelatent.cli import latent_map as latent_map_cli
from shapelatent.cli import render as render_cli
from shapelatent.cli import report as report_cli
from shapelatent.cli import view as view_cli
from shapelatent.cli.common import (
    ForceOpt,
    JsonOpt,
    bar,
    emit,
    emit_result,
    friendly,
    report_build,
    sampling_config,
)
from shapelatent.cli.data import data_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="shapelatent: learn a latent space of 3D shapes (point-cloud autoencoders).",
)
app.add_typer(data_app, name="data")
latent_cli.register_all(app, data_app)
evaluate_cli.register(app)
latent_map_cli.register(app)
implicit_cli.register(app, data_app)
# The commands of the viewers package (installed beside shapelatent); only the CLI imports it, never the library.
report_cli.register(app)
view_cli.register(app)
render_cli.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shapelatent {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    """shapelatent command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("trimesh").setLevel(logging.WARNING)  # its INFO lines (e.g. "triangulating faces") are noise
    # Open3D loads its own older TBB; numba then warns that its TBB threading layer is off and quietly uses
    # OpenMP instead, which is fine: not a warning for the user of a run that works.
    warnings.filterwarnings("ignore", message="The TBB threading layer requires TBB version", category=Warning)


def _run_config(config: Path | None, overrides: dict[str, dict[str, Any]], init_from: str | None = None):
    from shapelatent.train.config import RunConfig, load_config

    base = load_config(config) if config else RunConfig()
    if init_from is not None and config is None:  # fine-tuning: the source's architecture unless options change it
        from shapelatent.models.load import load_model

        base = RunConfig(model=load_model(init_from).model.config, train=base.train)
    return base.with_overrides(model=overrides["model"], train=overrides["train"])


def _stored_epochs(out: Path) -> int | None:
    """The epoch count recorded in OUT's last checkpoint (header only), or None if it cannot be read."""
    import json

    from safetensors import safe_open

    path = out / "checkpoints" / "last.safetensors"
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        return int(json.loads(meta["config"])["run"]["train"]["epochs"])
    except (OSError, KeyError, TypeError, ValueError, RuntimeError):
        return None  # train() reports a missing or foreign checkpoint with its own message


def _train_with_progress(data: Path, out: Path, cfg, resume: bool, force: bool, init_from: str | None = None):
    from shapelatent.train.loop import train

    total = None if resume else cfg.train.epochs
    with bar("epochs", total) as pb:

        def on_step(s: dict[str, Any]) -> None:
            pb.update(0, info=f"epoch {s['epoch']} step {s['step']}/{s['steps']} loss {s['loss']:.5f}")

        def on_epoch(row: dict[str, Any]) -> None:
            val = row["val_chamfer"]
            pb.update(
                0,
                completed=row["epoch"],
                total=pb.tasks[0].total or cfg.train.epochs,
                info=f"train {row['train_chamfer']:.5f} val {val if val is None else f'{val:.5f}'} "
                + (f"BCE {row['train_bce']:.4f} " if "train_bce" in row else "")
                + f"({row['shapes_per_s']:.0f} shapes/s)",
            )

        return train(
            data, out, cfg, resume=resume, force=force, on_step=on_step, on_epoch=on_epoch, init_from=init_from
        )


def _range_option(name: str, text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name} must be 'low,high' (two numbers); got {text!r}") from None
    return lo, hi


def _training_data(data: list[Path], out: Path, weights: str | None, resume: bool, force: bool) -> Path:
    """The dataset to train on: ``data[0]``, or the merge of several datasets in ``OUT/data`` (made once)."""
    if weights is not None and len(data) < 2:
        raise ValueError("--weights applies to several --data datasets; give two or more --data.")
    if len(data) == 1:
        return data[0]
    from shapelatent.data.merge import merge_datasets, merged_matches, parse_weights
    from shapelatent.train.distributed import is_main_process

    w = parse_weights(weights)
    merged = out / "data"
    if merged_matches(merged, data, w):
        return merged  # a resumed or repeated run reuses its merge
    if resume:
        raise ValueError(
            f"{merged}: does not hold the merge of {', '.join(map(str, data))}; resume with the --data and "
            "--weights the run was started with."
        )
    if not is_main_process():
        raise ValueError(f"{merged}: merge the datasets first (`shapelatent data merge ... --out {merged}`).")
    with bar("merging datasets", len(data)) as pb:
        merge_datasets(data, merged, w, force=force, progress=lambda d, t: pb.update(0, completed=d))
    return merged


@app.command("train")
@friendly
def train_cmd(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            "-d",
            help="Dataset folder (from `shapelatent data build`). Repeat to train on several datasets together "
            "(same sampling and normalisation; they are merged into OUT/data, each keeping its own splits).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON config with [model] and [train] tables.")] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            help="With several --data: comma-separated sampling weights, one per dataset, e.g. 1,0.5 (each epoch "
            "then draws as many shapes as the train splits hold, with replacement, dataset d with probability "
            "w_d / sum(w)). Default: every train shape once per epoch."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override train.batch_size (default 50).")] = None,
    lr: Annotated[float | None, typer.Option(help="Override train.lr (default 5e-4).")] = None,
    lr_schedule: Annotated[
        str | None, typer.Option(help="constant (default) | cosine (lr * (1 + cos(pi e / E)) / 2 at epoch e).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Decoupled weight decay (AdamW); 0 (default) keeps plain Adam.")
    ] = None,
    emd_weight: Annotated[
        float | None,
        typer.Option(help="w in Chamfer + w * EMD (auction matching), against points bunching; default 0."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override train.seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda.")] = None,
    latent_dim: Annotated[int | None, typer.Option(help="Override model.latent_dim (Z, default 128).")] = None,
    normals: Annotated[bool | None, typer.Option("--normals/--no-normals", help="Also decode normals.")] = None,
    rotate: Annotated[
        bool | None, typer.Option("--rotate-aug/--no-rotate-aug", help="Random rotation about Y.")
    ] = None,
    scale_aug: Annotated[
        str | None, typer.Option(help="Random isotropic scale range 'low,high', e.g. 0.85,1.15.")
    ] = None,
    mirror_aug: Annotated[
        bool | None,
        typer.Option("--mirror-aug/--no-mirror-aug", help="Random left-right mirror (x -> -x) of half the shapes."),
    ] = None,
    aniso_aug: Annotated[
        str | None,
        typer.Option(help="Random per-axis scale range 'low,high' (three factors per shape), e.g. 0.9,1.1."),
    ] = None,
    chamfer_backend: Annotated[str | None, typer.Option(help="Chamfer backend (auto, numba, torch, ...).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes that read batches (default 0: the training process itself).")
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="Mixed precision: autocast to bfloat16 (float16 + grad scaler on GPUs without bf16); "
            "the Chamfer loss stays float32.",
        ),
    ] = None,
    implicit: Annotated[
        str | None,
        typer.Option(
            help="Also train an occupancy head on the same code, jointly: cbn | concat | film, with that kind's "
            "default sizes (other sizes: [model.implicit] in --config). Needs a dataset with occupancy samples; "
            "`shapelatent train-implicit` adds a head to a trained model instead."
        ),
    ] = None,
    implicit_weight: Annotated[
        float | None, typer.Option(help="Override train.implicit_weight: w in Chamfer + w * BCE (default 0.01).")
    ] = None,
    implicit_local: Annotated[
        int | None,
        typer.Option(help="With --implicit: each query also reads its K nearest decoded points (default 0: off)."),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Start from this model's weights (a run folder, checkpoint or shipped model name: fine-tuning) with "
            "a fresh optimiser and this run's lr, schedule, epochs and loss terms; the architecture is the source's."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.safetensors.")] = False,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the PointNet autoencoder with Chamfer loss; checkpoints, metrics and a loss curve go to OUT.

    Data-parallel: `torchrun --nproc_per_node=N -m shapelatent.cli.main train ...` (only rank 0 prints).
    """
    scale = _range_option("--scale-aug", scale_aug)
    aniso = _range_option("--aniso-aug", aniso_aug)
    if implicit_local is not None and implicit is None:
        raise typer.BadParameter(
            "needs --implicit KIND (the head whose queries read the decoded points)", param_hint="--implicit-local"
        )
    if init_from is not None and resume:
        raise typer.BadParameter(
            "a resumed run continues from its own checkpoint (which records its source); drop --init-from",
            param_hint="--init-from",
        )
    data_dir = _training_data(data, out, weights, resume, force)
    if resume and epochs is None and config is None:
        epochs = _stored_epochs(out)  # a bare --resume finishes the run as planned (not the default epoch count)
    cfg = _run_config(
        config,
        {
            "model": {
                "latent_dim": latent_dim,
                "predict_normals": normals,
                "implicit": implicit
                and {"kind": implicit, **({"local": implicit_local} if implicit_local is not None else {})},
            },
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "lr_schedule": lr_schedule,
                "weight_decay": weight_decay,
                "emd_weight": emd_weight,
                "seed": seed,
                "device": device,
                "augment_rotate": rotate,
                "augment_scale": scale,
                "augment_mirror": mirror_aug,
                "augment_aniso": aniso,
                "chamfer_backend": chamfer_backend,
                "workers": workers,
                "amp": amp,
                "implicit_weight": implicit_weight,
            },
        },
        init_from,
    )
    from shapelatent.train.distributed import is_main_process

    if not is_main_process():  # torchrun ranks > 0: no progress bars, no report, warnings only
        from shapelatent.train.loop import train

        logging.getLogger().setLevel(logging.WARNING)
        train(data_dir, out, cfg, resume=resume, force=force, init_from=init_from)
        return
    result = _train_with_progress(data_dir, out, cfg, resume, force, init_from)
    emit_result(
        {"run_dir": result.run_dir, "files": _run_files(result), "summary": result.summary},
        as_json,
        lambda: _print_run(result),
    )


_RUN_FILES = ("model.safetensors", "checkpoints/last.safetensors", "metrics.jsonl", "metrics.json", "loss_curve.png")


def _run_files(result) -> list[Path]:
    return [result.run_dir / name for name in _RUN_FILES if (result.run_dir / name).exists()]


def _print_run(result) -> None:
    s = result.summary
    if "test_chamfer" in s:
        emit(f"test Chamfer (mean over {s['test_shapes']} shapes): [bold]{s['test_chamfer']:.6f}[/]")
    emit(f"run folder: [bold]{result.run_dir}[/]")
    for path in _run_files(result):
        emit(f"  {path}")


@app.command("demo")
@friendly
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder (dataset + run).")] = Path("runs/demo"),
    count: Annotated[int, typer.Option(help="Procedural chairs to generate.")] = 600,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    points: Annotated[
        int,
        typer.Option(
            "--points",
            "-p",
            help="Points per shape (1024 keeps the demo within a few CPU minutes; the library default is 2048).",
        ),
    ] = 1024,
    seed: Annotated[int, typer.Option(help="Seed for everything.")] = 0,
    head_epochs: Annotated[
        int,
        typer.Option(
            help="Also train an occupancy head for this many epochs (encoder frozen) and mesh the interpolation with "
            "it; 0 (default): no head, Poisson meshes (the head is still too coarse here, see the README)."
        ),
    ] = 0,
    force: ForceOpt = False,
) -> None:
    """Procedural chairs → autoencoder + occupancy head (CPU) → reconstructions, codes, neighbours, meshes."""
    import time

    from shapelatent.cli.demo import latent_tour, reconstruction_figure
    from shapelatent.data.sources.procedural import build_procedural
    from shapelatent.models import ModelConfig
    from shapelatent.train.config import RunConfig, TrainConfig

    t0 = time.perf_counter()
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to redo the demo there, or choose another --out.")
    data = out / "data"
    with bar("chairs", count) as pb:
        built = build_procedural(
            data,
            count,
            sampling=sampling_config(points, None, "bbox", "unit_sphere", seed),
            seed=seed,
            force=force,
            progress=lambda n: pb.update(0, advance=n),
        )
    report_build(built)
    if head_epochs:
        from shapelatent.data.occupancy import add_occupancy

        with bar("occupancy", count) as pb:
            add_occupancy(data, queries=4096, seed=seed, progress=lambda n: pb.update(0, advance=n))
    cfg = RunConfig(model=ModelConfig(predict_normals=True), train=TrainConfig(epochs=epochs, seed=seed, device="cpu"))
    result = _train_with_progress(data, out, cfg, resume=False, force=force)
    _print_run(result)
    model_run = out
    if head_epochs:
        from shapelatent.models.implicit import ImplicitConfig
        from shapelatent.train.implicit import ImplicitTrainConfig, train_implicit

        head = ImplicitConfig(kind="film", hidden=128, blocks=4, fourier=4)
        hcfg = ImplicitTrainConfig(epochs=head_epochs, batch_size=50, queries=512, lr=1e-3, seed=seed)
        with bar("occupancy head", head_epochs) as pb:
            hres = train_implicit(
                out, data, out / "head", head, hcfg, force=True, on_epoch=lambda r: pb.update(0, completed=r["epoch"])
            )
        model_run = out / "head"
        emit(
            f"occupancy head: test IoU {hres.summary.get('test_iou', float('nan')):.3f}; model with the head in "
            f"[bold]{model_run}[/]"
        )
    fig = reconstruction_figure(model_run, data, out / "reconstructions.png")
    emit(f"  {fig}")
    emit(f"dataset: [bold]{data}[/]  ({built.built} chairs)")
    with bar("latent space", 3) as pb:
        latent = latent_tour(out, data, seed=seed, progress=lambda: pb.update(0, advance=1), model_run=model_run)
    emit(
        f"store: [bold]{latent['store']}[/] ({latent['codes']} codes); class precision@5 {latent['precision_at_5']:.2f}"
    )
    emit(f"neighbours of {latent['query']}: {', '.join(latent['neighbors'])}")
    emit(f"  {latent['gallery']}")
    emit(
        f"interpolation {latent['interpolation']['from']} → {latent['interpolation']['to']} "
        f"({latent['interpolation']['class']}): class consistency "
        f"{latent['interpolation']['class_consistency']:.0%}, "
        f"{latent['interpolation']['meshed']} meshes in [bold]{latent['interpolation']['dir']}[/]"
    )
    for key in ("render_png", "render_gif", "points_png", "meshes_png"):
        emit(f"  {latent['interpolation'][key]}")
    from viewers.report import write_report

    emit(f"report: [bold]{write_report(out)}[/] (self-contained HTML)")
    emit(f"demo finished in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    app()
