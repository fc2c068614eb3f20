"""``shapelatent data build shapenet|modelnet|pointset``."""
