"""The project's error types.

Every error raised at a public boundary names the offending file (when there is one), the
problem, and what to do about it.
"""

from __future__ import annotations


class ShapelatentError(Exception):
    """Base class of all shapelatent errors."""


class UnsupportedFormatError(ShapelatentError, ValueError):
    """A file extension no reader is registered for."""


class MeshReadError(ShapelatentError, ValueError):
    """A file that could not be read as a usable mesh or point cloud."""


class DatasetFormatError(ShapelatentError, ValueError):
    """A dataset folder that is missing, malformed, or of another format version."""


class CheckpointError(ShapelatentError, ValueError):
    """A checkpoint that is not ours, is truncated, or does not match the model."""


class OutputExistsError(ShapelatentError, FileExistsError):
    """An output that already exists and would be overwritten without ``--force``."""


class BackendUnavailableError(ShapelatentError, ImportError):
    """An optional backend asked for by name whose package is not installed."""


class StoreError(ShapelatentError, ValueError):
    """A latent store that is missing, malformed, or was made by a different model."""


class ArchiveError(ShapelatentError, ValueError):
    """An archive (zip, ``.sh3f``) that is not readable, truncated, corrupt, or over the extraction caps."""


class MeshingError(ShapelatentError, ValueError):
    """A point cloud that cannot be turned into a mesh: too few, non-finite or degenerate points, or an empty result."""


class WindingNumberError(ShapelatentError, ValueError):
    """A mesh whose generalized winding numbers are meaningless (no faces, non-finite vertices, zero area),
    so no inside/outside labels can be computed for it."""
