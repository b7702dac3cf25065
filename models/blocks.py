"""Small building blocks shared by the fusion models, and the input check of ``forward``."""

from __future__ import annotations

import contextlib
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.errors import UserInputError

PADDINGS = ("zeros", "replicate", "reflect")
"""How the 3x3 convolutions pad their input by one pixel (``nn.Conv2d``'s ``padding_mode``)."""


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context with autocast disabled on ``device_type`` where autocast exists there (a no-op
    context elsewhere, e.g. on the ``meta`` device)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class Conv3x3(nn.Conv2d):
    """3x3 convolution with bias, padding one pixel by ``padding`` (one of ``PADDINGS``):
    N x in_channels x H x W -> N x out_channels x H x W, the parameters and function of
    ``nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode=padding)``.

    'reflect' and 'replicate' pad in the input's dtype also under autocast, which would pad in
    float32 (those pads are on its float32 list) and cast back: two copies of every activation and
    of its gradient per convolution (about 4 % of a bf16 training step of the demo's RAMSF).
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "zeros"):
        super().__init__(in_channels, out_channels, 3, padding=1, padding_mode=padding)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return super().forward(x)
        with autocast_off(x.device.type):
            x = F.pad(x, (1, 1, 1, 1), mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias)


class _SharedPReLU(torch.autograd.Function):
    """prelu(x, slope) with one slope for every channel, its backward in three fast kernels
    (threshold, lerp, a reduction) instead of aten's PReLU backward (a slow generic kernel on
    CPUs: forward + backward 3.5 ms against 4.7 ms for 16 x 64 x 32 x 32 float32 on 2 cores)."""

    @staticmethod
    def forward(ctx, x: Tensor, slope: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x, slope)
        return torch.prelu(x, slope)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: D102
        x, slope = ctx.saved_tensors
        grad_x = grad_slope = None
        if ctx.needs_input_grad[0]:  # grad where x > 0, slope * grad elsewhere
            grad_x = torch.lerp(torch.ops.aten.threshold_backward(grad, x, 0), grad, slope)
        if ctx.needs_input_grad[1]:
            total = torch.sum(grad * x.clamp(max=0), dtype=torch.promote_types(x.dtype, torch.float32))
            grad_slope = total.to(slope.dtype).view(1)
        return grad_x, grad_slope


class SharedPReLU(nn.PReLU):
    """``nn.PReLU(num_parameters=1, init=init)``: the same function and parameter (``weight``,
    shape 1), with a faster backward (:class:`_SharedPReLU`). N x C x ... -> same."""

    def __init__(self, init: float = 0.25):
        super().__init__(num_parameters=1, init=init)

    def forward(self, x: Tensor) -> Tensor:
        return _SharedPReLU.apply(x, self.weight.to(x.dtype))


class ConvPReLU(nn.Module):
    """conv3x3 (bias, padding 1) followed by a PReLU with one shared slope (initial 0.25).

    N x in_channels x H x W -> N x out_channels x H x W. padding: one of ``PADDINGS``.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "zeros"):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels, padding)
        self.act = SharedPReLU(init=0.25)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


class ResidualBlock(nn.Module):
    """x + conv3x3(LeakyReLU_0.01(conv3x3(x))), width preserved: N x C x H x W -> same.

    padding: one of ``PADDINGS`` (both convolutions)."""

    def __init__(self, channels: int, padding: str = "zeros"):
        super().__init__()
        self.conv1 = Conv3x3(channels, channels, padding)
        self.act = nn.LeakyReLU(0.01)
        self.conv2 = Conv3x3(channels, channels, padding)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def check_fusion_inputs(lr: Tensor, up: Tensor, guide: Tensor, lr_channels: int, guide_channels: int) -> None:
    """Refuse inputs that do not fit ``forward(lr, up, guide)`` with a one-line UserInputError.

    Expects lr N x C x h x w, up N x C x H x W, guide N x Cg x H x W with h <= H, w <= W, (h, w) != (H, W).
    """
    for name, tensor in (("lr", lr), ("up", up), ("guide", guide)):
        if tensor.dim() != 4:
            raise UserInputError(
                f"{name} must be a 4-D tensor N x C x H x W, got shape {tuple(tensor.shape)}"
            )
    if lr.shape[1] != lr_channels or up.shape[1] != lr_channels:
        raise UserInputError(
            f"the model was built for {lr_channels} bands but lr has {lr.shape[1]} and up has "
            f"{up.shape[1]}; set lr_channels to the data's band count"
        )
    if guide.shape[1] != guide_channels:
        raise UserInputError(
            f"the model was built for a {guide_channels}-band guide but guide has "
            f"{guide.shape[1]}; set guide_channels to the data's guide band count"
        )
    low, high = lr.shape[-2:], guide.shape[-2:]
    if low[0] > high[0] or low[1] > high[1] or low == high:
        raise UserInputError(
            f"lr {tuple(low)} must be smaller than guide {tuple(high)}; were lr and up swapped?"
        )
    if up.shape[-2:] != high or not lr.shape[0] == up.shape[0] == guide.shape[0]:
        raise UserInputError(
            f"up {tuple(up.shape)} and guide {tuple(guide.shape)} must share batch size and "
            f"H x W (and lr {tuple(lr.shape)} the batch size)"
        )


def checked_ratio(model: str, ratio: numbers.Real) -> int:
    """``ratio`` as an int (4, 4.0 or numpy 4 -> 4); anything not an integer >= 2 is a
    UserInputError naming ``model``."""
    if isinstance(ratio, numbers.Real) and float(ratio).is_integer() and ratio >= 2:
        return int(ratio)
    raise UserInputError(f"{model} needs an integer ratio >= 2 (H / h of the data), got {ratio!r}")
