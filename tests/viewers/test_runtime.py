"""A private XDG_RUNTIME_DIR for EGL when the environment has none (or an unusable one)."""

from __future__ import annotations

import os
import stat

from viewers.runtime import ensure_runtime_dir


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_unset_gets_a_private_dir(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = ensure_runtime_dir()
    assert os.environ["XDG_RUNTIME_DIR"] == path and os.path.isdir(path) and _mode(path) == 0o700


def test_a_usable_dir_is_kept(monkeypatch, tmp_path):
    own = tmp_path / "run"
    own.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(own))
    assert ensure_runtime_dir() == str(own) and os.environ["XDG_RUNTIME_DIR"] == str(own)


def test_an_unusable_dir_is_replaced(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)  # others can enter: EGL calls it invalid
    for value in (str(shared), str(tmp_path / "missing")):
        monkeypatch.setenv("XDG_RUNTIME_DIR", value)
        path = ensure_runtime_dir()
        assert path != value and _mode(path) == 0o700 and os.environ["XDG_RUNTIME_DIR"] == path
