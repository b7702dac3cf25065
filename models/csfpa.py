"""CSFPA: coordinate-modal-guided spatial-spectral feature progressive alignment.

A local implicit function (JIIF / LIIF style) carries the spectral features from the low-resolution
grid to finer grids, stage by stage, guided by the detail map of LHSDR. Each query pixel reads its
four nearest low-resolution cells, feeds [cell feature, guide feature at the query, relative
coordinate] to an MLP and blends the four predictions with softmax weights from the MLP's last
output. Coordinates are pixel centres in [-1, 1]: ``-1 + (2k + 1) / n`` for pixel k of n.

Neighbours are gathered with integer indices, in chunks of query pixels so that memory stays
bounded. Border modes: ``"zero"`` (the released model: a neighbour outside the grid reads zeros
for its feature and for its cell-centre coordinate, as nearest ``grid_sample`` with zero padding
does), ``"clamp"`` (LIIF: the neighbour index is clamped to the grid, so both neighbours of a
first/last-line query are the edge cell, at the same relative coordinate) and ``"replicate"``
(the feature grid edge-padded by one cell: an outside neighbour reads the nearest edge cell's
feature but keeps its own cell centre, so its relative coordinate is the one an interior query of
the same phase sees; on a constant feature map every query of a phase gets the same inputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import ConvPReLU
from models.query_mlp import fast_query

BORDERS = ("zero", "clamp", "replicate")
FAST_BLOCK_PIXELS = 2048
"""Most query pixels per block of the fast query (fewer if ``chunk`` asks): its 4 x 2048 x 256
work buffers stay in cache; 2048 measured faster than 4096 and 16384 in training (bench)."""
FACTORED_CHOICES = ("fast", True, False, "inference")


def axis_neighbours(
    size_out: int, size_in: int, border: str, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two nearest input cells along one axis for every output pixel centre.

    Returns (index, valid, query, centre): index and valid are size_out x 2 (long, bool; column 0
    the lower cell, column 1 the upper one), query is size_out and centre size_out x 2, float64
    coordinates in [-1, 1]. Computed in integers: the lower cell is floor(u) for the output centre
    at input-pixel position u = ((2k + 1) size_in - size_out) / (2 size_out).
    """
    k = torch.arange(size_out, device=device, dtype=torch.long)
    lower = torch.div((2 * k + 1) * size_in - size_out, 2 * size_out, rounding_mode="floor")
    index = torch.stack((lower, lower + 1), dim=1)
    if border == "replicate":  # the centre of the cell outside, the feature of the edge cell
        centre = -1 + (2 * index + 1).double() / size_in
        index = index.clamp(0, size_in - 1)
        return index, torch.ones_like(index, dtype=torch.bool), -1 + (2 * k + 1).double() / size_out, centre
    if border == "clamp":
        index = index.clamp(0, size_in - 1)
    valid = (index >= 0) & (index < size_in)
    query = -1 + (2 * k + 1).double() / size_out
    centre = -1 + (2 * index + 1).double() / size_in
    return index, valid, query, centre


