from shapelatent.models.pointnet import (
    AEOutput,
    MLPDecoder,
    ModelConfig,
    PointCloudAutoencoder,
    PointNetEncoder,
)

__all__ = ["AEOutput", "MLPDecoder", "ModelConfig", "PointCloudAutoencoder", "PointNetEncoder"]
