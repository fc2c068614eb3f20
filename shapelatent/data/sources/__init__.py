"""Dataset sources: each turns its input layout into :class:`~shapelatent.data.build.BuildItem` s.

One module per source, each declaring ``SOURCE``; :mod:`shapelatent.data.sources.registry` lists them.
"""

from shapelatent.data.sources.registry import REQUIRED, SOURCES, DataSource, SourceOption, get_source, split_list

__all__ = ["REQUIRED", "SOURCES", "DataSource", "SourceOption", "get_source", "split_list"]
