"""The viewer's mesher process: its PyTorch thread count and its answers (no display needed)."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import torch

from viewers.gui.worker import MeshProcess, _serve


def test_serve_runs_pytorch_on_the_threads_it_is_given():
    before = torch.get_num_threads()
    parent, child = mp.Pipe()
    try:
        parent.send(None)  # queued: _serve stops at its first request, the thread count is set before it
        _serve(child, "unused-model", 1)  # on this (main) thread, as in the child process: OpenMP's count is per thread
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_mesh_process_answers_a_point_mesher_request():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2000, 3)).astype(np.float32)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)  # a unit sphere; its outward normals are the points
    proc = MeshProcess("unused-model", threads=1)  # point meshers never load the model
    try:
        res = proc.mesh("poisson", None, pts, pts.copy(), 128)
    finally:
        proc.close()
    assert res.method == "poisson" and res.num_triangles > 100
    radii = np.linalg.norm(res.vertices, axis=1)
    assert abs(float(np.median(radii)) - 1.0) < 0.05
