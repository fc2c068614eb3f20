"""The CLI's two streams: results on stdout, progress bars, logs and errors on stderr.

``results`` prints what a command produced (tables, summaries, written paths) on stdout, so it pipes and
redirects; ``console`` and :func:`bar` draw on stderr. Library code reports through callbacks, never prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)  # progress bars, logs, errors, hints
# results on stdout; soft_wrap keeps a long path on one line when piped (rich adds no colour when not a TTY)
results = Console(highlight=False, soft_wrap=True)

__all__ = ["bar", "console", "results"]


class OneTaskProgress(Progress):
    """A rich ``Progress`` that holds one task, addressed as ``0`` (rich types task ids as ``TaskID``)."""

    def update(self, task_id: int = 0, **changes: Any) -> None:
        """``Progress.update`` of the task (``advance=``, ``completed=``, ``total=``, ``description=``, fields)."""
        super().update(TaskID(task_id), **changes)


@contextmanager
def bar(description: str, total: int | None) -> Iterator[OneTaskProgress]:
    """A progress bar with one task (id 0); yields the Progress (``p.update(0, advance=1)``)."""
    progress = OneTaskProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        progress.add_task(description, total=total, info="")
        yield progress
