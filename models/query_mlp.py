"""The fast query MLP of one CSFPA stage: a custom autograd Function (forward and backward by hand).

It computes the function of :func:`models.csfpa.implicit_query` with ``factored=False`` (the plain
per-neighbour concatenation, the oracle), in blocks of whole query rows (several whole images per
block when images are small), with three savings:

* the first layer is factored: its cell term ``cells @ W_cell^T`` once per low-resolution cell,
  gathered; its guide term (with the bias) once per query pixel; its coordinate term a K = 2
  product added in place (``addmm_``). Bias adds and ReLUs run in place on the block's tensors;
* only small things are kept for backward: the inputs, and the activations after the first
  hidden layer (by default; ``recompute=True`` keeps none). The widest activation (first hidden
  layer, 4 x P x 256) is recomputed block by block in backward, as it costs no large product;
* backward is dense products per block (``dW += dZ^T A`` accumulated with ``addmm_``), and the
  cell term's gradient is a separable scatter: each neighbour's ``4 x P x k`` gradient is
  summed into the ``(h + 1) x (w + 1)`` cell grid with ``index_add_`` along the query columns,
  then along the query rows (whole rows per index, so few, large adds), and the cell features'
  and W_cell's gradients are then two small products on the ``h x w`` grid.

Layout inside a block: ``nb x 4 x R x W x k`` (images, neighbours, query rows, query columns,
features), flattened to ``M x k`` rows for the products. Only device-agnostic torch ops are used;
the dtype follows the inputs (under autocast the caller casts, see :func:`fast_query`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from models.blocks import autocast_off

_threshold_backward = torch.ops.aten.threshold_backward


def blocks(n: int, height: int, width: int, chunk: int) -> Iterator[tuple[int, int, int, int]]:
    """(b0, b1, r0, r1) blocks of about ``chunk`` query pixels: whole images when one fits,
    else at least one whole row of one image."""
    per_image = height * width
    if chunk >= per_image:
        step = chunk // per_image
        for b0 in range(0, n, step):
            yield b0, min(b0 + step, n), 0, height
        return
    rows = max(1, chunk // width)
    for b in range(n):
        for r0 in range(0, height, rows):
            yield b, b + 1, r0, min(r0 + rows, height)


class _Buffers:
    """Work tensors reused by every block of one call (no allocation, hence no page faults, per
    block): ``get(name, *shape)`` is a view of the first elements of the named buffer."""

    def __init__(self, like: Tensor):
        self.like = like
        self.store: dict[str, Tensor] = {}

    def get(self, name: str, *shape: int) -> Tensor:
        size = math.prod(shape)
        buffer = self.store.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self.store[name] = self.like.new_empty(size)
        return buffer[:size].view(shape)


class _Query:
    """The tensors of one call of the Function and its per-block computations."""

    def __init__(self, cells: Tensor, guides: Tensor, rows: Tensor, cols: Tensor, rel: Tensor, params):
        self.cells, self.guides, self.rows, self.cols = cells, guides, rows, cols
        self.rel_t = rel.permute(3, 0, 1, 2).contiguous()  # 2 x 4 x H x W
        self.weights = list(params[0::2])
        self.biases = list(params[1::2])
        c, g = cells.shape[-1], guides.shape[-1]
        self.w_cell, self.w_guide, self.w_rel = self.weights[0].split([c, g, 2], dim=1)
        _, h, w, _ = cells.shape
        self.padded = (h + 1, w + 1)
        # flat index of every (neighbour, query row, query column) into one padded image's cells
        self.base = (rows.T[:, None, :, None] * (w + 1) + cols.T[None, :, None, :]).reshape(
            4, *rel.shape[1:3]
        )
        self.buffers = _Buffers(cells)

    def cell_term(self) -> Tensor:
        """N*(h+1)*(w+1) x k: the first layer's cell term per cell; zero on the padding row/column."""
        n, h, w, c = self.cells.shape
        k = self.w_cell.shape[0]
        term = self.cells.new_zeros(n, h + 1, w + 1, k)
        term[:, :h, :w] = (self.cells.reshape(-1, c) @ self.w_cell.T).view(n, h, w, k)
        return term.view(-1, k)

    def rel_rows(self, nb: int, r0: int, r1: int) -> Tensor:
        """2 x M: the relative coordinates of the block's rows, repeated over its nb images."""
        block = self.rel_t[:, None, :, r0:r1]
        return block.expand(-1, nb, -1, -1, -1).reshape(2, -1)

    def first(self, term: Tensor, b0: int, b1: int, r0: int, r1: int) -> Tensor:
        """M x k1 first hidden activation (after ReLU) of block images b0:b1, query rows r0:r1,
        in a reused buffer."""
        nb, pixels = b1 - b0, (r1 - r0) * self.guides.shape[2]
        k = self.w_cell.shape[0]
        offset = torch.arange(b0, b1, device=term.device) * (self.padded[0] * self.padded[1])
        index = (offset[:, None, None, None] + self.base[:, r0:r1]).reshape(-1)
        hidden = torch.index_select(term, 0, index, out=self.buffers.get("hidden", index.numel(), k))
        hidden.addmm_(self.rel_rows(nb, r0, r1).T, self.w_rel.T)
        guide = self.guides[b0:b1, r0:r1].reshape(-1, self.guides.shape[-1])
        guide_term = self.buffers.get("guide_term", nb * pixels, k)
        torch.addmm(self.biases[0], guide, self.w_guide.T, out=guide_term)
        hidden.view(nb, 4, pixels, k).add_(guide_term.view(nb, 1, pixels, k))
        return hidden.relu_()

    def layer(self, i: int, x: Tensor, keep: bool) -> Tensor:
        """Layer i (>= 1) of the MLP on M x k rows; ReLU (in place) except after the last. The
        result is a new tensor if ``keep``, else a reused buffer."""
        rows, size = x.shape[0], self.weights[i].shape[0]
        out = x.new_empty(rows, size) if keep else self.buffers.get(f"layer{i}", rows, size)
        torch.addmm(self.biases[i], x, self.weights[i].T, out=out)
        return out if i == len(self.weights) - 1 else out.relu_()


