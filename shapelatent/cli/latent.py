"""``shapelatent encode`` (and the other latent-space commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import ForceOpt, JsonOpt, WorkersOpt, bar, emit, emit_result, friendly
from shapelatent.cli.refine_opts import REFINE_LR, RefineLrOpt, RefineOpt, refine_line, refine_settings

__all__ = ["register"]


def encode_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Mesh/point files, folders of them, or built dataset folders.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or checkpoint of a trained model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Store folder.")],
    append: Annotated[bool, typer.Option("--append", help="Add to an existing store (same model only).")] = False,
    batch_size: Annotated[int, typer.Option(help="Shapes per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="cpu | cuda.")] = "cpu",
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    id_prefix: Annotated[
        str,
        typer.Option(
            "--id-prefix",
            metavar="PREFIX",
            help="Store ids as PREFIX + id, e.g. to --append a dataset whose ids are already in the store.",
        ),
    ] = "",
    refine: RefineOpt = 0,
    refine_lr: RefineLrOpt = REFINE_LR,
    as_json: JsonOpt = False,
) -> None:
    """Encode shapes to latent codes in a store (codes, ids, sources, classes, model fingerprint)."""
    from shapelatent.latent.encode import collect_inputs, encode_to_store
    from shapelatent.latent.refine import RefineResult, refine_summary

    settings = refine_settings(refine, refine_lr)
    resolved = collect_inputs(inputs)
    from shapelatent.data.format import ShapeDataset

    total = len(resolved.files) + sum(len(ShapeDataset(d)) for d in resolved.datasets)
    refined: list[RefineResult] = []
    with bar("encoding" if settings is None else "encoding + refining", total * (1 if settings is None else 2)) as pb:
        store, failed = encode_to_store(
            model,
            inputs,
            out,
            append=append,
            force=force,
            batch_size=batch_size,
            workers=workers,
            device=device,
            progress=lambda n: pb.update(0, advance=n),
            id_prefix=id_prefix,
            refine=settings,
            on_refined=refined.append,
        )
    summary = refine_summary(refined) if settings is not None else None

    def human() -> None:
        emit(f"store [bold]{store.path}[/]: {len(store)} codes of size {store.latent_dim}")
        line = refine_line(summary)
        if line:
            emit(line)
        if failed:
            emit(f"[yellow]{len(failed)} inputs could not be encoded:[/]")
            for f in failed[:20]:
                emit(f"  {f['source']}: {f['reason']}", markup=False)

    payload = {
        "store": store.path,
        "codes": len(store),
        "latent_dim": store.latent_dim,
        "failed": [{"source": f["source"], "reason": f["reason"]} for f in failed],
    }
    if summary is not None:  # only with --refine: the keys of a plain run stay as they were
        payload["refine"] = summary
    emit_result(payload, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the latent-space commands to the main app."""
    app.command("encode")(friendly(encode_cmd))


MesherOpt = Annotated[
    str,
    typer.Option(
        help="auto (implicit when the model has an occupancy head, else poisson) | implicit | poisson | "
        "ball_pivoting | alpha | none."
    ),
]
MeshFormatOpt = Annotated[str, typer.Option(help="ply | obj | glb.")]


def _mesher(name: str) -> str | None:
    from shapelatent.meshing import MESHERS

    if name == "none":
        return None
    if name not in (*MESHERS, "implicit", "auto"):
        raise ValueError(f"--mesher must be one of auto, implicit, {', '.join(MESHERS)} or none; got {name!r}")
    return name


def _print_meshing(manifest: dict, out: Path) -> None:
    m = manifest.get("meshing") or {}
    if m:
        emit(
            f"meshes: {m['meshed']} built, {m['failed']} failed; watertight share {m['watertight_share']}; "
            f"mean triangles {m['mean_triangles']}; mean Chamfer mesh↔points {m['mean_chamfer_mesh_to_points']}"
        )
    for key in ("points_png", "meshes_png"):
        if key in manifest:
            emit(f"  {out / manifest[key]}")
    emit(f"manifest: [bold]{out / 'manifest.json'}[/]")


def _shapes_payload(manifest: dict, out: Path, rows: list[dict]) -> dict:
    """The keys that interpolate, sample and arithmetic share in their ``--json`` output."""

    def item(row: dict) -> dict:
        shown = {k: v for k, v in row.items() if k != "code"}  # the codes are in the manifest
        for key in ("points", "mesh"):
            shown[key] = out / row[key] if key in row else None
        return shown

    return {
        "out": out,
        "manifest": out / "manifest.json",
        "items": [item(r) for r in rows],
        "meshing": manifest.get("meshing") or {},
        "points_png": out / manifest["points_png"] if "points_png" in manifest else None,
        "meshes_png": out / manifest["meshes_png"] if "meshes_png" in manifest else None,
    }


