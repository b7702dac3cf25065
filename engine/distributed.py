"""Multi-process training with torchrun: process group, rank-0 duties, reductions across ranks.

``torchrun --nproc_per_node=N train.py --option_path ...`` starts N copies of train.py with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`init_distributed` joins them into one
process group (NCCL on GPUs, gloo on the CPU). ``train.batch_size`` stays the global batch: each
rank takes every N-th sample of it, DistributedDataParallel averages the gradients, so a step
sees the same samples and (up to float summation order) the same gradient as one process.
Plain ``python train.py`` runs as rank 0 of a world of 1 and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from utils.errors import UserInputError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_distributed(device_spec: str) -> World:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; otherwise a world of one.

    device_spec: the ``device`` option; 'cpu' (or no visible GPU) selects the gloo backend.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_gpu = device_spec != "cpu" and torch.cuda.is_available()
    if use_gpu:
        if local_rank >= torch.cuda.device_count():
            raise UserInputError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                "start at most that many processes per node (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_gpu else "gloo")
    return World(rank, size, local_rank)


def broadcast_object(value: T, world: World) -> T:
    """``value`` of rank 0, on every rank (any picklable object made by our own code)."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(values: list, world: World) -> list:
    """The concatenation of every rank's ``values``, in rank order, on every rank."""
    if not world.distributed:
        return values
    parts: list = [None] * world.size
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]


def mean_across(value: float, world: World, device: torch.device) -> float:
    """The mean of a float over ranks (NaN or Inf anywhere makes the mean non-finite)."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor) / world.size


def barrier(world: World) -> None:
    """Wait for every rank (no-op for a single process)."""
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    """Leave the process group."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
