"""Data-parallel training across processes: ``torchrun`` detection, process groups, model wrapping, collectives.

``shapelatent train`` (and :func:`shapelatent.train.loop.train`) runs unchanged under
``torchrun --nproc_per_node=N`` (single or multi node): when ``WORLD_SIZE > 1`` is in the environment the
process joins the group (``nccl`` on CUDA, ``gloo`` on CPU), takes GPU ``LOCAL_RANK`` when on CUDA, and wraps
the model in ``DistributedDataParallel``.

Semantics, chosen so that N processes train the same model as one:

* ``train.batch_size`` is the global batch; each rank takes ``batch_size / N`` shapes of every global batch
  (:func:`shapelatent.train.data.split_batch`), and must divide evenly. The last, shorter batch of an epoch is
  split as evenly as possible and each rank's loss is weighted by its share, so the gradient is still the
  mean over the global batch; when it has fewer shapes than processes it is skipped.
* Batch norm statistics are computed over the global batch (``train.sync_bn``, the default): on CUDA with
  ``torch.nn.SyncBatchNorm``; on CPU, where torch 2.13's ``SyncBatchNorm`` refuses CPU tensors ("expected input
  tensor to be on GPU"), with :class:`AllReduceBatchNorm` (two all-reduces per layer). With ``sync_bn=False``
  each replica normalises by its own ``B/N`` shapes (cheaper; the loss then differs slightly from one process,
  and the saved running statistics are rank 0's).
* Rank 0 alone writes the run folder and logs progress; validation and test Chamfer are computed on
  shards by all ranks and gathered. The logged train loss is the global mean (all-reduced).
* Checkpoints hold the bare model (never the DDP wrapper), so a run trained by N processes resumes with M and
  loads with :func:`shapelatent.models.load.load_model`. The run folder and the dataset must be visible to
  every node (a shared filesystem).

Debugging: with ``SHAPELATENT_REPLICA_DUMP_DIR=<dir>`` set, every rank writes its final weights to
``<dir>/rank<R>.safetensors`` (the replicas must be identical, buffers too with ``sync_bn``; after every epoch a
checksum comparison across ranks raises if they are not).
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "REPLICA_DUMP_ENV",
    "AllReduceBatchNorm",
    "DistContext",
    "check_batch_size",
    "env_ranks",
    "init_distributed",
    "is_main_process",
    "wrap_model",
]

logger = logging.getLogger(__name__)

REPLICA_DUMP_ENV = "SHAPELATENT_REPLICA_DUMP_DIR"


def env_ranks() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` from the environment set by ``torchrun``; ``(0, 1, 0)`` without it.

    Raises:
        ValueError: a variable that is not an integer, or a rank outside ``[0, WORLD_SIZE)``.
    """
    values = []
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        raw = os.environ.get(name, default)
        try:
            values.append(int(raw))
        except ValueError:
            raise ValueError(f"environment variable {name}={raw!r} is not an integer; launch with torchrun.") from None
    rank, world, local = values
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(
            f"inconsistent torchrun environment RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}; "
            "need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0."
        )
    return rank, world, local


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a ``torchrun`` group (reads ``RANK``; no group needed)."""
    return os.environ.get("RANK", "0").strip() in ("0", "")


def check_batch_size(batch_size: int, world_size: int) -> int:
    """Per-rank batch size ``batch_size / world_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size``.
    """
    if batch_size % world_size:
        fix = (batch_size // world_size + 1) * world_size
        raise ValueError(
            f"train.batch_size={batch_size} (the global batch) is not divisible by the {world_size} processes "
            f"(WORLD_SIZE); use a multiple of {world_size}, e.g. --batch-size {fix}."
        )
    return batch_size // world_size


@dataclass
class DistContext:
    """This process's place in the run.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        local_rank: rank on this node (the GPU index on CUDA).
        device: the device this process trains on.
        owns_group: this context initialised the process group (and destroys it in :meth:`close`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Element-wise float64 sums of ``values`` over all ranks."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.cpu().tolist()

    def gather_concat(self, values: np.ndarray) -> np.ndarray:
        """Concatenate every rank's 1-D float64 array in rank order (all ranks get the result).

        Args:
            values: (M_r,) this rank's values; lengths may differ between ranks.

        Returns:
            (sum of M_r,) float64.
        """
        if not self.distributed:
            return np.asarray(values, dtype=np.float64)
        n = torch.tensor([len(values)], dtype=torch.int64, device=self.device)
        counts = [torch.zeros_like(n) for _ in range(self.world_size)]
        dist.all_gather(counts, n)
        lengths = [int(c.item()) for c in counts]
        padded = torch.zeros(max(lengths), dtype=torch.float64, device=self.device)
        padded[: len(values)] = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.device)
        parts = [torch.zeros_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return np.concatenate([p[:m].cpu().numpy() for p, m in zip(parts, lengths, strict=True)])

    def check_replicas(self, model: nn.Module, when: str, buffers: bool = True) -> None:
        """Raise when the replicas' parameters (and buffers) are not bitwise identical across ranks.

        Args:
            buffers: also compare buffers (not with per-replica batch norm statistics, which differ by design).

        Raises:
            RuntimeError: a rank's weights differ from rank 0's (a bug: report it).
        """
        if not self.distributed:
            return
        tensors = model.state_dict().values() if buffers else model.parameters()
        sums = torch.stack([t.detach().double().sum() for t in tensors]).to(self.device)
        everyone = [torch.zeros_like(sums) for _ in range(self.world_size)]
        dist.all_gather(everyone, sums)
        bad = [r for r, s in enumerate(everyone) if not torch.equal(s, everyone[0])]
        if bad:
            raise RuntimeError(
                f"data-parallel replicas diverged {when}: ranks {bad} hold other weights than rank 0. "
                "This is a bug in shapelatent's distributed training; please report it with the command line."
            )

    def dump_replica(self, model: nn.Module) -> Path | None:
        """With ``$SHAPELATENT_REPLICA_DUMP_DIR`` set, write this rank's weights there (debugging aid)."""
        target = os.environ.get(REPLICA_DUMP_ENV)
        if not target:
            return None
        from safetensors.torch import save_file

        path = Path(target) / f"rank{self.rank}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
        return path

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def init_distributed(device: torch.device) -> DistContext:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (else a single-process context).

    Args:
        device: the resolved device type; on CUDA the process is pinned to ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: a bad torchrun environment, or ``LOCAL_RANK`` beyond the visible GPUs.
    """
    rank, world, local = env_ranks()
    if world == 1:
        return DistContext(device=device)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise ValueError(
                f"LOCAL_RANK={local} but this node has {count} visible CUDA GPUs; start at most {count} processes "
                "per node (--nproc_per_node) or check CUDA_VISIBLE_DEVICES."
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise ValueError(
            f"the initialised process group (rank {dist.get_rank()} of {dist.get_world_size()}) disagrees with "
            f"RANK={rank} WORLD_SIZE={world}."
        )
    ctx = DistContext(rank, world, local, device, owns)
    if ctx.is_main:
        logger.info("data-parallel training: %d processes, backend %s, device %s", world, backend, device.type)
    return ctx


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is again an all-reduce (sum): d(sum_r x_r)/dx_q summed over ranks' losses."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = grad.clone()
        dist.all_reduce(out)
        return out


class AllReduceBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics span all ranks (CPU/gloo stand-in for ``SyncBatchNorm``).

    Same parameters, buffers and ``state_dict`` as ``nn.BatchNorm1d``. Without an initialised process group,
    or in eval mode, it is exactly ``nn.BatchNorm1d``. In training it all-reduces the per-channel sum and
    count, then the sum of squared deviations (two passes, as stable as the local kernel), computes in float32,
    and updates the running statistics with the global mean and unbiased variance.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C) or (N, C, L) -> same shape."""
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / x.shape[1]])])  # (C + 1,)
        total = _SumOverRanks.apply(local)
        count = total[-1]
        mean = total[:-1] / count  # (C,)
        var = _SumOverRanks.apply(((xf - mean.view(shape)) ** 2).sum(dims)) / count  # (C,) biased
        if self.track_running_stats:
            with torch.no_grad():
                # buffers that exist whenever track_running_stats is set
                assert self.num_batches_tracked is not None and self.running_mean is not None
                assert self.running_var is not None
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=m)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _to_allreduce_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm1d) and not isinstance(module, AllReduceBatchNorm):
        new = AllReduceBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        return new.to(next(iter(module.state_dict().values())).device)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.BatchNorm1d):
        raise ValueError(f"train.sync_bn on CPU supports BatchNorm1d only; the model has {type(module).__name__}.")
    for name, child in module.named_children():
        setattr(module, name, _to_allreduce_bn(child))
    return module


def wrap_model(model: nn.Module, ctx: DistContext, sync_bn: bool) -> nn.Module:
    """The module to train: ``model`` itself in a single process, else a ``DistributedDataParallel`` wrapper.

    With ``sync_bn`` the batch norm layers are replaced in place by global-batch versions (same
    ``state_dict`` keys), so save ``model`` itself (not the wrapper) in checkpoints.
    """
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        if ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            _to_allreduce_bn(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # Global statistics keep the buffers identical on every rank; per-replica ones are broadcast from rank 0
    # before each forward (torch 2.13 renamed `broadcast_buffers` to `forward_sync_buffers`).
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    sync_arg = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    sync: dict[str, Any] = {sync_arg: not sync_bn}
    return DistributedDataParallel(model, device_ids=ids, **sync)
