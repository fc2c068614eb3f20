"""Shared viewer-test helpers: a private Xvfb server, and the latent tests' tiny trained model and its dataset."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.latent.conftest import tiny_data, tiny_run  # noqa: F401 (re-exported fixtures)


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number in 90..199")


@contextlib.contextmanager
def xvfb_display(tools: tuple[str, ...], install: str) -> Iterator[str]:
    """A fresh Xvfb (1280x800x24) on a free display number, yielding ``":N"``; skips when one of ``tools`` is
    missing (``install``: the apt packages to name)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install {install})")
    n = _free_display()
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{n} did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        yield f":{n}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
