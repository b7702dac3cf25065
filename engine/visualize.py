"""Images for TensorBoard and the charts: RGB composites of any band count, and one figure per
validation image with its error heat map on a fixed colour scale."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def default_rgb_bands(channels: int) -> list[int]:
    """0-based bands shown as R, G, B for common sensors, chosen by band count.

    4 bands (QB, GF-2, IKONOS: B, G, R, NIR) -> 2, 1, 0; 7 (Landsat-8 B1-B7) -> 3, 2, 1;
    8 (WV2/WV3: coastal, B, G, Y, R, ...) -> 4, 2, 1; 3 (RGB) -> 0, 1, 2; 1 -> grey;
    other counts (hyperspectral, ordered by wavelength) -> bands at 80%, 50% and 15% of the range.
    """
    table = {1: [0, 0, 0], 3: [0, 1, 2], 4: [2, 1, 0], 7: [3, 2, 1], 8: [4, 2, 1]}
    if channels in table:
        return table[channels]
    return [int(channels * 0.8), int(channels * 0.5), int(channels * 0.15)]


def stretch_limits(
    x: torch.Tensor, low: float = 0.02, high: float = 0.98
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and band percentiles of ``x`` (N x C x H x W) -> two N x C x 1 x 1 tensors."""
    flat = x.detach().float().flatten(2)
    if flat.shape[-1] > 65536:
        step = flat.shape[-1] // 65536 + 1
        flat = flat[..., ::step]
    q = torch.tensor([low, high], device=flat.device)
    lo, hi = torch.quantile(flat, q, dim=-1)
    return lo[..., None, None], hi[..., None, None]


def rgb_composite(
    x: torch.Tensor, bands: list[int], limits: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """N x C x H x W -> N x 3 x H x W in [0, 1], each band stretched between ``limits``.

    Pass the limits of a reference image (the ground truth) so that all panels of one figure
    share a stretch; by default each image gets its own 2-98% stretch.
    """
    rgb = x.detach().float()[:, bands]
    lo, hi = limits if limits is not None else stretch_limits(rgb)
    if lo.shape[1] != 3:
        lo, hi = lo[:, bands], hi[:, bands]
    return ((rgb - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


def mean_abs_error(fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """|fused - gt| averaged over bands: N x C x H x W -> N x H x W (the inputs' units), float64."""
    return (fused.detach().double() - gt.detach().double()).abs().mean(dim=1)


def error_scale(up: torch.Tensor, gt: torch.Tensor) -> float:
    """A colour-scale maximum for error maps: the 99th percentile of the interpolated input's
    mean absolute error (N x C x H x W tensors, same units); fixed once for a whole run."""
    top = torch.quantile(mean_abs_error(up, gt).flatten()[:1_000_000], 0.99).item()
    return top if top > 0 else 1.0


def validation_figure(
    images: dict[str, torch.Tensor], fused: torch.Tensor, bands: list[int], error_max: float, unit: float
) -> Figure:
    """One validation image as a matplotlib figure: lr | up | fused | gt | error heat map.

    images: lr (C x h x w), up, gt (C x H x W), scaled data; fused C x H x W. The RGB composites
    (``bands``) share the gt's 2-98 % stretch; the heat map is the mean absolute error over bands
    in digital numbers (data times ``unit``) on the fixed scale [0, error_max * unit] with a
    colour bar, so that maps of different steps compare. Pixels are drawn as blocks (nearest).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    gt = images["gt"][None]
    limits = stretch_limits(gt.float()[:, bands])
    tiles = {
        "lr": images["lr"][None],
        "up": images["up"][None],
        "fused": fused[None],
        "gt": gt,
    }
    figure = Figure(figsize=(16.5, 3.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, 5)
    for ax, (name, tile) in zip(axes, tiles.items(), strict=False):
        rgb = rgb_composite(tile, bands, limits)[0].permute(1, 2, 0).numpy()
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{name} ({tile.shape[-2]} x {tile.shape[-1]})")
    error = mean_abs_error(fused[None], gt)[0].numpy() * unit
    heat = axes[4].imshow(error, cmap="inferno", vmin=0.0, vmax=error_max * unit, interpolation="nearest")
    axes[4].set_title("|fused - gt|, mean over bands (DN)")
    figure.colorbar(heat, ax=axes[4], fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_axis_off()
    return figure
