"""What a training run writes to TensorBoard besides its curves: one figure per kept validation
image, and the HParams page's summary."""

from __future__ import annotations

import torch

from engine.visualize import error_scale, validation_figure


def write_validation_figures(
    writer,
    kept: list[tuple[dict, torch.Tensor]],
    images: int,
    bands: list[int],
    error_max: float | None,
    scale: float,
    step: int,
) -> float | None:
    """One figure ``val/image_<i>`` per image of ``kept`` ((batch, fused) pairs, N x C x H x W
    tensors in data units), at most ``images``: lr | up | fused | gt | error heat map, the heat
    map on the run's fixed colour scale ``error_max`` (None: set from these images' ``up``
    error, :func:`engine.visualize.error_scale`). Returns the colour scale used."""
    if not kept:
        return error_max
    batch = {k: torch.cat([b[k] for b, _ in kept])[:images] for k in kept[0][0]}
    fused = torch.cat([f for _, f in kept])[:images]
    if error_max is None:
        error_max = error_scale(batch["up"], batch["gt"])
    for i in range(fused.shape[0]):
        image = {k: batch[k][i] for k in ("lr", "up", "gt")}
        writer.add_figure(f"val/image_{i}", validation_figure(image, fused[i], bands, error_max, scale), step)
    return error_max


def write_hparams(writer, options: dict[str, object], final: dict[str, float]) -> None:
    """Describe the run on the HParams page: ``options`` (name -> value) and the metrics of
    ``final`` (the last validation's indices, 'step' left out).

    Only the hparams summaries are written, into this run: the page reads each metric's value
    from the run's own ``val/<index>`` curve, so no single-point scalar cards appear among the
    curves."""
    from torch.utils.tensorboard.summary import hparams

    metrics = {f"val/{k}": v for k, v in final.items() if k != "step"}
    for summary_proto in hparams(options, metrics):
        writer.file_writer.add_summary(summary_proto)