def _blend(y: Tensor, nb: int) -> tuple[Tensor, Tensor, Tensor]:
    """Predictions, softmax weights and blend of the last layer's output y (M x (c + 1)):
    (nb x 4 x P x c, nb x 4 x P x 1, nb x P x c)."""
    y = y.view(nb, 4, -1, y.shape[-1])
    preds = y[..., :-1]
    weights = torch.softmax(y[..., -1:], dim=1)
    return preds, weights, (preds * weights).sum(dim=1)


class QueryMLP(torch.autograd.Function):
    """out (N x H x W x c_out) of cells (N x h x w x c), guides (N x H x W x g), the gather
    tables rows (H x 2), cols (W x 2) (index into the cell grid padded by one zero row and
    column), rel (4 x H x W x 2) and the MLP's (weight, bias) pairs."""

    @staticmethod
    def forward(ctx, cells, guides, rows, cols, rel, chunk, recompute, *params):  # noqa: D102
        q = _Query(cells.contiguous(), guides.contiguous(), rows, cols, rel, params)
        n, height, width, _ = q.guides.shape
        term = q.cell_term()
        out = cells.new_empty(n, height, width, params[-2].shape[0] - 1)
        saved: list[list[Tensor]] = []
        keep = ctx is not None and not recompute
        for b0, b1, r0, r1 in blocks(n, height, width, chunk):
            x = q.first(term, b0, b1, r0, r1)
            kept = []
            for i in range(1, len(q.weights)):
                x = q.layer(i, x, keep)
                kept.append(x)
            out[b0:b1, r0:r1] = _blend(x, b1 - b0)[2].view(b1 - b0, r1 - r0, width, -1)
            saved.append(kept if keep else [])
        if ctx is not None:
            ctx.save_for_backward(q.cells, q.guides, rows, cols, rel, *params)
            ctx.saved_blocks = saved
            ctx.chunk, ctx.recompute = chunk, recompute
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        cells, guides, rows, cols, rel, *params = ctx.saved_tensors
        q = _Query(cells, guides, rows, cols, rel, params)
        n, height, width, _ = guides.shape
        grad_out = grad_out.contiguous()
        layers = len(q.weights)
        grad_w = [torch.zeros_like(w) for w in q.weights]
        grad_b = [torch.zeros_like(b) for b in q.biases]
        k = q.w_cell.shape[0]
        grads = _FirstGrads(
            torch.zeros_like(q.w_guide),
            q.w_rel.new_zeros(2, k),
            grad_b[0],
            torch.empty_like(guides),
            cells.new_zeros(n, *q.padded, k),
        )
        term = q.cell_term()
        for block, (b0, b1, r0, r1) in enumerate(blocks(n, height, width, ctx.chunk)):
            nb = b1 - b0
            acts = [q.first(term, b0, b1, r0, r1)]
            if ctx.recompute:
                for i in range(1, layers):
                    acts.append(q.layer(i, acts[-1], False))
            else:
                acts += ctx.saved_blocks[block]  # kept (a backward may run again: retain_graph)
            preds, weights, _ = _blend(acts.pop(), nb)
            d_out = grad_out[b0:b1, r0:r1].reshape(nb, 1, -1, grad_out.shape[-1])
            score = (preds * d_out).sum(dim=-1, keepdim=True)  # nb x 4 x P x 1
            d_logit = weights * (score - (weights * score).sum(dim=1, keepdim=True))
            grad = torch.cat((weights * d_out, d_logit), dim=-1).view(-1, preds.shape[-1] + 1)
            for i in range(layers - 1, 0, -1):
                x = acts[i - 1]
                grad_w[i].addmm_(grad.T, x)
                grad_b[i].add_(grad.sum(dim=0))
                below = torch.mm(grad, q.weights[i], out=q.buffers.get(f"grad{i}", *x.shape))
                grad = _threshold_backward.grad_input(below, x, 0, grad_input=below)
            _first_backward(q, grad, grads, b0, b1, r0, r1)
        h, w = cells.shape[1:3]
        grad_term = grads.term[:, :h, :w].reshape(-1, k)
        grad_cells = (grad_term @ q.w_cell).view(cells.shape)
        grad_w_cell = grad_term.T @ cells.reshape(-1, cells.shape[-1])
        grad_w[0] = torch.cat((grad_w_cell, grads.w_guide, grads.w_rel_t.T), dim=1)
        grad_params = [g for pair in zip(grad_w, grad_b, strict=True) for g in pair]
        return grad_cells, grads.guides, None, None, None, None, None, *grad_params


