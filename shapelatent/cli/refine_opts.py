"""The ``--refine N`` / ``--refine-lr`` options shared by the commands that encode shapes from files or datasets
(``encode``, ``reconstruct``, ``interpolate``, ``neighbors``), and how their results report refinement.

See :mod:`shapelatent.latent.refine` (test-time refinement of the codes with the decoder frozen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from shapelatent.latent.refine import RefineSettings

__all__ = ["REFINE_LR", "REFINE_STEPS", "RefineLrOpt", "RefineOpt", "refine_line", "refine_settings"]

# The library's defaults (shapelatent.latent.refine DEFAULT_STEPS, DEFAULT_LR; a test keeps them equal), written
# out so that building the CLI does not import torch.
#: Steps suggested in the help of ``--refine``.
REFINE_STEPS = 100
#: Default of ``--refine-lr``.
REFINE_LR = 0.1

RefineOpt = Annotated[
    int,
    typer.Option(
        "--refine",
        metavar="N",
        help=f"Refine each code for N Adam steps with the decoder frozen, to fit the shape's points better "
        f"(0: off; {REFINE_STEPS} is well under 2 s per shape on 2 CPU cores).",
    ),
]
RefineLrOpt = Annotated[float, typer.Option("--refine-lr", help="Adam learning rate of --refine.")]


def refine_settings(steps: int, lr: float) -> RefineSettings | None:
    """The settings of ``--refine N --refine-lr LR``, or None for ``--refine 0``.

    Raises:
        ValueError: a negative N or a learning rate that is not a positive number.
    """
    from shapelatent.latent.refine import RefineSettings

    if steps == 0:
        return None
    return RefineSettings(steps=steps, lr=lr)


def refine_line(summary: dict[str, Any] | None) -> str | None:
    """One human-readable line of a refinement summary (:func:`shapelatent.latent.refine.refine_summary`)."""
    if not summary or not summary.get("shapes"):
        return None
    s = summary["settings"]
    return (
        f"refined {summary['shapes']} codes ({s['steps']} steps, lr {s['lr']:g}): mean Chamfer "
        f"{summary['chamfer_before']:.5f} → {summary['chamfer_after']:.5f} (×{summary['ratio']:.3f}), "
        f"{summary['seconds_per_shape']:.2f} s per shape"
    )
