"""Occupancy supervision stored beside a dataset: query points and packed inside/outside labels.

Files in the dataset folder (row i belongs to dataset shape i, format ``shapelatent-occupancy`` version 1)::

    occupancy.json            {"format": "shapelatent-occupancy", "version": 1, "queries": Q, "uniform": U,
                               "near_surface": S, "sigma": [...], "box": 1.1, "label_method": ..., "shell_eps": ...,
                               "seed": ..., "built": N}
    occupancy_points.npy      (N, Q, 3) float16, in the same normalised frame as ``points.npy`` row i,
                              inside [-box, box]^3 (box = 1.1)
    occupancy_labels.npy      (N, Q // 8) uint8, ``np.packbits(labels, axis=1, bitorder="little")``; Q % 8 == 0
    occupancy_valid.npy       (N,) bool; False: the labels could not be computed, the row carries no supervision

The default Q = 8192 queries per shape are Q/2 = 4096 uniform in the box (Occupancy Networks, Mescheder et al.
2019) then Q/2 = 4096 near the surface (ConvONet / IF-Net): area-weighted surface samples plus isotropic
Gaussian noise, 2048 with sigma 0.01 and 2048 with sigma 0.05 (normalised units). Modules:
:mod:`~shapelatent.data.occupancy_format` (reading, writing), :mod:`~shapelatent.data.occupancy_labels` (queries and
labels for one mesh; :func:`shape_occupancy` is what a builder calls per shape) and
:mod:`~shapelatent.data.occupancy_build` (:func:`add_occupancy`, upgrading an existing dataset in place); this
module re-exports their public API.

Writing is atomic per dataset: arrays go to hidden ``.occupancy_*.partial`` names and are renamed only when
every row is written; ``occupancy.json`` is written last, so :func:`has_occupancy` never sees a half-written set.
"""

from shapelatent.data.occupancy_build import OccupancyReport, add_occupancy, recover_transform
from shapelatent.data.occupancy_format import (
    BOX,
    OCCUPANCY_FORMAT,
    OCCUPANCY_VERSION,
    OccupancyArrays,
    OccupancyWriter,
    has_occupancy,
    pack_labels,
    read_occupancy,
    unpack_labels,
    write_occupancy,
)
from shapelatent.data.occupancy_labels import (
    LABEL_METHODS,
    SHELL_EPS,
    SIGMAS,
    ShapeOccupancy,
    label_points,
    sample_queries,
    shape_occupancy,
)

__all__ = [
    "BOX",
    "LABEL_METHODS",
    "OCCUPANCY_FORMAT",
    "OCCUPANCY_VERSION",
    "SHELL_EPS",
    "SIGMAS",
    "OccupancyArrays",
    "OccupancyReport",
    "OccupancyWriter",
    "ShapeOccupancy",
    "add_occupancy",
    "has_occupancy",
    "label_points",
    "pack_labels",
    "read_occupancy",
    "recover_transform",
    "sample_queries",
    "shape_occupancy",
    "unpack_labels",
    "write_occupancy",
]
