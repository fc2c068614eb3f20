"""shapelatent: learn a latent space of 3D shapes."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
