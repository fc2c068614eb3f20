"""Viewers: the Open3D interactive viewer and the headless renderer.

They take files and arrays, never training state; the core library (``shapelatent``) never imports them.
"""

from viewers.runtime import ensure_runtime_dir

ensure_runtime_dir()  # before Open3D starts EGL, which complains when XDG_RUNTIME_DIR is unset (see runtime.py)
