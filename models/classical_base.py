"""Shared machinery of the classical (training-free) fusion methods and the EXP baseline.

A classical method is an ``nn.Module`` without parameters, registered in ``MODELS`` like a
network, so the same ``test.py`` and comparison harness run it on the same files. Subclasses
implement :meth:`ClassicalFusion.fuse` on float64 tensors; :meth:`ClassicalFusion.forward` casts
in and out, so outputs keep the input's dtype, shape and value scale (every method here is
equivariant to a common scaling of its inputs).

The toolbox methods expect one PAN band. With a multi-band guide (HS + MS fusion) each HS band
gets its own synthetic PAN, the least-squares combination of the guide bands (plus an offset)
that best predicts that band at the low resolution, fitted per image: the "hypersharpening"
of Selva, Aiazzi, Butera, Chiarantini and Baronti, "Hyper-sharpening: A first approach on
SIM-GA data", IEEE JSTARS 8(6), 2015. The method then sees an N x C x H x W PAN, one plane per
band, and every formula below broadcasts over that band axis.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs
from protocols.resize import interp23tap, upsample


def least_squares(design: Tensor, target: Tensor) -> Tensor:
    """Per-image least squares: design N x P x K, target N x P x T -> coefficients N x K x T.

    The columns are scaled to unit norm (so digital numbers in the thousands next to a constant
    column stay well conditioned), then the normal equations are solved with a ridge of 1e-12
    per column, which only keeps a zero or repeated column from making them singular; float64
    recommended.
    """
    norms = design.norm(dim=1, keepdim=True).clamp_min(1e-300)
    scaled = design / norms
    gram = scaled.transpose(1, 2) @ scaled
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    coef = torch.linalg.solve(gram + 1e-12 * eye, scaled.transpose(1, 2) @ target)
    return coef / norms.transpose(1, 2)


def image_mean(x: Tensor) -> Tensor:
    """Mean of each plane: N x C x H x W -> N x C x 1 x 1."""
    return x.mean(dim=(-2, -1), keepdim=True)


def image_std(x: Tensor) -> Tensor:
    """Sample standard deviation of each plane (MATLAB ``std2``, n - 1): N x C x 1 x 1."""
    return x.flatten(-2).std(dim=-1, unbiased=True)[..., None, None]


def synthetic_pan(lr: Tensor, guide: Tensor, ratio: int) -> Tensor:
    """One PAN per band from a multi-band guide (hypersharpening, see the module docstring).

    lr: N x C x h x w; guide: N x G x H x W with H ~ ratio * h. The guide is block-averaged to
    the low resolution, each band of ``lr`` regressed on its bands plus a constant, and the
    coefficients applied to the full-resolution guide -> N x C x H x W.
    """
    rows = min(lr.shape[-2], guide.shape[-2] // ratio)
    cols = min(lr.shape[-1], guide.shape[-1] // ratio)
    low_guide = F.avg_pool2d(guide[..., : rows * ratio, : cols * ratio], ratio)
    ones = torch.ones_like(low_guide[:, :1])
    design = torch.cat((low_guide, ones), dim=1).flatten(2).transpose(1, 2)
    target = lr[..., :rows, :cols].flatten(2).transpose(1, 2)
    coef = least_squares(design, target)
    full = torch.cat((guide, torch.ones_like(guide[:, :1])), dim=1)
    return torch.einsum("nkhw,nkc->nchw", full, coef)


class ClassicalFusion(nn.Module, abc.ABC):
    """Base of the training-free methods: ``forward(lr, up, guide)`` like every model.

    lr: N x C x h x w, up: N x C x H x W (the data's upsampled ``lr``), guide: N x G x H x W;
    any value scale. ``sensor`` names the MTF preset (protocols/mtf.py) for methods that use one.
    """

    needs_training = False

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, sensor: str = "none"):
        super().__init__()
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.ratio = ratio
        self.sensor = sensor

    @abc.abstractmethod
    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        """The method on float64 tensors; ``pan`` is N x 1 x H x W, or N x C x H x W (one per band)."""

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        lr64, up64, guide64 = lr.double(), up.double(), guide.double()
        pan = guide64 if guide64.shape[1] == 1 else synthetic_pan(lr64, guide64, self.ratio)
        return self.fuse(lr64, up64, pan).to(up.dtype)


@MODELS.register
class EXP(ClassicalFusion):
    """EXP: the low-resolution image interpolated to the guide's grid, no detail injected.

    The toolbox's 23-tap polynomial interpolator (Aiazzi, Baronti, Selva and Alparone,
    "Bi-cubic interpolation for shift-free pan-sharpening", ISPRS J. 86, 2013) for power-of-two
    ratios; bicubic on the same sample grid otherwise (protocols/resize.py ``upsample``).
    """

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        if self.ratio & (self.ratio - 1) == 0:
            out = interp23tap(lr, self.ratio)
        else:
            out = upsample(lr, self.ratio)
        return out[..., : up.shape[-2], : up.shape[-1]]
