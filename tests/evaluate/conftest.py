"""Fixtures of the evaluation tests: the tiny run of tests/latent and a small dataset sampled like it."""

from __future__ import annotations

import pytest

from shapelatent.data.build import SamplingConfig
from shapelatent.data.sources.procedural import build_procedural
from tests.latent.conftest import tiny_data, tiny_run  # noqa: F401  (session fixtures re-exported)


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory):
    """24 chairs of 3 families (P=128, like tiny_run), half train and half test: 4 test shapes per class."""
    out = tmp_path_factory.mktemp("evaluate") / "chairs3"
    build_procedural(
        out,
        24,
        sampling=SamplingConfig(num_points=128),
        seed=5,
        families=("four_legged", "stool", "sofa"),
        split_fractions={"train": 0.5, "val": 0.0, "test": 0.5},
        workers=1,
    )
    return out
