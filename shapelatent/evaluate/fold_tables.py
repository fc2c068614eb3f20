"""Summaries of a cross-validation (``shapelatent evaluate --folds K``): mean +- sd over folds, and its Markdown.

:func:`numeric_figures` takes every real-valued figure of one fold's ``evaluation.json`` (counts, options and
per-shape rows left out) under a dotted name; :func:`over_folds` gives each figure's mean and sample standard
deviation (``ddof=1``) over the folds. The folds share training shapes, so their figures are not independent and
the sd understates the spread of a new training set (Bengio and Grandvalet, "No unbiased estimator of the
variance of K-fold cross-validation", JMLR 2004): read it as fold-to-fold variation, not a confidence interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_CLASS_TEST", "folds_markdown", "numeric_figures", "over_folds"]

#: A class gets a row of the per-class table when it has at least this many test shapes over all folds.
MIN_CLASS_TEST = 10
#: Keys of an evaluation record that are not figures: the set-up, per-shape rows, timings, options.
_NOT_FIGURES = frozenset({"protocol", "per_shape", "per_pair", "timing_s", "gmm", "C", "lr", "definition"})
_NEIGHBOUR_ROWS = (
    ("precision_split", "class precision@{k}, within the test fold (leave-one-out)"),
    ("precision_all", "class precision@{k}, among all shapes (leave-one-out)"),
    ("knn_accuracy", "{k}-NN accuracy, test fold voted by its training shapes"),
)


def numeric_figures(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every real-valued leaf of a JSON record under its dotted path (ints, bools, lists and set-up keys left out)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_FIGURES:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric_figures(value, name + "."))
        elif isinstance(value, float) and math.isfinite(value):
            out[name] = value
    return out


def over_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """``{figure: {"mean", "sd", "n", "values"}}`` over the folds; ``sd`` is the sample sd (None for one value).

    A figure missing from some folds (e.g. skipped there) is summarised over the folds that have it (``n``).
    """
    names = sorted({k for fold in per_fold for k in fold})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = [fold.get(name) for fold in per_fold]
        have = np.array([v for v in values if v is not None], dtype=np.float64)
        out[name] = {
            "mean": float(have.mean()),
            "sd": float(have.std(ddof=1)) if len(have) > 1 else None,
            "n": len(have),
            "values": values,
        }
    return out


def _pm(entry: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    if not entry:
        return "—"
    sd = entry.get("sd")
    text = f"{entry['mean'] * scale:.{digits}f}"
    return text + (f" ± {sd * scale:.{digits}f}" if sd is not None else "") + unit


def _g(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def folds_markdown(record: Mapping[str, Any]) -> str:
    """The Markdown of a ``folds.json`` record: neighbour figures with the geometry ceiling, all figures, classes."""
    proto = record["protocol"]
    k, folds = proto["k"], proto["folds"]
    lines = [
        f"# Cross-validation: {folds} folds stratified by class (seed {proto['seed']})",
        "",
        f"Dataset `{proto['dataset']['path']}`: {proto['dataset']['num_shapes']} shapes; fold sizes "
        f"{', '.join(map(str, proto['fold_sizes']))}. {proto['split_rule']}",
        "",
        f"## Neighbours: codes vs the geometry ceiling (mean ± sd over {folds} folds, %)",
        "",
        "| figure | codes (Euclidean) | geometry ceiling (Chamfer) |",
        "|---|---|---|",
    ]
    neigh = record["neighbours"]
    for key, label in _NEIGHBOUR_ROWS:
        codes = neigh.get("codes", {}).get(key)
        geo = neigh.get("geometry", {}).get(key)
        lines.append(f"| {label.format(k=k)} | {_pm(codes, 100)} | {_pm(geo, 100)} |")
    lines += ["", str(neigh["definition"]), ""]
    figures = record.get("figures") or {}
    if figures:
        lines += [
            f"## Every figure of the evaluations (mean ± sd over {folds} folds)",
            "",
            "| figure | mean | sd | per fold |",
            "|---|---|---|---|",
        ]
        for name, e in figures.items():
            per = ", ".join(_g(v) for v in e["values"])
            lines.append(f"| {name} | {_g(e['mean'])} | {_g(e['sd'])} | {per} |")
        lines.append("")
    per_class = record.get("per_class") or {}
    lines += [f"## Classes with at least {MIN_CLASS_TEST} test shapes over the folds (pooled over folds)", ""]
    if per_class:
        cols = ["class", "test shapes", "codes kNN %", "geometry kNN %", f"codes P@{k} %", f"geometry P@{k} %"]
        if any(row.get("cd_mean") is not None for row in per_class.values()):
            cols.append("reconstruction CD ×10³")
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for cls, row in per_class.items():
            cells = [cls, str(row["n_test"])]
            for key in ("codes_knn", "geometry_knn", "codes_precision", "geometry_precision"):
                cells.append("—" if row.get(key) is None else f"{100 * row[key]:.1f}")
            if "reconstruction CD ×10³" in cols:
                cells.append("—" if row.get("cd_mean") is None else f"{1e3 * row['cd_mean']:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No class has that many.")
    omitted = record.get("per_class_omitted") or {}
    if omitted:
        lines += ["", "Left out (fewer test shapes): " + ", ".join(f"{c} ({n})" for c, n in omitted.items()) + "."]
    return "\n".join(lines) + "\n"
