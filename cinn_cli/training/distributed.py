"""Process-group helpers for ``torchrun``: who am I, which device, and the few collectives the
training loop needs.

``torchrun --nproc_per_node N -m cinn_cli train ...`` starts N copies of the command with
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment
(multi-node: the same variables from torchrun's rendezvous). A plain ``cinn train`` has none of
them and runs as a world of one, without a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``size`` processes, this one is ``rank`` (global) and
    ``local_rank`` (on its node). ``owns_group``: this process created the process group (so it
    also destroys it)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes files, logs and progress."""
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process; an
    index other than LOCAL_RANK is refused, since two processes on one GPU fail inside NCCL)."""
    if device.type != "cuda":
        return device
    if device.index not in (None, local_rank):
        raise ValueError(
            f"under torchrun each process uses cuda:LOCAL_RANK (here cuda:{local_rank}); give --device cuda, "
            f"not {device} (to choose GPUs, set CUDA_VISIBLE_DEVICES)"
        )
    return torch.device("cuda", local_rank)


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join the torchrun job described by the environment (NCCL on CUDA, gloo on the CPU).

    Returns ``(World(size=1), device)`` when not launched by torchrun with more than one process.
    Raises ``ValueError`` for a device no backend supports (MPS).
    """
    size = env_world_size()
    if size <= 1:
        return World(), device
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(device, local_rank)
    owns = not dist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL collectives and object broadcasts use the current device
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return World(size=dist.get_world_size(), rank=dist.get_rank(), local_rank=local_rank, owns_group=owns), device


def leave(world: World) -> None:
    """Destroy the process group if ``join`` created it."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """In-place sum of ``t`` over all processes (a no-op in a world of one)."""
    if world.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_from_main(obj, world: World):
    """Rank 0's ``obj`` on every process (picklable objects; a no-op in a world of one)."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
