"""What made an output: config, seed, package version, git commit, command line."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from shapelatent import __version__

__all__ = ["git_commit", "provenance"]


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None outside a git checkout.

    A ``-dirty`` suffix marks uncommitted changes.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(config: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
    """A JSON-serialisable record to store next to every output."""
    import numpy
    import torch

    return {
        "shapelatent_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "config": config,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
