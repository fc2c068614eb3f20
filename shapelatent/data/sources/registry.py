"""The table of dataset sources: each source's name, its own options and its build function.

A source is one module of :mod:`shapelatent.data.sources` that declares ``SOURCE = DataSource(...)``
beside its build function, and one line of :data:`SOURCES`. ``shapelatent data build <name>`` is made
from that declaration (:mod:`shapelatent.cli.data_sources`), which adds the options every build shares,
declared there once (its ``SHARED`` table): ``--out``, ``--seed``, ``--points``, ``--oversample``,
``--center``, ``--scale``, ``--workers``, ``--force`` and ``--json``. They reach the build function as
``out``, ``seed``, ``sampling`` (:class:`~shapelatent.data.build.SamplingConfig`), ``force``, ``workers``,
``on_start`` and ``progress`` (the fields of :class:`~shapelatent.data.build.BuildOptions`).

Example, a source that builds every OBJ of a folder as one class::

    def build_objs(root, out, *, label="object", seed=0, **options) -> BuildResult:
        items = [BuildItem(id=f.name, path=str(f), cls=label) for f in sorted(Path(root).glob("*.obj"))]
        return build_items(items, out, source={"kind": "objs", "root": str(root)}, split_seed=seed, **options)

    SOURCE = DataSource(
        name="objs",
        help="Build a dataset from the OBJ files of a folder.",
        build=build_objs,
        options=(
            SourceOption("root", Path, "Folder of OBJ files.", argument=True),
            SourceOption("label", str, "Class of every shape.", default="object"),
        ),
    )

This module imports nothing heavy: the CLI reads :data:`SOURCES` when it starts and imports a source's
module only when its command runs or ``data build --help`` lists it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["REQUIRED", "SOURCES", "DataSource", "SourceOption", "get_source", "split_list"]

#: The default of an option or argument that must be given.
REQUIRED: Final[Any] = inspect.Parameter.empty

#: Source name (the ``data build`` subcommand) -> the module that declares it as ``SOURCE``, in help order.
SOURCES: dict[str, str] = {
    "procedural": "shapelatent.data.sources.procedural",
    "folder": "shapelatent.data.sources.folder",
    "shapenet": "shapelatent.data.sources.shapenet",
    "modelnet": "shapelatent.data.sources.modelnet",
    "pointset": "shapelatent.data.sources.pointsets",
    "sweethome3d": "shapelatent.data.sources.sweethome3d",
}


@dataclass(frozen=True)
class SourceOption:
    """One option of a source, as the command line takes it and as its build function receives it.

    Attributes:
        name: the parameter name; the command line spells it ``--name-with-dashes`` unless ``flags`` says
            otherwise (a positional argument shows it as its metavar).
        type: the command-line type: ``int``, ``float``, ``str``, ``bool``, ``Path``, ``X | None`` for an
            optional value, ``list[Path]`` for an argument that takes several values.
        help: the line ``--help`` shows.
        default: the default value, or :data:`REQUIRED`.
        argument: a positional argument rather than an option.
        flags: the option's spellings when not ``--name`` (``("--include-other",)`` gives a flag without a
            ``--no-include-other`` form).
        keyword: the build function's keyword for the value (default: ``name``).
        convert: turns the command-line value into the build function's (e.g. :func:`split_list`); not
            called on None. None: the value is passed as it is.
    """

    name: str
    type: Any
    help: str
    default: Any = REQUIRED
    argument: bool = False
    flags: tuple[str, ...] = ()
    keyword: str | None = None
    convert: Callable[[Any], Any] | None = None

    def value(self, given: Any) -> tuple[str, Any]:
        """``(keyword, value)`` for the build function, from the command-line value ``given``."""
        converted = self.convert(given) if self.convert is not None and given is not None else given
        return self.keyword or self.name, converted


@dataclass(frozen=True)
class DataSource:
    """A dataset source: what ``shapelatent data build <name>`` shows and runs.

    Attributes:
        name: the subcommand of ``shapelatent data build``.
        help: its help: one summary line, then optionally more paragraphs.
        build: ``build(out=..., **own, seed=..., sampling=..., force=..., workers=..., on_start=...,
            progress=...)`` -> :class:`~shapelatent.data.build.BuildResult`, ``own`` being the options' values
            by keyword (:meth:`SourceOption.value`); the other keywords are those of
            :class:`~shapelatent.data.build.BuildOptions` (``on_start(total)`` opens the progress bar).
        options: the source's own options, in ``--help`` order (positional arguments first).
        unit: what the progress bar counts.
        seed_help: what ``--seed`` seeds, for ``--help``.
        oversample: whether ``--oversample`` applies (not to point sets, which are sub-sampled).
    """

    name: str
    help: str
    build: Callable[..., Any]
    options: tuple[SourceOption, ...] = ()
    unit: str = "models"
    seed_help: str = "Seed for sampling and split."
    oversample: bool = True


def get_source(name: str) -> DataSource:
    """The source called ``name`` (its module is imported now).

    Raises:
        ValueError: ``name`` is not in :data:`SOURCES` (the message lists them).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; choose from {', '.join(SOURCES)}")
    source: DataSource = importlib.import_module(SOURCES[name]).SOURCE
    if source.name != name:
        raise ValueError(f"{SOURCES[name]} declares the source {source.name!r}, but SOURCES lists it as {name!r}")
    return source


def split_list(value: str) -> list[str] | None:
    """A comma-separated command-line value as a list, blanks dropped: ``"a, b,"`` -> ``["a", "b"]``, ``""`` -> None."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
