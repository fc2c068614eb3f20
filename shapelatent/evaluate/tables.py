"""The tables of an evaluation record, as plain rows (for Markdown here and HTML in the run report).

Numbers are scaled so that they read as a few digits: Chamfer (squared distances) x10^3, EMD (distances)
x10^2, JSD x10^2, COV and 1-NNA in percent. Every header states its scaling.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Table", "evaluation_tables", "to_markdown"]

CD_SCALE, EMD_SCALE, JSD_SCALE = 1e3, 1e2, 1e2


class Table(NamedTuple):
    """One table: a title, column headers, rows of formatted cells and a note under it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str


def _num(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value * scale:.{digits}f}"


def _latent_row(label: str, entry: dict[str, Any]) -> list[str]:
    if "skipped" in entry:
        return [label, f"skipped: {entry['skipped']}"]
    return [label, _num(entry.get("value"), 100.0, 1) + " %"]


def evaluation_tables(result: dict[str, Any]) -> list[Table]:
    """Reconstruction, generation and latent tables of an ``evaluation.json`` record."""
    proto = result["protocol"]
    split, n = proto["split"], proto["n_shapes"]
    rec = result["reconstruction"]
    cols = ["", "CD mean (×10³)", "CD median (×10³)", "EMD mean (×10²)", "EMD median (×10²)"]
    labels = {
        "model": "model (reconstruction)",
        "refined": "model, codes refined at test time",
        "mean_shape": "mean training shape (Chamfer barycentre)",
        "nearest_train": "nearest training shape by Chamfer (oracle)",
    }
    rows = [
        [
            label,
            _num(rec[key]["cd"]["mean"], CD_SCALE),
            _num(rec[key]["cd"]["median"], CD_SCALE),
            _num(rec[key]["emd"]["mean"], EMD_SCALE),
            _num(rec[key]["emd"]["median"], EMD_SCALE),
        ]
        for key, label in labels.items()
        if key in rec
    ]
    ratios = rec.get("ratio_to_nearest") or {}
    ratio_text = "; ".join(
        f"{key}: {r['of_means']:.3f} (per-shape mean {r['mean']:.3f}, median {r['median']:.3f})"
        for key, r in ratios.items()
    )
    refined = rec.get("refined")
    tables = [
        Table(
            f"Reconstruction ({split} split, {n} shapes, {proto['points']} points)",
            cols,
            rows,
            f"Chamfer: {proto['chamfer_definition']}. EMD: {proto['emd_definition']} ({proto['emd_method']}). "
            "Lower is better. The nearest training shape sees the evaluated shape; the model sees only its code."
            + (
                f" The refined row optimises each shape's code for {refined['steps']} Adam steps (lr "
                f"{refined['lr']:g}) towards its own points with the decoder frozen: "
                f"{refined['seconds_per_shape']:.2f} s per shape."
                if refined
                else ""
            )
            + (f" Chamfer / oracle Chamfer: {ratio_text}." if ratio_text else ""),
        )
    ]

    gen = result["generation"]
    gcols = [
        "",
        "MMD-CD (×10³)",
        "COV-CD (%)",
        "1-NNA-CD (%)",
        "MMD-EMD (×10²)",
        "COV-EMD (%)",
        "1-NNA-EMD (%)",
        "JSD (×10²)",
    ]

    def gen_row(label: str, m: dict[str, Any]) -> list[str]:
        return [
            label,
            _num(m.get("MMD-CD"), CD_SCALE),
            _num(m.get("COV-CD"), 100.0, 1),
            _num(m.get("1-NNA-CD"), 100.0, 1),
            _num(m.get("MMD-EMD"), EMD_SCALE),
            _num(m.get("COV-EMD"), 100.0, 1),
            _num(m.get("1-NNA-EMD"), 100.0, 1),
            _num(m.get("JSD"), JSD_SCALE),
        ]

    gmm = gen["gmm"]
    tables.append(
        Table(
            f"Generation (reference: the {gen['n_ref']} {split} shapes)",
            gcols,
            [
                gen_row(f"l-GMM samples (n={gen['n_samples']})", gen["l_gmm"]),
                *(
                    [
                        gen_row(
                            f"l-GMM samples through the implicit head: mesh, then {proto['points']} surface points "
                            f"(n={gen['l_gmm_implicit']['n']})",
                            gen["l_gmm_implicit"],
                        )
                    ]
                    if "l_gmm_implicit" in gen
                    else []
                ),
                *(
                    [
                        gen_row(
                            f"l-GMM samples meshed by Poisson on the decoded points, then {proto['points']} surface "
                            f"points (n={gen['l_gmm_meshed']['n']})",
                            gen["l_gmm_meshed"],
                        )
                    ]
                    if "l_gmm_meshed" in gen
                    else []
                ),
                gen_row(
                    f"reference line: training shapes (n={gen['train_vs_ref']['n']}), not a model",
                    gen["train_vs_ref"],
                ),
            ],
            f"l-GMM: {gmm['components']} Gaussians, {gmm['covariance']} covariance, fitted on {gmm['fitted_on']} "
            f"training codes. Point-cloud normalisation before these metrics: {proto['normalize']}. MMD, 1-NNA, JSD: "
            "lower is better (1-NNA ideal 50 %); COV: higher is better. The reference line scores real training "
            "shapes against the same reference: what matching the data distribution looks like on this data."
            + (
                f" The implicit row decodes the same codes with the occupancy head (MISE "
                f"{gen['l_gmm_implicit']['resolution']}^3) and samples each mesh uniformly by area, as the dataset "
                f"sampled its meshes ({gen['l_gmm_implicit']['empty']} empty level sets left out)."
                if "l_gmm_implicit" in gen
                else ""
            )
            + (
                " The Poisson row meshes the same decoded clouds as `sample --mesher poisson` delivers them and "
                f"samples each mesh the same way ({gen['l_gmm_meshed']['failed']} clouds Poisson could not mesh left "
                "out); the decoded points bunch on large surfaces, which EMD punishes, the meshes do not."
                if "l_gmm_meshed" in gen
                else ""
            ),
        )
    )

    lat = result["latent"]
    interp = lat["interpolation"]
    k_split = lat["precision_split"].get("k", lat["precision_split"].get("k_requested"))
    k_all = lat["precision_all"].get("k", lat["precision_all"].get("k_requested"))
    interp_label = (
        f"interpolation class consistency ({interp.get('pairs', 0)} same-class {split} pairs, {interp['steps']} steps, "
        f"{interp['k']}-NN vote among training codes)"
    )
    tables.append(
        Table(
            "Latent space",
            ["metric", "value"],
            [
                _latent_row(
                    f"class precision@{k_split}, leave-one-out among the {lat['precision_split']['n']} {split} codes",
                    lat["precision_split"],
                ),
                _latent_row(
                    f"class precision@{k_all}, leave-one-out among all {lat['precision_all']['n']} codes (all splits)",
                    lat["precision_all"],
                ),
                _latent_row(f"linear SVM accuracy (C={lat['svm']['C']}), train codes → {split} codes", lat["svm"]),
                _latent_row(interp_label, interp),
            ],
            "Higher is better.",
        )
    )
    if "meshes" in result:
        tables.append(_mesh_table(result["meshes"]))
    return tables


