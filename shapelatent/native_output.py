"""Route what native libraries print straight to file descriptors 1 and 2 through :mod:`logging`.

Open3D's C++ logger writes to fd 1 and PoissonRecon writes diagnostics such as ``[WARNING] ... bad average
roots`` to fd 2, bypassing Python: they would land among a command's results (breaking ``--json``) or read
as alarms on a run that worked. :func:`native_output_to_log` captures both descriptors around such a call
and logs each line instead: lines tagged ``[Open3D ERROR]`` at ERROR, everything else at ``level``
(DEBUG by default: shown with ``shapelatent -v``).

A GUI event loop runs for as long as its window is open, so :func:`native_stdout_to_stderr` streams instead:
fd 1 goes through a pipe to stderr line by line (stdout keeps results only), and lines matching ``quiet``
(Filament's start-up lines, :data:`FILAMENT_CHATTER`) go to the log at DEBUG.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FILAMENT_CHATTER", "native_output_to_log", "native_stdout_to_stderr"]

#: Start-up lines Filament prints on stdout: the backend it chose, its command buffer, the Vulkan swapchain.
FILAMENT_CHATTER = re.compile(
    r"^(FEngine |WARNING: Using soft CircularBuffer|vkCreateSwapchain|Vulkan device driver|Selected physical device"
    r"|Filament library loaded)"
)

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


@contextmanager
def native_stdout_to_stderr(logger: logging.Logger, quiet: re.Pattern[str] | None = None) -> Iterator[None]:
    """Send what is written on fd 1 during the block to stderr as it comes, so stdout holds results only.

    Lines matching ``quiet`` go to ``logger`` at DEBUG instead (shown with ``shapelatent -v``); every other line
    reaches stderr as it was written. A child process started in the block inherits the pipe; the block does not
    wait for it to close it.
    """
    sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as native:
            for raw in native:
                line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\n")
                if quiet is not None and quiet.match(line):
                    logger.debug("%s", line)
                else:
                    os.write(2, raw)

    reader = threading.Thread(target=pump, name="native-stdout", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)  # the pipe's last write end in this process closes: the reader drains it and ends
        os.close(saved)
        reader.join(timeout=2.0)