class _FirstGrads(NamedTuple):
    """Gradient accumulators of the first layer: W_guide (k x g), W_rel transposed (2 x k), its
    bias (k), the guides (N x H x W x g) and the padded cell term (N x (h+1) x (w+1) x k)."""

    w_guide: Tensor
    w_rel_t: Tensor
    bias: Tensor
    guides: Tensor
    term: Tensor


def _first_backward(q: _Query, grad: Tensor, grads: _FirstGrads, b0: int, b1: int, r0: int, r1: int) -> None:
    """Accumulate the first layer's gradients of one block from grad (M x k1, pre-activation)."""
    nb, width = b1 - b0, q.guides.shape[2]
    k = grad.shape[-1]
    grads.w_rel_t.addmm_(q.rel_rows(nb, r0, r1), grad)
    blocked = grad.view(nb, 4, r1 - r0, width, k)
    # the guide term is shared by the four neighbours: its gradient is their sum
    d_guide = q.buffers.get("d_guide", nb, r1 - r0, width, k)
    torch.add(blocked[:, 0], blocked[:, 1], out=d_guide).add_(blocked[:, 2]).add_(blocked[:, 3])
    d_guide = d_guide.view(-1, k)
    grads.bias.add_(d_guide.sum(dim=0))
    guide = q.guides[b0:b1, r0:r1].reshape(-1, q.guides.shape[-1])
    grads.w_guide.addmm_(d_guide.T, guide)
    torch.mm(d_guide, q.w_guide, out=grads.guides[b0:b1, r0:r1].view(-1, guide.shape[-1]))
    # the cell term: scatter each neighbour's rows to its cells, along columns, then along rows
    target = grads.term[b0:b1]
    for jr in (0, 1):
        along_rows = q.buffers.get("along_rows", nb, r1 - r0, q.padded[1], k).zero_()
        for jc in (0, 1):
            along_rows.index_add_(2, q.cols[:, jc], blocked[:, 2 * jr + jc])
        target.index_add_(1, q.rows[r0:r1, jr], along_rows)


def fast_query(
    cells: Tensor,
    guides: Tensor,
    rows: Tensor,
    cols: Tensor,
    rel: Tensor,
    params: Sequence[Tensor],
    chunk: int,
    recompute: bool = False,
) -> Tensor:
    """Blended query output N x H x W x c_out (see :class:`QueryMLP`).

    Without gradients the blocks run without autograd bookkeeping. Under autocast the inputs and
    parameters are cast to the autocast dtype and the Function runs with autocast off (its
    backward then runs in that dtype too; the casts' gradients flow back to float32 leaves).
    """
    device_type = cells.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        cells, guides, rel = cells.to(dtype), guides.to(dtype), rel.to(dtype)
        params = [p.to(dtype) for p in params]
        with autocast_off(device_type):
            return fast_query(cells, guides, rows, cols, rel, params, chunk, recompute)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (cells, guides, *params))
    if not needs_grad:
        with torch.no_grad():
            return QueryMLP.forward(None, cells, guides, rows, cols, rel, chunk, recompute, *params)
    return QueryMLP.apply(cells, guides, rows, cols, rel, chunk, recompute, *params)
