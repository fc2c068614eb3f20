"""``shapelatent encode`` (and the other latent-space commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shapelatent.cli.common import ForceOpt, WorkersOpt, bar, console, friendly

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
) -> None:
    """Encode shapes to latent codes in a store (codes, ids, sources, classes, model fingerprint)."""
    from shapelatent.latent.encode import collect_inputs, encode_to_store

    resolved = collect_inputs(inputs)
    from shapelatent.data.format import ShapeDataset

    total = len(resolved.files) + sum(len(ShapeDataset(d)) for d in resolved.datasets)
    with bar("encoding", total) as pb:
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
        )
    console.print(f"store [bold]{store.path}[/]: {len(store)} codes of size {store.latent_dim}")
    if failed:
        console.print(f"[yellow]{len(failed)} inputs could not be encoded:[/]")
        for f in failed[:20]:
            console.print(f"  {f['source']}: {f['reason']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the latent-space commands to the main app."""
    app.command("encode")(friendly(encode_cmd))
