"""Generation from the latent space: the latent GMM (l-GMM) of Achlioptas et al. 2018, and code arithmetic."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["ArithmeticTerm", "LatentGMM", "evaluate_expression", "parse_expression"]


class LatentGMM:
    """A Gaussian mixture fitted on training codes (scikit-learn ``GaussianMixture``).

    Args:
        n_components: mixture components (Achlioptas et al. use 32, full covariance).
        covariance_type: ``full``, ``diag``, ``tied`` or ``spherical``.
        seed: seeds the EM initialisation and the sampler.
    """

    def __init__(self, n_components: int = 32, covariance_type: str = "full", seed: int = 0) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1; got {n_components}")
        if covariance_type not in ("full", "diag", "tied", "spherical"):
            raise ValueError(f"covariance_type must be full, diag, tied or spherical; got {covariance_type!r}")
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.seed = seed
        self._gmm = None

    def fit(self, codes: np.ndarray) -> LatentGMM:
        """Fit on (N, Z) codes; N must be at least ``n_components``."""
        from sklearn.mixture import GaussianMixture

        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or len(codes) < self.n_components:
            raise ValueError(
                f"fitting {self.n_components} components needs at least that many codes; got {codes.shape[0]} "
                "(use fewer --components or a larger store/class)"
            )
        self._gmm = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, random_state=self.seed, reg_covar=1e-5
        ).fit(codes)
        return self

    def sample(self, n: int) -> np.ndarray:
        """(n, Z) float32 codes drawn from the mixture (seeded)."""
        if self._gmm is None:
            raise RuntimeError("call fit() before sample()")
        if n < 1:
            raise ValueError(f"n must be >= 1; got {n}")
        self._gmm.random_state = self.seed
        codes, _ = self._gmm.sample(n)
        rng = np.random.default_rng(self.seed)
        return codes[rng.permutation(n)].astype(np.float32)  # sklearn returns samples grouped by component

    def log_likelihood(self, codes: np.ndarray) -> np.ndarray:
        """(N,) per-code log-likelihood under the mixture."""
        if self._gmm is None:
            raise RuntimeError("call fit() before log_likelihood()")
        return self._gmm.score_samples(np.asarray(codes, dtype=np.float64))


class ArithmeticTerm(NamedTuple):
    """One signed term of a latent expression such as ``A - B + mean:armchair``."""

    sign: float
    name: str


def parse_expression(expression: str) -> list[ArithmeticTerm]:
    """Parse ``A - B + C`` (terms separated by ``+``/``-`` with spaces around them).

    Terms are store ids, mesh files, or ``mean:CLASS``; names may contain ``-`` when it is not
    surrounded by spaces (``chair_0001-b`` is one term).
    """
    parts = re.split(r"\s+([+-])\s+", " " + expression.strip() + " ")
    first = parts[0].strip()
    if not first:
        raise ValueError(f"empty latent expression {expression!r}; write e.g. 'A - B + C'")
    sign = 1.0
    if first.startswith("-"):
        sign, first = -1.0, first[1:].strip()
    terms = [ArithmeticTerm(sign, first)]
    for op, name in zip(parts[1::2], parts[2::2], strict=True):
        name = name.strip()
        if not name:
            raise ValueError(f"latent expression {expression!r} ends with an operator")
        terms.append(ArithmeticTerm(1.0 if op == "+" else -1.0, name))
    return terms


def evaluate_expression(terms: Sequence[ArithmeticTerm], lookup: Callable[[str], np.ndarray]) -> np.ndarray:
    """Sum of signed codes, each resolved by ``lookup(name) -> (Z,)``.

    Returns:
        (Z,) float32.
    """
    total = None
    for term in terms:
        code = np.asarray(lookup(term.name), dtype=np.float64)
        total = term.sign * code if total is None else total + term.sign * code
    if total is None:
        raise ValueError("empty latent expression")
    return total.astype(np.float32)
