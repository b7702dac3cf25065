"""The pieces a training run is built from: device, seeds, sampler, augmentation, optimizer, schedule."""

from __future__ import annotations

import math
import os
import random

import torch
from torch.utils.data import Sampler

from data.augment import augment_sample
from utils.errors import UserInputError
from utils.options import OptimizerOptions, SchedulerOptions


def select_device(spec: str) -> torch.device:
    """``auto`` -> the local CUDA device when there is one (``LOCAL_RANK`` under torchrun), else CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserInputError(f"option 'device' is '{spec}': use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError("option 'device' asks for CUDA but no GPU is visible: set device: cpu")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python and torch; with ``deterministic`` also ask for deterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, resumable in the middle of an epoch.

    The permutation of epoch ``e`` depends on ``(seed, e)`` alone, so a run restarted at batch
    ``k`` of epoch ``e`` sees exactly the batches an uninterrupted run would. With ``world > 1``
    each rank takes every ``world``-th sample of each global batch.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    def batches_per_epoch(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        for k in range(self.start, self.batches_per_epoch()):
            batch = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield batch[self.rank :: self.world]


def augment_batch(batch: dict, generator: torch.Generator) -> dict:
    """Random flips and quarter turns, one draw per sample, the same for all its fields.

    Drawing in the main process from a generator seeded per step keeps augmentation exactly
    reproducible on resume, whatever the number of DataLoader workers.
    """
    keys = [k for k in ("lr", "up", "guide", "gt") if k in batch]
    samples = [
        augment_sample({k: batch[k][i] for k in keys}, generator) for i in range(batch[keys[0]].shape[0])
    ]
    return {**batch, **{k: torch.stack([s[k] for s in samples]) for k in keys}}


def build_optimizer(params, opts: OptimizerOptions) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from the options."""
    if opts.name == "SGD":
        return torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
    if len(opts.betas) != 2:
        raise UserInputError("option 'train.optimizer.betas' must hold two numbers, e.g. [0.9, 0.999]")
    cls = torch.optim.Adam if opts.name == "Adam" else torch.optim.AdamW
    return cls(params, lr=opts.lr, betas=tuple(opts.betas), eps=opts.eps, weight_decay=opts.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, opts: SchedulerOptions, steps_per_unit: int, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per iteration.

    MultiStepLR milestones are given in epochs (``steps_per_unit`` = batches per epoch) or, when
    training by iterations, in iterations (``steps_per_unit`` = 1). Cosine spans the whole run.
    """
    if opts.name == "MultiStepLR":
        milestones = [m * steps_per_unit for m in opts.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=opts.gamma)
    if opts.name == "CosineAnnealingLR":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, max(total_steps, 1), eta_min=opts.eta_min
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
