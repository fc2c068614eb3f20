"""Writing an evaluation: ``evaluation.json``, ``evaluation.md``, ``provenance.json`` and, given a drawer,
``samples.png``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from shapelatent.errors import OutputExistsError
from shapelatent.evaluate.config import Evaluation
from shapelatent.viz.drawer import StripDrawer

__all__ = ["check_out", "write_evaluation"]

logger = logging.getLogger(__name__)


def check_out(out: Path, force: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder without ``force`` (``OutputExistsError``)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another --out.")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"{out}: already exists and is not empty; pass --force to overwrite its evaluation files, "
            "or choose another --out."
        )


def write_evaluation(
    evaluation: Evaluation, out: str | os.PathLike[str], *, force: bool = False, draw: StripDrawer | None = None
) -> Path:
    """Write ``evaluation.json``, ``evaluation.md``, ``provenance.json`` and ``samples.png`` into ``out``.

    Every file is written atomically, ``evaluation.json`` last (its presence means the others are complete).
    With ``force`` only these four files are replaced; nothing else in ``out`` is touched. ``samples.png`` (the
    decoded l-GMM samples in a row) is drawn by ``draw`` (the CLI passes ``viewers.render.render_strip``; see
    :class:`shapelatent.viz.drawer.StripDrawer`); without a drawer it is not written.

    Raises:
        OutputExistsError: ``out`` exists and is not empty, without ``force``.
    """
    from shapelatent.evaluate.tables import to_markdown
    from shapelatent.io.atomic import atomic_write_json, atomic_write_text
    from shapelatent.provenance import provenance

    out = Path(out)
    check_out(out, force)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluation.result
    if len(evaluation.samples) and draw is not None:
        draw(
            list(evaluation.samples),
            evaluation.sample_titles,
            out / "samples.png",
            f"l-GMM samples ({result['generation']['gmm']['components']} components; "
            f"class: {result['protocol']['config']['k']}-NN vote of the training codes)",
        )
    atomic_write_text(out / "evaluation.md", to_markdown(result))
    protocol = result["protocol"]
    atomic_write_json(
        out / "provenance.json",
        provenance(
            {"model": protocol["model"]["path"], "data": protocol["dataset"]["path"], **protocol["config"]},
            protocol["seed"],
        ),
    )
    atomic_write_json(out / "evaluation.json", result)
    logger.info("wrote the evaluation into %s", out)
    return out