def interpolate_cmd(
    shapes: Annotated[list[str], typer.Argument(help="Two or more shapes: store ids (with --store) or mesh files.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or checkpoint.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    steps: Annotated[int, typer.Option(help="Steps per segment, endpoints included (>= 2).")] = 8,
    method: Annotated[str, typer.Option(help="linear | slerp.")] = "linear",
    store: Annotated[Path | None, typer.Option(help="Store for ids and the class check.")] = None,
    mesher: MesherOpt = "auto",
    mesh_format: MeshFormatOpt = "ply",
    seed: Annotated[int, typer.Option(help="Seed for meshing.")] = 0,
    force: ForceOpt = False,
    refine: RefineOpt = 0,
    refine_lr: RefineLrOpt = REFINE_LR,
    as_json: JsonOpt = False,
) -> None:
    """Interpolate between shapes in latent space; write each step's points, mesh, a manifest and strips.

    With --refine N, the codes of the shapes given as files are refined (decoder frozen) before interpolating.
    """
    from shapelatent.latent.runs import run_interpolation
    from viewers.render import render_folder, render_strip

    manifest = run_interpolation(
        model,
        shapes,
        out,
        steps=steps,
        method=method,
        store_path=store,
        mesher=_mesher(mesher),
        mesh_format=mesh_format,
        force=force,
        seed=seed,
        draw=render_strip,
        refine=refine_settings(refine, refine_lr),
    )
    renders = render_folder(out)

    def human() -> None:
        emit(f"{len(manifest['steps'])} steps ({method}) written to [bold]{out}[/]")
        line = refine_line(manifest.get("refine"))
        if line:
            emit(line)
        emit(f"  rendered ({renders.mode}): {renders.sheet}  {renders.gif}")
        if "class_consistency" in manifest:
            emit(f"class consistency (nearest-neighbour class = endpoints' class): {manifest['class_consistency']:.0%}")
        _print_meshing(manifest, out)

    payload = {
        "method": method,
        "shapes": manifest["shapes"],
        "class_consistency": manifest.get("class_consistency"),
        "renders": {"mode": renders.mode, "sheet": renders.sheet, "gif": renders.gif},
        **_shapes_payload(manifest, out, manifest["steps"]),
    }
    if "refine" in manifest:  # only with --refine
        payload["refine"] = manifest["refine"]
    emit_result(payload, as_json, human)


def sample_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or checkpoint.")],
    store: Annotated[Path, typer.Option(help="Store of training codes to fit the l-GMM on.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    n: Annotated[int, typer.Option("-n", help="Shapes to generate.")] = 16,
    components: Annotated[int, typer.Option(help="Gaussian mixture components.")] = 32,
    covariance: Annotated[str, typer.Option(help="full | diag | tied | spherical.")] = "full",
    cls: Annotated[str | None, typer.Option("--class", help="Fit on one class only.")] = None,
    split: Annotated[str, typer.Option(help="Fit on this split of the store ('' for all).")] = "train",
    mesher: MesherOpt = "auto",
    mesh_format: MeshFormatOpt = "ply",
    seed: Annotated[int, typer.Option(help="Seed for the mixture and sampling.")] = 0,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate new shapes: fit a Gaussian mixture on the codes (l-GMM) and decode samples, with meshes."""
    from shapelatent.latent.runs import run_sampling
    from viewers.render import render_strip

    manifest = run_sampling(
        model,
        store,
        out,
        n=n,
        components=components,
        covariance=covariance,
        cls=cls,
        split=split or None,
        mesher=_mesher(mesher),
        mesh_format=mesh_format,
        force=force,
        seed=seed,
        draw=render_strip,
    )

    def human() -> None:
        emit(f"{n} samples from a {components}-component l-GMM fitted on {manifest['fitted_on']} codes")
        _print_meshing(manifest, out)

    payload = {
        "n": n,
        "components": components,
        "covariance": covariance,
        "class": cls,
        "split": split or None,
        "fitted_on": manifest["fitted_on"],
        **_shapes_payload(manifest, out, manifest["samples"]),
    }
    emit_result(payload, as_json, human)


def arithmetic_cmd(
    expression: Annotated[str, typer.Argument(help="e.g. 'A - B + C' or 'chair_1 + mean:armchair - mean:chair'.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or checkpoint.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    store: Annotated[Path | None, typer.Option(help="Store for ids and class means.")] = None,
    mesher: MesherOpt = "auto",
    mesh_format: MeshFormatOpt = "ply",
    seed: Annotated[int, typer.Option(help="Seed for meshing.")] = 0,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Latent arithmetic: add and subtract codes (ids, files, mean:CLASS) and decode the result, with meshes."""
    from shapelatent.latent.runs import run_arithmetic
    from viewers.render import render_strip

    manifest = run_arithmetic(
        model,
        expression,
        out,
        store_path=store,
        mesher=_mesher(mesher),
        mesh_format=mesh_format,
        force=force,
        seed=seed,
        draw=render_strip,
    )
    result = manifest["shapes"][-1]

    def human() -> None:
        nn_class = f" ({result['nn_class']})" if "nn_class" in result else ""
        emit(f"{expression} → {out / result['points']}{nn_class}", markup=False)
        _print_meshing(manifest, out)

    shapes = _shapes_payload(manifest, out, manifest["shapes"])
    emit_result({"expression": expression, "result": shapes["items"][-1], **shapes}, as_json, human)


def augment_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder or checkpoint.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset to draw same-class pairs from.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New dataset folder.")],
    pairs: Annotated[int, typer.Option(help="Random same-class pairs.")] = 100,
    per_pair: Annotated[int, typer.Option(help="Interpolated shapes per pair (endpoints excluded).")] = 3,
    method: Annotated[str, typer.Option(help="linear | slerp.")] = "linear",
    seed: Annotated[int, typer.Option(help="Seed for the pairs.")] = 0,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Enlarge a dataset with decoded interpolations between same-class training shapes."""
    from shapelatent.cli.common import report_build
    from shapelatent.latent.augment import augment_dataset

    report_build(
        augment_dataset(model, data, out, pairs=pairs, per_pair=per_pair, method=method, seed=seed, force=force),
        as_json,
    )


def register_all(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add every latent-space command."""
    from shapelatent.cli import latent_neighbors

    register(app)
    latent_neighbors.register(app)
    app.command("interpolate")(friendly(interpolate_cmd))
    app.command("sample")(friendly(sample_cmd))
    app.command("arithmetic")(friendly(arithmetic_cmd))
    data_app.command("augment")(friendly(augment_cmd))