_MESHER_LABELS = {
    "implicit": "implicit head (MISE 128³)",
    "poisson": "Poisson on decoded points",
    "poisson_true": "Poisson on the true points (upper bound)",
}


def _mesh_table(meshes: dict[str, Any]) -> Table:
    """Mesh quality per mesher, over all evaluated shapes."""
    summ = meshes["summary"].get("all", {})
    cols = ["mesher", "F@1%", "F@2%", "CD-L1 (×10²)", "normal cons.", "IoU", "watertight", "1 component", "s/mesh"]
    rows = []
    for key, label in _MESHER_LABELS.items():
        m = summ.get(key)
        if not m:
            continue
        rows.append(
            [
                label,
                _num(m["fscore@1%"], 1.0, 3),
                _num(m["fscore@2%"], 1.0, 3),
                _num(m["chamfer_l1"], 100.0),
                _num(m["normal_consistency"], 1.0, 3),
                _num(m["iou"], 1.0, 3),
                _num(m["watertight_share"], 100.0, 0) + "%" if m["watertight_share"] is not None else "-",
                _num(m["one_component_share"], 100.0, 0) + "%" if m["one_component_share"] is not None else "-",
                _num(m["seconds"], 1.0, 2),
            ]
        )
    return Table(
        f"Meshes ({meshes['n_shapes']} shapes) against the true meshes",
        cols,
        rows,
        meshes["definition"] + ". Higher is better except CD-L1 and seconds.",
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(result: dict[str, Any]) -> str:
    """The whole evaluation as Markdown: a header with the protocol, then the three tables."""
    proto = result["protocol"]
    classes = proto["classes"] if proto["classes"] == "all" else ", ".join(proto["classes"])
    lines = [
        "# Evaluation",
        "",
        f"- model: `{proto['model']['path']}` (fingerprint {proto['model']['fingerprint'][:12]})",
        f"- data: `{proto['dataset']['path']}`, split **{proto['split']}**, {proto['n_shapes']} shapes "
        f"({proto['points']} points), classes: {classes}; {proto['n_train']} training shapes",
        f"- seed {proto['seed']}; EMD method {proto['emd_method']}; generation normalisation {proto['normalize']}",
        "",
    ]
    for table in evaluation_tables(result):
        lines += [f"## {table.title}", ""]
        lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        lines += ["", table.note, ""]
    return "\n".join(lines)
