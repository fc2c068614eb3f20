"""A private runtime directory for the EGL/OpenGL stack when the environment has none.

Open3D's renderers start EGL (and, through GLFW, probe Wayland), which expect ``XDG_RUNTIME_DIR`` to name a
directory owned by the user with mode 0700. On servers, in containers and under ``sudo`` it is often unset,
and the stack then prints ``error: XDG_RUNTIME_DIR is invalid or not set in the environment.`` on stderr
although rendering works. :func:`ensure_runtime_dir` gives the process (and its children) a private one
before any of that starts; ``viewers/__init__.py`` calls it on import.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import stat
import tempfile

logger = logging.getLogger(__name__)

__all__ = ["ensure_runtime_dir"]


def _usable(path: str) -> bool:
    """Whether ``path`` is a directory this user owns that nobody else can enter (what the stack checks)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0


def ensure_runtime_dir() -> str:
    """Set ``XDG_RUNTIME_DIR`` to a fresh private directory (mode 0700) unless it names a usable one.

    The directory is removed when the process exits. Call before Open3D or EGL initialise (the variable is
    read once, when they start).

    Returns:
        The runtime directory in effect.
    """
    current = os.environ.get("XDG_RUNTIME_DIR", "")
    if current and _usable(current):
        return current
    path = tempfile.mkdtemp(prefix="shapelatent-runtime-")  # created with mode 0700
    os.chmod(path, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    logger.debug("XDG_RUNTIME_DIR %s: using the private runtime directory %s", current or "(unset)", path)
    return path
