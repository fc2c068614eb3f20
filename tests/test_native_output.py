"""Native prints to fds 1 and 2 are captured and logged, not written among a command's results."""

from __future__ import annotations

import logging
import os

import pytest

from shapelatent.native_output import native_output_to_log


def test_native_output_is_logged_not_printed(caplog, capfd):
    log = logging.getLogger("test.native")
    with caplog.at_level(logging.DEBUG, logger="test.native"), native_output_to_log(log):
        os.write(2, b"[WARNING] PoissonRecon diagnostic\n\n")
        os.write(1, b"\x1b[1;33m[Open3D ERROR] boom\x1b[0;m\n[Open3D INFO] fine\n")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "[WARNING] PoissonRecon diagnostic"),
        (logging.ERROR, "boom"),
        (logging.DEBUG, "fine"),
    ]


def test_native_output_restores_fds_after_an_exception(caplog, capfd):
    log = logging.getLogger("test.native")
    with caplog.at_level(logging.DEBUG, logger="test.native"), pytest.raises(RuntimeError):
        with native_output_to_log(log):
            os.write(2, b"said before failing\n")
            raise RuntimeError("native call failed")
    os.write(1, b"visible\n")
    assert capfd.readouterr().out == "visible\n"
    assert [r.getMessage() for r in caplog.records] == ["said before failing"]


def test_native_stdout_goes_to_stderr_and_chatter_to_the_log(caplog, capfd):
    import re

    from shapelatent.native_output import FILAMENT_CHATTER, native_stdout_to_stderr

    log = logging.getLogger("test.native")
    with caplog.at_level(logging.DEBUG, logger="test.native"), native_stdout_to_stderr(log, FILAMENT_CHATTER):
        os.write(1, b"WARNING: Using soft CircularBuffer (6144 KiB)\nFEngine resolved backend: OpenGL\n")
        os.write(1, b"something else\n")
    os.write(1, b"result\n")
    out, err = capfd.readouterr()
    assert out == "result\n" and err == "something else\n"
    assert [r.getMessage() for r in caplog.records] == [
        "WARNING: Using soft CircularBuffer (6144 KiB)",
        "FEngine resolved backend: OpenGL",
    ]
    with native_stdout_to_stderr(log, re.compile("^never")):
        os.write(1, b"kept\n")
    assert capfd.readouterr() == ("", "kept\n")
