"""Sweet Home 3D furniture libraries (``.sh3f``) as datasets.

Parsing the catalogue (:mod:`.catalog`, with the licence rules of :mod:`.licenses`), importing the models
(:mod:`.models`: safe extraction, geometry only), mapping items to classes (:mod:`.classes`) and building
the dataset (:mod:`.source`, which declares the ``sweethome3d`` source).

Orientation: Sweet Home 3D models are Y up with their front towards +Z once ``modelRotation`` (row-major
3x3, applied as v' = M v) is applied, which is the project's convention. Sizes are centimetres.
"""

from shapelatent.data.sources.sweethome3d.catalog import (
    CATALOG_MEMBER,
    Catalog,
    CatalogItem,
    find_archives,
    read_catalog,
)
from shapelatent.data.sources.sweethome3d.classes import CLASSES, classify
from shapelatent.data.sources.sweethome3d.licenses import license_from_text
from shapelatent.data.sources.sweethome3d.models import extract_models
from shapelatent.data.sources.sweethome3d.source import SOURCE, attribution_markdown, build_sweethome3d, select_items

__all__ = [
    "CATALOG_MEMBER",
    "CLASSES",
    "SOURCE",
    "Catalog",
    "CatalogItem",
    "attribution_markdown",
    "build_sweethome3d",
    "classify",
    "extract_models",
    "find_archives",
    "license_from_text",
    "read_catalog",
    "select_items",
]
