"""Dataset sources: each turns its input layout into :class:`~shapelatent.data.build.BuildItem` s."""
