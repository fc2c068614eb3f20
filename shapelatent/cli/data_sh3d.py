"""``shapelatent data build sweethome3d``."""
