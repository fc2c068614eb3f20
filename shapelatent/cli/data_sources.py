"""Registers the build commands of the real-data sources on ``shapelatent data build``."""

from shapelatent.cli import data_datasets, data_sh3d  # noqa: F401  (each module adds its commands)
