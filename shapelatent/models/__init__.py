from shapelatent.models.implicit import ImplicitConfig, OccupancyDecoder, implicit_fn
from shapelatent.models.pointnet import (
    AEOutput,
    MLPDecoder,
    ModelConfig,
    PointCloudAutoencoder,
    PointNetEncoder,
)

__all__ = [
    "AEOutput",
    "ImplicitConfig",
    "MLPDecoder",
    "ModelConfig",
    "OccupancyDecoder",
    "PointCloudAutoencoder",
    "PointNetEncoder",
    "implicit_fn",
]
