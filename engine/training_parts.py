"""The pieces a training run is built from: device, seeds, sampler, augmentation, optimizer, schedule."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import Sampler

from data.augment import apply_dihedral, draw_transform
from engine.options import OptimizerOptions, SchedulerOptions
from utils.errors import UserInputError


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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserInputError(
            f"option 'device' is '{spec}' but {torch.cuda.device_count()} GPU(s) are visible: "
            f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}, or auto"
        )
    return device


OPTIMIZER_SETTINGS = (
    "initial_lr",
    "betas",
    "eps",
    "weight_decay",
    "momentum",
    "dampening",
    "nesterov",
    "amsgrad",
)
"""The param-group settings a resumed optimizer state must share with the options' optimizer."""


def check_optimizer_state(saved: dict, optimizer: torch.optim.Optimizer, path: str) -> None:
    """Refuse a checkpoint's optimizer state written by another optimizer or other settings:
    ``load_state_dict`` would silently put the saved settings in place of the options' (or fail
    inside ``step``, e.g. SGD's state under Adam)."""
    for then, now in zip(saved.get("param_groups", []), optimizer.state_dict()["param_groups"], strict=False):
        changed = [
            f"{key} {then.get(key)!r} -> {now.get(key)!r}"
            for key in OPTIMIZER_SETTINGS
            if (key in then or key in now) and then.get(key) != now.get(key)
        ]
        if changed:
            raise UserInputError(
                f"checkpoint '{path}' holds the state of another optimizer setting ({'; '.join(changed)}): "
                "resume with the train.optimizer and train.scheduler it was trained with, or start "
                "from its weights with train.init_from"
            )


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

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        for k in range(self.start, self.batches_per_epoch()):
            batch = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield batch[self.rank :: self.world]


def augment_batch(
    batch: dict, generator: torch.Generator, rank: int = 0, world: int = 1, group: str = "dihedral"
) -> dict:
    """Random transforms of ``group`` (data.augment.GROUPS), one draw per sample, the same for all
    its fields.

    Drawing in the main process from a generator seeded per step keeps augmentation exactly
    reproducible on resume, whatever the number of DataLoader workers. Under torchrun the draws
    are made for the whole global batch and rank r applies those of its samples (global
    positions r, r + world, ...), so every sample is transformed as in a single process.
    """
    keys = [k for k in ("lr", "up", "guide", "gt") if k in batch]
    count = batch[keys[0]].shape[0]
    height, width = batch["up"].shape[-2:]
    draws = [draw_transform(group, height == width, generator) for _ in range(rank + (count - 1) * world + 1)]
    samples = [{k: apply_dihedral(batch[k][i], draws[rank + i * world]) for k in keys} for i in range(count)]
    return {**batch, **{k: torch.stack([s[k] for s in samples]) for k in keys}}


FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Devices on which Adam and AdamW run as one fused kernel (torch >= 2.4)."""


def build_optimizer(params: Iterable[torch.nn.Parameter], opts: OptimizerOptions) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from the options; values that torch refuses are a user error."""
    params = list(params)
    if not any(p.requires_grad for p in params):
        raise UserInputError(
            "the model has no trainable parameters, so there is nothing to train: "
            "set model.name to a network with parameters"
        )
    if opts.name != "SGD" and len(opts.betas) != 2:
        raise UserInputError("option 'train.optimizer.betas' must hold two numbers, e.g. [0.9, 0.999]")
    try:
        if opts.name == "SGD":
            return torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
        cls = torch.optim.Adam if opts.name == "Adam" else torch.optim.AdamW
        # one fused kernel over all parameters where torch has it (CPU and CUDA): the same update
        # to float rounding; RAMSF's 0.6 M parameters, 2 CPU cores: 1.1 ms a step against 3.1 ms
        fused = all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
        return cls(
            params,
            lr=opts.lr,
            betas=tuple(opts.betas),
            eps=opts.eps,
            weight_decay=opts.weight_decay,
            fused=fused or None,
        )
    except ValueError as exc:  # torch checks the ranges: betas in [0, 1), eps, weight_decay >= 0
        raise UserInputError(
            f"option 'train.optimizer' is refused by {opts.name} ({exc}): use betas in [0, 1) "
            "and eps, weight_decay, momentum >= 0"
        ) from None


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


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU feature flags (Linux /proc/cpuinfo) of native bf16 arithmetic: AMX tiles, AVX-512 BF16 dot products."""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (so bf16 autocast is faster than float32):
    a CUDA GPU that supports it, or a CPU whose flags name bf16 units (BF16_CPU_FLAGS)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_flags() & set(BF16_CPU_FLAGS))


def resolve_amp(device: torch.device, amp: str) -> str:
    """'auto' -> 'bf16' where the device has native bf16 (:func:`native_bf16`), else 'none';
    other values unchanged."""
    if amp != "auto":
        return amp
    return "bf16" if native_bf16(device) else "none"


def check_amp(device: torch.device, amp: str) -> None:
    """fp16 needs a GPU (loss scaling is a CUDA feature); bf16 runs on GPUs and CPUs."""
    if amp == "fp16" and device.type != "cuda":
        raise UserInputError("train.amp: fp16 needs a CUDA device: use bf16 or auto on the CPU, or none")


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in bf16/fp16 for ``amp`` 'bf16'/'fp16' (and 'auto' where it resolves to
    bf16), a no-op context for 'none'."""
    amp = resolve_amp(device, amp)
    if amp == "none":
        return contextlib.nullcontext()
    check_amp(device, amp)
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """Dynamic loss scaling for fp16 (disabled, a pass-through, otherwise)."""
    amp = resolve_amp(device, amp)
    check_amp(device, amp)
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
