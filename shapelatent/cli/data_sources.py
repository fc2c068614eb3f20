"""``shapelatent data build <source>``: one subcommand per entry of the source table.

Each command is made from its source's :class:`~shapelatent.data.sources.registry.DataSource`: the
source's own options, then the options every build shares, declared here once: ``--out``, ``--seed`` and
the rows of :data:`SHARED` (``--points``, ``--oversample``, ``--center``, ``--scale``, ``--workers``,
``--split``, ``--force``, ``--json``). A command is made when it is first asked for, so the CLI starts without importing
the sources.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID
from typer.core import TyperGroup

from shapelatent.cli.common import (
    CenterOpt,
    ForceOpt,
    JsonOpt,
    OversampleOpt,
    PointsOpt,
    ScaleOpt,
    WorkersOpt,
    bar,
    console,
    friendly,
    report_build,
    sampling_config,
)
from shapelatent.data.sources.registry import SOURCES, DataSource, SourceOption, get_source

__all__ = ["SHARED", "build_app", "source_command"]

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--split",
        help="How shapes without an official split are split 0.8/0.1/0.1: random (one seeded permutation) | "
        "stratified (per class, so every class is in train, val and test when it has 3 shapes or more).",
    ),
]
OccupancyOpt = Annotated[
    int,
    typer.Option(
        help="Also store N occupancy samples per shape for the implicit head (8192 is the usual; 0: none). "
        "`shapelatent data occupancy DATASET` adds them later."
    ),
]

#: The options every ``data build <source>`` shares after ``--seed``, in ``--help`` order:
#: ``(parameter name, typer annotation, default)``. The rows in ``_MADE_HERE`` are used by the command itself
#: (the sampling config, the report's form, the occupancy step after the build); every other row reaches the
#: source's build function as the keyword of its name, i.e. a field of :class:`~shapelatent.data.build.BuildOptions`.
#: A new common option is one row here, plus its effect: that field, or a step here named in ``_MADE_HERE``.
SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("points", PointsOpt, 2048),
    ("oversample", OversampleOpt, None),
    ("center", CenterOpt, "bbox"),
    ("scale", ScaleOpt, "unit_sphere"),
    ("workers", WorkersOpt, None),
    ("split_method", SplitOpt, "random"),
    ("force", ForceOpt, False),
    ("occupancy", OccupancyOpt, 0),
    ("as_json", JsonOpt, False),
)
_MADE_HERE = frozenset({"points", "oversample", "center", "scale", "as_json", "occupancy"})


def _shared(source: DataSource) -> tuple[inspect.Parameter, list[inspect.Parameter]]:
    """The options every build shares: ``--out`` (shown before the source's options), and the rest."""
    seed = Annotated[int, typer.Option(help=source.seed_help)]
    rest = [("seed", seed, 0), *(r for r in SHARED if source.oversample or r[0] != "oversample")]
    kw = inspect.Parameter.KEYWORD_ONLY
    out = inspect.Parameter("out", kw, annotation=OutOpt)
    return out, [inspect.Parameter(name, kw, default=default, annotation=ann) for name, ann, default in rest]


def _parameter(opt: SourceOption) -> inspect.Parameter:
    info = typer.Argument(help=opt.help) if opt.argument else typer.Option(*opt.flags, help=opt.help)
    return inspect.Parameter(
        opt.name, inspect.Parameter.KEYWORD_ONLY, default=opt.default, annotation=Annotated[opt.type, info]
    )


def source_command(source: DataSource) -> Callable[..., None]:
    """The typer command function of ``data build <source.name>``: its signature declares the options."""
    out, shared = _shared(source)
    clash = sorted({o.name for o in source.options} & {p.name for p in (out, *shared)})
    if clash:
        raise ValueError(f"source {source.name!r} redeclares the shared build options {clash}")
    arguments = [_parameter(o) for o in source.options if o.argument]
    options = [_parameter(o) for o in source.options if not o.argument]
    params = [*arguments, out, *options, *shared]

    def command(**values: Any) -> None:
        own = dict(opt.value(values[opt.name]) for opt in source.options)
        seed = values["seed"]
        sampling = sampling_config(values["points"], values.get("oversample"), values["center"], values["scale"], seed)
        passed = {name: values[name] for name, _, _ in SHARED if name in values and name not in _MADE_HERE}
        with ExitStack() as stack:
            shown: list[Progress] = []  # the bar, once the build has listed its input and said how many

            def start(total: int | None) -> None:
                shown.append(stack.enter_context(bar(source.unit, total)))

            def advance(n: int) -> None:
                if not shown:
                    start(None)
                shown[0].update(TaskID(0), advance=n)

            result = source.build(
                out=values["out"],
                **own,
                seed=seed,
                sampling=sampling,
                **passed,
                on_start=start,
                progress=advance,
            )
            if values["occupancy"]:
                _add_occupancy(stack, result.path, values, own)
        report_build(result, values["as_json"])

    command.__name__ = f"build_{source.name}_cmd"
    command.__doc__ = source.help
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return friendly(command)


def _add_occupancy(stack: ExitStack, path: Path, values: dict[str, Any], own: dict[str, Any]) -> None:
    """``--occupancy N``: occupancy samples for the dataset just built (archives: the source's path inputs)."""
    from shapelatent.data.occupancy import add_occupancy

    paths: list[Path] = []
    for v in own.values():
        for x in v if isinstance(v, list | tuple) else [v]:
            if isinstance(x, Path | str) and Path(x).exists():
                paths.append(Path(x))
    pb = stack.enter_context(bar("occupancy", None))
    report = add_occupancy(
        path,
        queries=values["occupancy"],
        seed=values["seed"],
        workers=values["workers"],
        progress=lambda n: pb.update(TaskID(0), advance=n),
        archives=tuple(paths),
    )
    if report.failed:
        console.print(f"occupancy: {len(report.failed)} shapes without labels (valid=False in occupancy_valid.npy)")


class _SourceCommands(MutableMapping[str, Any]):
    """The commands of ``data build``: the source table's names, each made into a command when first looked up."""

    def __init__(self, made: MutableMapping[str, Any]) -> None:
        self._made = made

    def __getitem__(self, name: str) -> Any:
        if name not in self._made and name in SOURCES:
            app = typer.Typer(add_completion=False)
            app.command(name)(source_command(get_source(name)))
            self._made[name] = typer.main.get_command(app)
        return self._made[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        del self._made[name]

    def __iter__(self) -> Iterator[str]:
        yield from SOURCES
        yield from (n for n in self._made if n not in SOURCES)

    def __len__(self) -> int:
        return len(set(SOURCES) | set(self._made))

    def __contains__(self, name: object) -> bool:
        return name in SOURCES or name in self._made


class SourceGroup(TyperGroup):
    """``data build``: lists every source of the table and makes a source's command only when it is used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _SourceCommands(self.commands)


build_app = typer.Typer(no_args_is_help=True, help="Build a dataset from a source.", cls=SourceGroup)
