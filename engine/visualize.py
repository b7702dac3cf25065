"""Images for TensorBoard: RGB composites of any band count, absolute-error and SAM maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize for display (keeps the pixels of low-resolution inputs visible)."""
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="nearest")


def error_map(fused: torch.Tensor, gt: torch.Tensor, vmax: float | None = None) -> torch.Tensor:
    """Mean absolute error over bands, N x 1 x H x W scaled to [0, 1] by ``vmax`` (default: max)."""
    err = (fused.detach() - gt.detach()).abs().mean(dim=1, keepdim=True).float()
    top = err.flatten(1).amax(dim=1)[:, None, None, None] if vmax is None else torch.tensor(vmax)
    return (err / top.clamp_min(1e-12)).clamp(0, 1)


def sam_map(fused: torch.Tensor, gt: torch.Tensor, vmax_degrees: float = 10.0) -> torch.Tensor:
    """Per-pixel spectral angle in degrees, N x 1 x H x W scaled to [0, 1] by ``vmax_degrees``."""
    f, g = fused.detach().double(), gt.detach().double()
    cosine = (f * g).sum(1, keepdim=True) / (f.norm(dim=1, keepdim=True) * g.norm(dim=1, keepdim=True))
    angle = torch.rad2deg(torch.acos(cosine.nan_to_num(1.0).clamp(-1, 1)))
    return (angle / vmax_degrees).clamp(0, 1).float()


def comparison_panels(
    batch: dict[str, torch.Tensor], fused: torch.Tensor, bands: list[int]
) -> dict[str, torch.Tensor]:
    """Named N x 3 x H x W panels (lr, up, guide, fused, gt, abs_error, sam) sharing one stretch."""
    size = tuple(fused.shape[-2:])
    reference = batch.get("gt", batch["up"])
    limits = stretch_limits(reference.float()[:, bands])
    guide = batch["guide"]
    guide_bands = default_rgb_bands(guide.shape[1])
    panels = {
        "lr": resize_to(rgb_composite(batch["lr"], bands, limits), size),
        "up": rgb_composite(batch["up"], bands, limits),
        "guide": rgb_composite(guide, guide_bands),
        "fused": rgb_composite(fused, bands, limits),
    }
    if "gt" in batch:
        panels["gt"] = rgb_composite(batch["gt"], bands, limits)
        panels["abs_error"] = error_map(fused, batch["gt"]).expand(-1, 3, -1, -1)
        panels["sam"] = sam_map(fused, batch["gt"]).expand(-1, 3, -1, -1)
    return panels
