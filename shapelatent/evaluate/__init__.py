"""Evaluate a trained run: reconstruction, baselines, l-GMM generation and latent metrics (``shapelatent evaluate``)."""

from shapelatent.evaluate.baselines import (
    Barycenter,
    NearestTrain,
    chamfer_barycenter,
    mean_chamfer_to,
    nearest_by_chamfer,
)
from shapelatent.evaluate.config import (
    CHAMFER_DEFINITION,
    EMD_DEFINITION,
    EvalConfig,
    Evaluation,
    check_dataset_matches,
    default_out,
)
from shapelatent.evaluate.output import write_evaluation
from shapelatent.evaluate.run import evaluate_run, run_evaluation
from shapelatent.evaluate.tables import Table, evaluation_tables, to_markdown

__all__ = [
    "CHAMFER_DEFINITION",
    "EMD_DEFINITION",
    "Barycenter",
    "EvalConfig",
    "Evaluation",
    "NearestTrain",
    "Table",
    "chamfer_barycenter",
    "check_dataset_matches",
    "default_out",
    "evaluate_run",
    "evaluation_tables",
    "mean_chamfer_to",
    "nearest_by_chamfer",
    "run_evaluation",
    "to_markdown",
    "write_evaluation",
]