@lru_cache(maxsize=32)
def neighbour_tables(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    border: str,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gather tables of the four neighbours of every output pixel (row-major order).

    Returns index (4 x H*W, long, into the h*w input cells), valid (4 x H*W, bool) and the relative
    coordinate (4 x H*W x 2, ``dtype``): (query - cell centre) * (h, w), where an invalid cell's
    centre reads (0, 0) as in the reference. Cached per sizes, border, dtype and device: the
    tables are shared, never modify them.
    """
    (h, w), (out_h, out_w) = in_size, out_size
    row_index, row_valid, row_query, row_centre = axis_neighbours(out_h, h, border, device)
    col_index, col_valid, col_query, col_centre = axis_neighbours(out_w, w, border, device)
    index, valid, rel = [], [], []
    for r in (0, 1):
        for c in (0, 1):
            ok = row_valid[:, r, None] & col_valid[None, :, c]
            rel_r = (row_query[:, None] - row_centre[:, r, None] * ok) * h
            rel_c = (col_query[None, :] - col_centre[None, :, c] * ok) * w
            index.append(row_index[:, r, None] * w + col_index[None, :, c])
            valid.append(ok)
            rel.append(torch.stack((rel_r, rel_c), dim=-1))
    pixels = out_h * out_w
    return (
        torch.stack(index).reshape(4, pixels),
        torch.stack(valid).reshape(4, pixels),
        torch.stack(rel).reshape(4, pixels, 2).to(dtype),
    )


@lru_cache(maxsize=32)
def separable_tables(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    border: str,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gather tables of the fast query (:mod:`models.query_mlp`), one per axis.

    Returns rows (H x 2) and cols (W x 2), long: the lower and upper neighbour cell along each
    axis, an index outside the grid replaced by h (rows) or w (cols), the zero row and column
    of the padded cell grid; and rel (4 x H x W x 2, ``dtype``) of :func:`neighbour_tables`.
    Cached like it: never modify them.
    """
    (h, w), (out_h, out_w) = in_size, out_size
    row_index, row_valid, _, _ = axis_neighbours(out_h, h, border, device)
    col_index, col_valid, _, _ = axis_neighbours(out_w, w, border, device)
    rel = neighbour_tables(in_size, out_size, border, dtype, device)[2]
    return (
        torch.where(row_valid, row_index, h),
        torch.where(col_valid, col_index, w),
        rel.view(4, out_h, out_w, 2),
    )


def implicit_query(
    feat: Tensor,
    guide: Tensor,
    mlp: nn.Sequential,
    border: str = "zero",
    chunk: int = 16384,
    factored: bool | str = "fast",
) -> Tensor:
    """Local implicit upsampling of ``feat`` to the grid of ``guide``.

    feat: N x c x h x w, guide: N x g x H x W, mlp: (c + g + 2) -> (c_out + 1) features, Linear
    layers with ReLU between them. chunk: query pixels of one image per MLP call; each call runs
    4 * chunk rows. Returns N x c_out x H x W: the softmax(last output)-weighted sum of the four
    predictions.

    ``factored=False`` is the plain formulation (the test oracle): concatenate [cell feature,
    guide feature, relative coordinate] for each of the four neighbours and run the MLP.
    ``factored=True`` computes the same function faster: the first layer is linear in its input,
    so its cell term is computed once per low-resolution cell and gathered, its guide term (and
    bias) once per query pixel instead of four times, and the coordinate term as two fused
    multiply-adds; the hidden activations are then updated in place (with gradients, the
    out-of-place ops autograd needs). ``factored="inference"`` uses it only when
    gradients are off (with gradients the plain form). ``factored="fast"`` (the default) runs the
    hand-written autograd Function of :mod:`models.query_mlp` (factored first layer, blocks of
    whole query rows or images, recomputed first hidden layer, dense weight-gradient products),
    in training and inference alike; it is the fastest in both (bench/bench_ramsf.py).
    """
    if factored not in FACTORED_CHOICES:
        raise ValueError(f"factored must be one of {FACTORED_CHOICES}, got {factored!r}")
    if isinstance(factored, str) and factored == "fast":
        return _fast(feat, guide, mlp, border, chunk)
    factored = factored is True or (factored == "inference" and not torch.is_grad_enabled())
    n, c, h, w = feat.shape
    out_h, out_w = guide.shape[-2:]
    index, valid, rel = neighbour_tables((h, w), (out_h, out_w), border, feat.dtype, feat.device)
    gather_rows = torch.where(valid, index, h * w)  # row h*w: the zeros invalid cells read
    cells = feat.permute(0, 2, 3, 1).reshape(n, h * w, c)
    guides = guide.permute(0, 2, 3, 1).reshape(n, out_h * out_w, guide.shape[1])
    first, rest = mlp[0], mlp[1:]
    if factored:
        w_cell, w_guide, w_rel = first.weight.split([c, guide.shape[1], 2], dim=1)
        cells = cells @ w_cell.T
        guides = torch.addmm(first.bias, guides.reshape(-1, guides.shape[-1]), w_guide.T).view(
            n, -1, w_cell.shape[0]
        )
    cells = torch.cat((cells, cells.new_zeros(n, 1, cells.shape[-1])), dim=1)
    in_place = not torch.is_grad_enabled()
    pixels = out_h * out_w
    out = feat.new_empty(n, pixels, rest[-1].out_features - 1)
    for b in range(n):
        for start in range(0, pixels, chunk):
            stop = min(start + chunk, pixels)
            rows = gather_rows[:, start:stop]
            neighbours = cells[b].index_select(0, rows.reshape(-1)).view(4, stop - start, -1)
            if factored:
                hidden = _first_layer(neighbours, guides[b, start:stop], rel[:, start:stop], w_rel, in_place)
                preds = _rest(rest, hidden, in_place)
            else:
                here = guides[b, start:stop].expand(4, -1, -1)
                preds = rest(first(torch.cat((neighbours, here, rel[:, start:stop]), dim=-1)))
            weights = torch.softmax(preds[..., -1:], dim=0)
            out[b, start:stop] = (preds[..., :-1] * weights).sum(dim=0)
    return out.view(n, out_h, out_w, -1).permute(0, 3, 1, 2)


def _fast(feat: Tensor, guide: Tensor, mlp: nn.Sequential, border: str, chunk: int) -> Tensor:
    """implicit_query by the fast Function: N x c x h x w, N x g x H x W -> N x c_out x H x W
    (a permuted view of an N x H x W x c_out tensor, i.e. channels_last memory order)."""
    rows, cols, rel = separable_tables(
        tuple(feat.shape[-2:]), tuple(guide.shape[-2:]), border, feat.dtype, feat.device
    )
    params = [t for layer in mlp if isinstance(layer, nn.Linear) for t in (layer.weight, layer.bias)]
    chunk = min(chunk, FAST_BLOCK_PIXELS)
    out = fast_query(feat.permute(0, 2, 3, 1), guide.permute(0, 2, 3, 1), rows, cols, rel, params, chunk)
    return out.permute(0, 3, 1, 2)


def _first_layer(neighbours: Tensor, guides: Tensor, rel: Tensor, w_rel: Tensor, in_place: bool) -> Tensor:
    """Pre-activation of the factored first layer: gathered cell term (4 x P x k, owned) + guide
    term with bias (P x k) + relative coordinate (4 x P x 2) times its weights (k x 2)."""
    if not in_place:
        return neighbours + guides + rel @ w_rel.T
    neighbours += guides
    neighbours.addcmul_(rel[..., :1], w_rel[:, 0])
    return neighbours.addcmul_(rel[..., 1:], w_rel[:, 1])


def _rest(layers: nn.Sequential, hidden: Tensor, in_place: bool) -> Tensor:
    """The MLP after its first Linear (ReLU, Linear, ...), with in-place ReLUs when allowed."""
    if not in_place:
        return layers(hidden)
    for layer in layers:
        hidden = hidden.relu_() if isinstance(layer, nn.ReLU) else layer(hidden)
    return hidden


def make_mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """Linear layers with ReLU between them: in -> hidden[0] -> ... -> out (rows x features)."""
    sizes = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
    return nn.Sequential(*layers)


class QueryStage(nn.Module):
    """One alignment stage: N x in_channels x h x w (+ guide N x guide_width x H' x W')
    -> N x out_channels x H' x W'."""

    def __init__(
        self,
        in_channels: int,
        guide_width: int,
        out_channels: int,
        mlp_hidden: Sequence[int],
        border: str,
        query_chunk: int,
        factored_query: bool | str = "fast",
    ):
        super().__init__()
        self.mlp = make_mlp(in_channels + guide_width + 2, mlp_hidden, out_channels + 1)
        self.border = border
        self.query_chunk = query_chunk
        self.factored_query = factored_query

    def forward(self, feat: Tensor, guide: Tensor) -> Tensor:
        return implicit_query(feat, guide, self.mlp, self.border, self.query_chunk, self.factored_query)


class CSFPA(nn.Module):
    """Spectral features of ``lr`` aligned to the detail map, in ``stages`` implicit stages.

    Stage k of S (k = 1..S) queries the grid ceil(H / 2^(S-k)) x ceil(W / 2^(S-k)), guided by the
    encoded detail map adaptively max-pooled to that grid (sizes taken from the input at run time).
    Intermediate stages output ``stage1_width`` channels, the last one ``lr_channels``.
    padding: how the two encoders' 3x3 convolutions pad (``models.blocks.PADDINGS``).
    """

    def __init__(
        self,
        lr_channels: int,
        width: int,
        guide_width: int,
        mlp_hidden: Sequence[int],
        stage1_width: int,
        stages: int,
        border: str,
        query_chunk: int,
        factored_query: bool | str = "fast",
        padding: str = "zeros",
    ):
        super().__init__()
        self.detail_encoder = ConvPReLU(width // 4, guide_width, padding)
        self.spectral_encoder = ConvPReLU(lr_channels, width, padding)
        self.stages = nn.ModuleList(
            QueryStage(
                width if k == 0 else stage1_width,
                guide_width,
                lr_channels if k == stages - 1 else stage1_width,
                mlp_hidden,
                border,
                query_chunk,
                factored_query,
            )
            for k in range(stages)
        )

    def forward(self, lr: Tensor, detail: Tensor) -> Tensor:
        """lr: N x C x h x w, detail: N x width/4 x H x W -> N x C x H x W."""
        spatial = self.detail_encoder(detail)
        feat = self.spectral_encoder(lr)
        height, width = detail.shape[-2:]
        for k, stage in enumerate(self.stages):
            factor = 2 ** (len(self.stages) - 1 - k)
            size = (math.ceil(height / factor), math.ceil(width / factor))
            guide = spatial if factor == 1 else F.adaptive_max_pool2d(spatial, size)
            feat = stage(feat, guide)
        return feat
