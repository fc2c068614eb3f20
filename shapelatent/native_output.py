"""Route what native libraries print straight to file descriptors 1 and 2 through :mod:`logging`.

Open3D's C++ logger writes to fd 1 and PoissonRecon writes diagnostics such as ``[WARNING] ... bad average
roots`` to fd 2, bypassing Python: they would land among a command's results (breaking ``--json``) or read
as alarms on a run that worked. :func:`native_output_to_log` captures both descriptors around such a call
and logs each line instead: lines tagged ``[Open3D ERROR]`` at ERROR, everything else at ``level``
(DEBUG by default: shown with ``shapelatent -v``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["native_output_to_log"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OPEN3D_TAG = re.compile(r"^\[Open3D (DEBUG|INFO|WARNING|ERROR)\]\s*")


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (Open3D prints through them; a pipe makes stdout block-buffered)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc symbols to reach (not Linux/macOS): nothing buffered to flush
        pass


@contextmanager
def native_output_to_log(logger: logging.Logger, level: int = logging.DEBUG) -> Iterator[None]:
    """Capture fds 1 and 2 for the duration of the block and log what was written there, line by line.

    Python's own ``sys.stdout``/``sys.stderr`` are flushed first, so nothing printed before the block is
    captured. Keep the block to the native call: output from other threads meanwhile is captured too.

    Args:
        logger: where the lines go.
        level: the level of every line not tagged ``[Open3D ERROR]``.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    _flush_c_stdio()
    with tempfile.TemporaryFile() as sink:
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
        try:
            for fd, _ in saved:
                os.dup2(sink.fileno(), fd)
            yield
        finally:
            _flush_c_stdio()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            _log_lines(logger, level, sink.read().decode("utf-8", errors="replace"))


def _log_lines(logger: logging.Logger, level: int, text: str) -> None:
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).strip()
        if not line:
            continue
        tag = _OPEN3D_TAG.match(line)
        line_level = logging.ERROR if tag and tag.group(1) == "ERROR" else level
        logger.log(line_level, "%s", line[tag.end() :] if tag else line)
