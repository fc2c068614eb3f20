"""glibc allocator settings for training (shapelatent.train.malloc)."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shapelatent.train.malloc import tune_malloc


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _libc():
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018
        libc.mallinfo2  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    return libc


def _mapped_bytes_of_a_block(libc, size: int) -> int:
    """Bytes glibc serves by mmap while a block of ``size`` bytes is held."""
    before = libc.mallinfo2().hblkhd
    ptr = libc.malloc(size)
    assert ptr
    try:
        return int(libc.mallinfo2().hblkhd) - int(before)
    finally:
        libc.free(ptr)


_PROBE = """
import ctypes, json, sys
sys.path.insert(0, {tests!r})
from train.test_malloc import _libc, _mapped_bytes_of_a_block
from shapelatent.train.malloc import tune_malloc
libc = _libc()
before = _mapped_bytes_of_a_block(libc, 24 * 2**20)
applied = tune_malloc()
print(json.dumps([before, applied, _mapped_bytes_of_a_block(libc, 24 * 2**20)]))
"""


def test_activation_sized_blocks_come_from_the_heap_after_tuning():
    _libc()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SHAPELATENT_MALLOC_TUNE"}
    tests = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(tests=tests)], env=env, capture_output=True, text=True, check=True
    )
    before, applied, after = json.loads(out.stdout.splitlines()[-1])
    assert applied == {
        "MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
        "MALLOC_TRIM_THRESHOLD_": 2**31 - 1,
        "MALLOC_TOP_PAD_": 512 * 2**20,
    }
    assert before >= 24 * 2**20  # a fresh process maps a 24 MiB block (and unmaps it on free) ...
    assert after == 0  # ... and after tuning serves it from the heap, where the next step reuses it


def test_opt_out_and_user_settings_are_respected(monkeypatch):
    _libc()
    monkeypatch.setenv("SHAPELATENT_MALLOC_TUNE", "0")
    assert tune_malloc() == {}
    monkeypatch.delenv("SHAPELATENT_MALLOC_TUNE")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    applied = tune_malloc()
    assert set(applied) == {"MALLOC_TOP_PAD_"}
