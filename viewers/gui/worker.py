"""A background thread that runs only the newest request: meshing follows the slider without piling up work.

The GUI thread calls :meth:`LatestWorker.submit` on every slider move; a request that has not started yet is
replaced by the newer one, the one running finishes, and each finished result is handed to ``deliver`` (the GUI
posts it back to its own thread with ``gui.Application.instance.post_to_main_thread``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LatestWorker"]

logger = logging.getLogger(__name__)


class LatestWorker:
    """One daemon thread; ``submit(key, fn)`` runs ``fn()`` later and calls ``deliver(key, result, error)``.

    Args:
        deliver: called on the worker thread with the request's key and ``fn``'s result (error None), or None
            and the exception it raised.
    """

    def __init__(self, deliver: Callable[[Any, Any, BaseException | None], None]) -> None:
        self._deliver = deliver
        self._cond = threading.Condition()
        self._pending: tuple[Any, Callable[[], Any]] | None = None
        self._stopped = False
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="shapelatent-mesher", daemon=True)
        self._thread.start()

    def submit(self, key: Any, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` under ``key``, replacing a request that has not started."""
        with self._cond:
            self._pending = (key, fn)
            self._cond.notify()

    def idle(self) -> bool:
        """True when nothing is running or waiting."""
        with self._cond:
            return self._pending is None and not self.busy

    def stop(self) -> None:
        """Stop after the running request (pending ones are dropped)."""
        with self._cond:
            self._stopped, self._pending = True, None
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                assert self._pending is not None
                key, fn = self._pending
                self._pending, self.busy = None, True
            try:
                result, error = fn(), None
            except Exception as exc:  # handed to the GUI, which shows it in the status line
                result, error = None, exc
            try:
                self._deliver(key, result, error)
            except Exception:  # the window may be gone
                logger.debug("result of %r not delivered", key, exc_info=True)
            finally:
                with self._cond:
                    self.busy = False


def _serve(conn: Any, model_path: str, threads: int = 1) -> None:
    """The mesher process: (mesher, code, points, normals, resolution) in, ``(True, MeshResult fields)`` or
    ``(False, message)`` out, until None arrives. PyTorch runs ``threads`` intra-op threads there."""
    import warnings

    import torch

    torch.set_num_threads(threads)

    # as the CLI does: numba's note that Open3D's older TBB turns its TBB layer off is not a problem of the user's
    warnings.filterwarnings("ignore", message="The TBB threading layer requires TBB version", category=Warning)
    from shapelatent.latent.implicit_mesh import mesh_from_code
    from shapelatent.meshing.reconstruct import MeshingConfig, reconstruct_mesh
    from shapelatent.models.load import load_model

    model = None
    while True:
        try:
            req = conn.recv()
        except EOFError:
            return
        if req is None:
            return
        mesher, code, points, normals, resolution = req
        try:
            if mesher == "implicit":
                if model is None:
                    model = load_model(model_path).model.eval()
                res = mesh_from_code(model, code, resolution=resolution)
            else:
                res = reconstruct_mesh(points, normals, MeshingConfig(method=mesher))
            conn.send((True, res._asdict()))
        except Exception as exc:  # reported to the window's status line
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class MeshProcess:
    """Meshing in a separate process, so that the GUI process only draws.

    On software Vulkan (llvmpipe), Open3D's renderer stops presenting new frames of a scene widget while a thread of
    the same process runs the mesher (measured: the first mesh never appears); a child process has no such effect
    and keeps the GUI thread free of the mesher's CPU load. The child loads the model once, on its first implicit
    request.

    The child runs PyTorch on ``threads`` (default 1) threads. Every PyTorch operator ends at a barrier of its
    threads, and the software renderer's own threads take the other cores: with 2 threads on 2 cores beside
    llvmpipe, a thread descheduled by the renderer stalls each of the ~30 operators of a head evaluation.
    Measured on 2 cores with another job running: 65,536 head queries in 8,192-query chunks (as MISE evaluates them)
    took 2.1 s on 2 threads and 0.2 s on 1.

    Args:
        model_path: the model the child loads (a run folder, checkpoint or shipped name).
        threads: PyTorch intra-op threads of the child.
    """

    def __init__(self, model_path: str, threads: int = 1) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, str(model_path), int(threads)), daemon=True, name="shapelatent-mesh"
        )
        self._proc.start()
        child.close()
        self._lock = threading.Lock()

    def mesh(self, mesher: str, code: Any, points: Any, normals: Any, resolution: int) -> Any:
        """A ``MeshResult`` (blocks until the child answers).

        Raises:
            MeshingError: the child's mesher failed (its message), or the child is gone.
        """
        from shapelatent.errors import MeshingError
        from shapelatent.meshing.reconstruct import MeshResult

        with self._lock:
            try:
                self._conn.send((mesher, code, points, normals, int(resolution)))
                ok, payload = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise MeshingError(f"the mesher process stopped ({exc})") from exc
        if not ok:
            raise MeshingError(str(payload))
        return MeshResult(**payload)

    def close(self) -> None:
        """Ask the child to stop and wait briefly."""
        try:
            self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(timeout=2)
        if self._proc.is_alive():
            self._proc.terminate()
