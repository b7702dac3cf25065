"""The training loop: one optimizer step per batch, validation, checkpoints, TensorBoard.

Training is counted in global steps (optimizer updates). Epoch ``e`` and its batch ``k`` follow
from the step, the sampler's permutation depends on ``(seed, e)`` only, augmentation draws come
from a generator seeded by ``(seed, step)``, and the scheduler steps once per iteration. A run
stopped after any checkpoint therefore resumes to exactly the weights of an uninterrupted run
on the CPU (tested). On GPUs, ``deterministic: true`` asks for deterministic kernels where
PyTorch has them (it warns about the others), which brings a resumed run close to, not always
exactly onto, an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from data.datasets import check_min_size
from engine.board import write_hparams, write_validation_figures
from engine.checkpoint import load_checkpoint, load_model_weights, save_atomic
from engine.distributed import World, barrier, gather_lists, mean_across
from engine.ema import WeightAverage
from engine.evaluation import BatchHook, Scores, evaluate, fuse, to_device
from engine.losses import CompositeLoss, auxiliary_needs
from engine.model_record import build_from_record, check_resumable, load_initial_weights, model_record
from engine.options import FULL_VALIDATION, REDUCED_VALIDATION, Options
from engine.training_files import open_training_file, open_validation_files, summary
from engine.training_parts import (
    EpochBatchSampler,
    augment_batch,
    autocast,
    build_optimizer,
    build_scheduler,
    check_optimizer_state,
    grad_scaler,
    resolve_amp,
    select_device,
)
from engine.visualize import default_rgb_bands
from metrics.report import HIGHER_IS_BETTER
from utils.errors import UserInputError

HISTORY_KEYS = (*REDUCED_VALIDATION, *FULL_VALIDATION)
AMP_NAMES = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast with loss scaling"}


class TrainingDiverged(UserInputError):
    """The loss became NaN or Inf and the options say to stop."""


class Trainer:
    """Builds and checks everything from the options (writing nothing), optionally resumes from a
    checkpoint (:meth:`resume_from`), then trains into an opened run folder (:meth:`fit`).

    resume: the checkpoint the run will resume from, if any: ``train.init_from`` is then not read
    (the resumed weights replace it, and that file may be gone)."""

    def __init__(
        self, options: Options, logger: logging.Logger, world: World | None = None, resume: Path | None = None
    ):
        self.options, self.log = options, logger
        self.run_dir: Path | None = None  # the run folder fit() trains into
        self.world = world = world or World()
        self.device = select_device(options.device)
        terms = [term.spec() for term in options.train.loss]
        self.loss = CompositeLoss(terms, defaults={"sensor": options.data.sensor})
        self.train_set = open_training_file(options, self.loss)  # without gt if no loss needs it
        self.record = model_record(options, self.train_set)
        self.valid_sets = open_validation_files(options, self.train_set)  # 'reduced' and/or 'full'
        if options.train.patch_size is not None:
            check_min_size(self.train_set, options.train.patch_size)
        self.net = build_from_record(self.record).to(self.device)  # what checkpoints hold
        self.auxiliary = auxiliary_needs(self.loss, self.net, self.record["name"])  # outputs it reads
        if options.train.init_from is not None and resume is None:  # weights only, fresh optimizer
            load_initial_weights(self.net, self.record, options.train.init_from)
        self.model = self.net  # what training calls: the DDP wrapper under torchrun
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        opts = options.train
        if opts.batch_size < world.size:
            raise UserInputError(
                f"train.batch_size {opts.batch_size} is the global batch and must be at least the "
                f"number of processes ({world.size}): raise it or start fewer processes"
            )
        self.sampler = EpochBatchSampler(
            len(self.train_set), opts.batch_size, options.seed, world.rank, world.size
        )
        self.steps_per_epoch = self.sampler.batches_per_epoch()
        by_epochs = opts.epochs is not None
        self.total_steps = opts.epochs * self.steps_per_epoch if by_epochs else opts.iterations
        self.optimizer = build_optimizer(self.net.parameters(), opts.optimizer)
        self.average = None if opts.ema_decay is None else WeightAverage(self.net, opts.ema_decay)
        self.scaler = grad_scaler(self.device, opts.amp)  # loss scaling for fp16; a no-op otherwise
        unit = self.steps_per_epoch if by_epochs else 1
        self.scheduler = build_scheduler(self.optimizer, opts.scheduler, unit, self.total_steps)
        self.val_every_steps = options.val.every * (
            self.steps_per_epoch if options.val.unit == "epoch" else 1
        )
        self.step = 0
        self.best = {"value": math.nan, "step": -1}
        self.history: list[dict] = []
        self.error_max: float | None = None  # colour-scale maximum of the validation error maps
        self.writer = None  # opened by fit(), after a resume, so that curves do not double back
        self.bands = options.data.rgb_bands or default_rgb_bands(self.train_set.lr_channels)
        if max(self.bands) >= self.train_set.lr_channels:
            raise UserInputError(
                f"option 'data.rgb_bands' {self.bands} names a band beyond the data's "
                f"{self.train_set.lr_channels} bands: use 0-based indices below {self.train_set.lr_channels}"
            )

    @property
    def scored(self) -> torch.nn.Module:
        """What validation scores (and best.pth is chosen by): the weights' EMA, or the network."""
        return self.net if self.average is None else self.average.module

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        """RUN/checkpoints: latest.pth and best.pth."""
        return self.run_dir / "checkpoints"

    def state(self) -> dict:
        """Everything a resume needs: weights, optimizer, scheduler, scaler, step, best, history."""
        return {
            "model": self.net.state_dict(),
            "model_ema": None if self.average is None else self.average.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": dict(self.best),
            "history": list(self.history),
            "error_max": self.error_max,
            "model_record": self.record,
            "metric": self.options.val.metric,
        }

    def save(self, name: str) -> None:
        """Write the state atomically to checkpoints/``name`` (rank 0), all ranks waiting for it."""
        if self.world.is_main:
            save_atomic(self.state(), self.checkpoint_dir / name)
        barrier(self.world)  # no rank runs ahead of a checkpoint it might need

    def resume_from(self, path: Path) -> None:
        """Continue from a train.py checkpoint: its weights, optimizer, scheduler and step."""
        state = load_checkpoint(path)
        missing = [k for k in ("optimizer", "scheduler", "step", "best") if k not in state]
        if missing:
            raise UserInputError(
                f"checkpoint '{path}' has no {', '.join(missing)} to resume from (a weights-only file?): "
                "set train.resume: none, or resume from a latest.pth written by train.py"
            )
        if isinstance(state.get("model_record"), dict):
            check_resumable(state["model_record"], self.record, str(path))
        load_model_weights(self.net, state, str(path), averaged=False)
        if self.average is not None:
            if not isinstance(state.get("model_ema"), dict):
                raise UserInputError(
                    f"checkpoint '{path}' was trained without train.ema_decay: resume it without, "
                    "or set train.resume: none to start a run that averages the weights"
                )
            self.average.load_state_dict(state["model_ema"], f"checkpoint '{path}'")
        check_optimizer_state(state["optimizer"], self.optimizer, str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = dict(state["best"])
        self.history = list(state.get("history", []))
        self.error_max = state.get("error_max")

    # ----------------------------------------------------------------- loop
    def batches_from(self, step: int) -> Iterator[dict]:
        """Training batches from global ``step`` on, epoch after epoch."""
        epoch, start = divmod(step, self.steps_per_epoch)
        while True:
            self.sampler.set_position(epoch, start)
            loader = DataLoader(
                self.train_set,
                batch_sampler=self.sampler,
                num_workers=self.options.data.num_workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=False,
            )
            yield from loader
            epoch, start = epoch + 1, 0

    def train_step(self, batch: dict) -> float | None:
        """One optimizer update; returns the loss, or None when a non-finite loss was skipped."""
        self.model.train()
        generator = torch.Generator().manual_seed(self.options.seed * 1_000_003 + self.step)
        if self.options.data.augment:
            group = "dihedral" if self.options.data.augment is True else self.options.data.augment
            batch = augment_batch(batch, generator, self.world.rank, self.world.size, group)
        batch = to_device(batch, self.device)
        with autocast(self.device, self.options.train.amp):
            fused = fuse(self.model, batch, self.auxiliary)  # adds those outputs to batch
        loss = self.loss(fused.float(), batch)
        value = mean_across(float(loss.detach()), self.world, self.device)  # every rank decides alike
        if not math.isfinite(value):
            if self.options.train.nonfinite_loss == "skip":
                self.log.warning(f"step {self.step + 1}: non-finite loss {value}, batch skipped")
                self.optimizer.zero_grad(set_to_none=True)
                return None
            kept = (
                f"the last good checkpoint is kept in {self.checkpoint_dir}"
                if (self.checkpoint_dir / "latest.pth").is_file()
                else "no checkpoint was saved before it"
            )
            raise TrainingDiverged(
                f"the loss became {value} at step {self.step + 1}; {kept}: lower "
                "train.optimizer.lr, check the data, or set train.nonfinite_loss: skip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.options.train.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.options.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.net)
        return value

    def fit(self, run_dir: Path, stop_after: int | None = None) -> dict:
        """Train to the configured length (or to step ``stop_after``) into the opened ``run_dir``
        (checkpoints and TensorBoard are written by rank 0 only); returns the last metrics."""
        self.run_dir = run_dir
        end = self.total_steps if stop_after is None else min(stop_after, self.total_steps)
        if self.step >= self.total_steps:
            self.log.info(
                f"this run already finished at step {self.step} ({self.checkpoint_dir}): "
                "set train.resume: none to start a new run"
            )
            return self.history[-1] if self.history else {}
        if self.options.tensorboard and self.world.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=self.step or None)
        try:
            return self.run_steps(end)
        finally:
            if self.writer is not None:
                self.writer.close()

    def run_steps(self, end: int) -> dict:
        """The training loop from the current step to ``end``."""
        self.log.info(
            f"training {type(self.net).__name__} ({sum(p.numel() for p in self.net.parameters()):,} "
            "parameters) on "
            f"{len(self.train_set)} samples, {self.steps_per_epoch} batches per epoch, "
            f"steps {self.step} -> {end} of {self.total_steps}, device {self.device}, "
            f"precision {AMP_NAMES[resolve_amp(self.device, self.options.train.amp)]}"
            + ("" if self.average is None else f", validating the weights' EMA ({self.average.decay})")
            + (f", {self.world.size} processes" if self.world.distributed else "")
        )
        if self.valid_sets and self.step == 0:
            self.log_baseline()
        # closed (ending its line) also on errors, so that an error message starts a line
        with tqdm(
            total=end,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not self.world.is_main,
            dynamic_ncols=True,
        ) as bar:
            batches = self.batches_from(self.step)
            window: list[float] = []
            start = time.perf_counter()
            while self.step < end:
                lr = self.optimizer.param_groups[0]["lr"]
                value = self.train_step(next(batches))
                self.scheduler.step()
                self.step += 1
                bar.update(1)
                if value is not None:
                    window.append(value)
                    bar.set_postfix(loss=f"{value:.4g}")
                if self.step % self.options.train.log_every == 0 and window:
                    self.log_training(sum(window) / len(window), lr)
                    window.clear()
                validate_now = bool(self.valid_sets) and (
                    self.step % self.val_every_steps == 0 or self.step == self.total_steps
                )
                if validate_now:
                    self.validate()
                if validate_now or self.step % self.options.train.save_every == 0 or self.step == end:
                    self.save("latest.pth")
        self.log.info(
            f"stopped at step {self.step}/{self.total_steps} after {time.perf_counter() - start:.1f} s"
        )
        if self.step == self.total_steps:
            self.finish()
        return self.history[-1] if self.history else {}

    def log_training(self, loss: float, lr: float) -> None:
        """Log the mean loss of the last ``log_every`` steps and the learning rate of the last step."""
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            for name, part in self.loss.parts.items():
                self.writer.add_scalar(f"train/loss_{name}", part, self.step)
        self.log.debug(f"step {self.step} loss {loss:.6g} lr {lr:.3g}")

    def score_validation(self, model: torch.nn.Module | None, on_batch: BatchHook | None = None) -> Scores:
        """Indices of ``model`` (None: the upsampled input ``up``) on the validation files:
        SAM, ERGAS, ... on ``data.valid``, D_lambda, D_s, QNR, ... on ``data.valid_full``.

        Under torchrun each rank scores every ``world``-th image; the per-image values are then
        gathered so that every rank holds the indices of the whole file.
        """
        scores = Scores()
        for dataset in self.valid_sets.values():
            part = dataset
            if self.world.distributed:
                part = Subset(dataset, range(self.world.rank, len(dataset), self.world.size))
            loader = DataLoader(
                part,
                batch_size=self.options.train.batch_size,
                num_workers=self.options.data.num_workers,
            )
            scored = evaluate(
                model,
                loader,
                self.device,
                self.options.data.scale,
                self.train_set.ratio,
                dim_cut=self.options.val.dim_cut,
                sensor=self.options.data.sensor,
                on_batch=on_batch,
            )
            if self.world.distributed:
                scored.values = {k: gather_lists(v, self.world) for k, v in scored.values.items()}
                scored.seconds = gather_lists(scored.seconds, self.world)
            scores.values.update(scored.values)
            scores.seconds.extend(scored.seconds)
        return scores

    def log_baseline(self) -> None:
        """Log the validation indices of the upsampled input, the level a model must beat."""
        self.log.info(
            f"validation of the upsampled input (baseline): {summary(self.score_validation(None).mean())}"
        )

    def validate(self) -> Scores:
        """Score the validation files, log them, keep the history and save best.pth on improvement."""
        kept: list[tuple[dict, torch.Tensor]] = []

        def keep(batch: dict, fused: torch.Tensor) -> None:
            room = self.options.val.images - sum(f.shape[0] for _, f in kept)
            if room > 0 and "gt" in batch:  # the figures show the error to the reference
                part = {k: v[:room].cpu() for k, v in batch.items() if torch.is_tensor(v)}
                kept.append((part, fused[:room].cpu()))

        scores = self.score_validation(self.scored, keep)
        means = scores.mean()
        metric = self.options.val.metric
        value = means[metric]
        sign = -1 if HIGHER_IS_BETTER[metric] else 1
        improved = math.isnan(self.best["value"]) or sign * value < sign * self.best["value"]
        if improved:
            self.best = {"value": value, "step": self.step}
        self.history.append({"step": self.step, **{k: means[k] for k in HISTORY_KEYS if k in means}})
        self.log.info(f"step {self.step}: validation {summary(means)}" + (" (best)" if improved else ""))
        if self.writer is not None:
            for key, mean in means.items():
                self.writer.add_scalar(f"val/{key}", mean, self.step)
            self.show(kept)
        if improved:
            self.save("best.pth")
        return scores

    def show(self, kept: list[tuple[dict, torch.Tensor]]) -> None:
        """The validation figures of the kept images (engine.board); the error maps' colour scale
        is fixed at the first validation and kept in checkpoints."""
        images, scale = self.options.val.images, self.options.data.scale
        self.error_max = write_validation_figures(
            self.writer, kept, images, self.bands, self.error_max, scale, self.step
        )

    def finish(self) -> None:
        """Describe the run on TensorBoard's HParams page (the writer is closed by fit)."""
        if self.writer is not None:
            options = {
                "model": self.record["name"],
                "lr": self.options.train.optimizer.lr,
                "batch_size": self.options.train.batch_size,
                "steps": self.total_steps,
            }
            write_hparams(self.writer, options, self.history[-1] if self.history else {})
