"""Fixtures shared with the latent tests: a tiny trained model and its dataset (session scoped)."""

from tests.latent.conftest import tiny_data, tiny_run  # noqa: F401 (re-exported fixtures)
