"""The meshed l-GMM row: decoded clouds meshed by Poisson, then sampled by area like the dataset."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d

from shapelatent.evaluate import EvalConfig, evaluate_run, to_markdown
from shapelatent.evaluate.meshes import poisson_surface_samples
from shapelatent.meshing import MeshingConfig, reconstruct_mesh

GEN_KEYS = {"MMD-CD", "COV-CD", "1-NNA-CD", "MMD-EMD", "COV-EMD", "1-NNA-EMD", "JSD"}
FAST = {"barycenter_steps": 10, "interpolation_pairs": 2, "interpolation_steps": 3, "mesh_shapes": 0}


def _sphere(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (0.5 * v).astype(np.float32), v.astype(np.float32)


def test_samples_lie_on_the_poisson_mesh_and_degenerate_clouds_are_left_out():
    """Oracle: each output cloud lies on the Poisson mesh of its input (same seed), and on the sphere it came from.
    A cloud of coincident points cannot be meshed: it is reported, not scored."""
    (a, na), (b, nb) = _sphere(1500, 0), _sphere(1500, 1)
    bad = np.zeros_like(a)
    points = np.stack([a, bad, b])
    normals = np.stack([na, na, nb])
    clouds, failed = poisson_surface_samples(points, normals, 256, seed=7)
    assert failed == [1] and clouds.shape == (2, 256, 3) and clouds.dtype == np.float32
    for out, k, src in ((clouds[0], 0, a), (clouds[1], 2, b)):
        ref = reconstruct_mesh(src, normals[k], MeshingConfig(method="poisson"), seed=7 + k)
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(
            o3d.core.Tensor(np.asarray(ref.vertices, np.float32)), o3d.core.Tensor(np.asarray(ref.faces, np.uint32))
        )
        dist = scene.compute_distance(o3d.core.Tensor(out)).numpy()
        assert dist.max() < 1e-5
        radius = np.linalg.norm(out, axis=1)
        assert abs(radius.mean() - 0.5) < 0.02 and radius.std() < 0.02
    # area sampling, not the input's density: a cloud bunched on one cap still gives points all round
    cap = a[a[:, 2] > 0.3]
    clustered = np.concatenate([a, np.repeat(cap, 4, axis=0)])
    n_cl = np.concatenate([na, np.repeat(na[a[:, 2] > 0.3], 4, axis=0)])
    even, _ = poisson_surface_samples(clustered[None], n_cl[None], 2000, seed=0)
    share_cap = float(np.mean(even[0][:, 2] > 0.3))
    assert share_cap < 0.5 * float(np.mean(clustered[:, 2] > 0.3))


def test_evaluate_reports_the_meshed_row(tiny_run, eval_data):
    result = evaluate_run(tiny_run, eval_data, EvalConfig(**FAST)).result
    gen = result["generation"]
    row = gen["l_gmm_meshed"]
    assert row["n"] + row["failed"] == gen["n_samples"] and row["n"] > 0
    assert row["mesher"] == "poisson" and row["sampling"].startswith("area_weighted")
    assert all(isinstance(row[k], float) and math.isfinite(row[k]) for k in GEN_KEYS), row
    assert "meshed by Poisson on the decoded points" in to_markdown(result)
    off = evaluate_run(tiny_run, eval_data, EvalConfig(meshed_generation=False, **FAST)).result
    assert "l_gmm_meshed" not in off["generation"]
    assert off["generation"]["l_gmm"] == gen["l_gmm"]  # the other rows do not depend on it
