"""2-D convolution (and its 1x1 "network in network" case) as im2col + one matrix product."""

from __future__ import annotations

import numpy as np

from engine import ops
from engine.layers.base import Layer, ReceptiveField, Shape, ShapeError, require_spatial, window_receptive_field
from engine.specs import Conv2D

GRID_MAX_WASTE = 1.3  # padded-grid positions per valid output position, at most (see _use_grid)
# Per block of images. Training already runs in cache-sized micro-batches (Model.micro_batch_size),
# so blocks mostly bound what one call unfolds; 8 MB measured best (fewer NumPy calls per step
# let two shard threads overlap better: 5-7% off their steps; one thread: flat from 2 to 64 MB).
CHUNK_BYTES = 1 << 23


def resolve_padding(padding: int | str, kernel: int) -> ops.Padding:
    """(top, bottom, left, right) for an int, "valid" or "same" (PyTorch: the extra pixel of an even kernel goes after)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        before = (kernel - 1) // 2
        after = kernel - 1 - before
        return (before, after, before, after)
    return (padding, padding, padding, padding)  # type: ignore[return-value]


class Conv2DLayer(Layer):
    """``x: (C, N, H, W) -> out: (F, N, Ho, Wo)``, ``Ho = (H + pads - k) // stride + 1``.

    Parameters in PyTorch layout: ``weight: (F, C, k, k)``, ``bias: (F,)``.
    Ref: CS231n conv_forward_fast / PyTorch ``nn.Conv2d``.
    """

    spec: Conv2D

    def __init__(self, spec: Conv2D, in_shape: Shape, rng: np.random.Generator, dtype=np.float32):
        super().__init__(spec, in_shape)
        if spec.padding == "same" and spec.stride != 1:
            raise ShapeError("padding 'same' needs stride 1 (as in PyTorch); give padding as a number instead")
        self.pad = resolve_padding(spec.padding, spec.kernel_size)
        self.output_shape(in_shape)
        c = in_shape[0]
        k = spec.kernel_size
        fan_in = c * k * k
        bound = np.sqrt(6.0 / fan_in)  # He-uniform: keeps activation variance steady through relu stacks
        self.params = {"weight": rng.uniform(-bound, bound, size=(spec.filters, c, k, k)).astype(dtype)}
        if spec.bias:
            self.params["bias"] = np.zeros(spec.filters, dtype=dtype)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = require_spatial(in_shape, "put conv2d before flatten/dense")
        k, s = self.spec.kernel_size, self.spec.stride
        top, bottom, left, right = self.pad
        if h + top + bottom < k or w + left + right < k:
            raise ShapeError(f"input {h}x{w} (padded {h + top + bottom}x{w + left + right}) is smaller than kernel_size {k}")
        return (
            self.spec.filters,
            ops.conv_output_size(h, k, s, top, bottom),
            ops.conv_output_size(w, k, s, left, right),
        )

    def macs(self, in_shape: Shape) -> int:
        f, ho, wo = self.output_shape(in_shape)
        return f * ho * wo * in_shape[0] * self.spec.kernel_size**2

    def receptive_field(self, rf: ReceptiveField, in_shape: Shape) -> ReceptiveField:
        return window_receptive_field(rf, self.spec.kernel_size, self.spec.stride, self.pad[0])

    def _geometry(self, x: np.ndarray) -> tuple[int, int, int]:
        """``(Ho, Wo, images per chunk)``: chunks keep each im2col block about `CHUNK_BYTES` rather than
        one unfolded copy of a whole batch (hundreds of MB for a large one, streamed through memory)."""
        k, s = self.spec.kernel_size, self.spec.stride
        top, bottom, left, right = self.pad
        ho = ops.conv_output_size(x.shape[2], k, s, top, bottom)
        wo = ops.conv_output_size(x.shape[3], k, s, left, right)
        per_image = x.shape[0] * k * k * ho * wo * x.itemsize
        return ho, wo, max(1, CHUNK_BYTES // per_image)

    def _cols(self, x: np.ndarray, n0: int, n1: int, ho: int, wo: int) -> np.ndarray:
        """im2col of images ``n0:n1``: ``(C*k*k [+ 1], (n1-n0)*Ho*Wo)``, with a ones row when there is a bias."""
        k = self.spec.kernel_size
        xp = ops.pad_chw(x[:, n0:n1], self.pad)
        bias = "bias" in self.params
        if k == 1 and self.spec.stride == 1 and not bias:
            return xp.reshape(xp.shape[0], -1)  # 1x1 "network in network": no unfolding at all
        return ops.im2col(xp, k, k, self.spec.stride, ho, wo, ones_row=bias)

    def _use_grid(self, h: int, w: int) -> bool:
        """Whether the input-gradient pass folds on the flat grid: for stride 1, unless the dropped
        positions would cost more arithmetic than the contiguous adds save (measured: up to ~1.3x
        extra is a win; 1.2-1.3x faster than strided col2im on the benchmark nets). The forward pass
        always unfolds by strided windows: with no dropped positions it measured as fast or faster."""
        if self.spec.stride != 1 or self.spec.kernel_size == 1:
            return False
        g = self._grid_of((h, w))
        return g.size <= GRID_MAX_WASTE * g.ho * g.wo

    def _matrix(self) -> np.ndarray:
        """``(F, C*k*k [+ 1])``: the weight, plus the bias as a last column (its unfolded row is ones)."""
        w = self.params["weight"]
        w2 = w.reshape(w.shape[0], -1)
        return np.concatenate([w2, self.params["bias"][:, None]], axis=1) if "bias" in self.params else w2

    def forward(self, x, *, train=False, rng=None):
        """Cache: ``(x, cols)``. ``cols`` is the unfolded input, kept when training on a batch that
        unfolds in one block of at most `CHUNK_BYTES` (micro-batches are sized for that), so the
        weight gradient needs no second unfolding (measured 6% off a CIFAR-style step on one
        thread); larger batches unfold again rather than hold every layer's copy."""
        wb = self._matrix()
        f = wb.shape[0]
        n = x.shape[1]
        ho, wo, chunk = self._geometry(x)
        out = np.empty((f, n * ho * wo), dtype=x.dtype)
        step = ho * wo
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            cols = self._cols(x, n0, n1, ho, wo)
            np.matmul(wb, cols, out=out[:, n0 * step : n1 * step])
        keep = train and 0 < n <= chunk and cols.nbytes <= CHUNK_BYTES
        return out.reshape(f, n, ho, wo), (x, cols if keep else None)

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        x, cols = cache
        grads = {}
        if need_grads and cols is not None:  # kept by a training forward pass: no second unfolding
            sums = _GradSums()
            sums.add(cols, dout.reshape(dout.shape[0], -1))
            grads, need_grads = sums.result(self.params), False
        if need_dx and self._use_grid(x.shape[2], x.shape[3]):
            dx, more = self._backward_grid(dout, x, need_grads)
        elif need_dx or need_grads:
            dx, more = self._backward_strided(dout, x, need_dx, need_grads)
        else:
            dx, more = None, {}
        return dx, {**grads, **more}

    def _backward_strided(self, dout, x, need_dx: bool, need_grads: bool):
        """Backward by strided unfolding and folding, block by block: ``(dx or None, grads)``."""
        w = self.params["weight"]
        f, c, k, _ = w.shape
        w2 = w.reshape(f, -1)
        n = x.shape[1]
        ho, wo, chunk = self._geometry(x)
        step = ho * wo
        d2 = dout.reshape(f, -1)
        grads = _GradSums() if need_grads else None
        dx = np.empty_like(x) if need_dx else None
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            dc = d2[:, n0 * step : n1 * step]
            if need_grads:
                grads.add(self._cols(x, n0, n1, ho, wo), dc)  # unfolded again: a whole batch's copy would not fit the cache
            if need_dx:
                dcols = w2.T @ dc
                padded = (c, n1 - n0, *ops.padded_size(x.shape[2:], self.pad))
                if k == 1 and self.spec.stride == 1:
                    dxp = dcols.reshape(padded)
                else:
                    dxp = ops.col2im(dcols, padded, k, k, self.spec.stride, ho, wo)
                dx[:, n0:n1] = ops.unpad_chw(dxp, self.pad)
        return dx, grads.result(self.params) if need_grads else {}

    # ---- stride 1, input gradient: fold on the flat grid (see ops.Grid, ops.col2im_flat) -------
    def _grid_of(self, hw: tuple[int, int]) -> ops.Grid:
        return ops.stride1_grid(hw, self.pad, self.spec.kernel_size)

    def _grid_chunk(self, c: int, g: ops.Grid, itemsize: int) -> int:
        """Images per block: the block's unfolded input and its output together stay near `CHUNK_BYTES`."""
        per_image = (c * g.k**2 + self.spec.filters) * g.size * itemsize
        return max(1, CHUNK_BYTES // per_image)

    def _backward_grid(self, dout, x, need_grads: bool):
        """The input-gradient backward pass for stride 1 (see `_use_grid`): ``(dx, grads)``."""
        w = self.params["weight"]
        f, c, k, _ = w.shape
        w2 = w.reshape(f, -1)
        n = x.shape[1]
        g = self._grid_of(x.shape[2:])
        flat = ops.flat_padded(x, g)
        chunk = self._grid_chunk(c, g, dout.itemsize)
        grads = _GradSums() if need_grads else None
        dx = np.empty_like(x)
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            length = (n1 - n0) * g.size
            dfull = np.zeros((f, length), dtype=dout.dtype)  # zero at the dropped grid positions
            g.outputs(dfull, n1 - n0)[...] = dout[:, n0:n1]
            if need_grads:
                # unfolded again: the forward pass kept none (a larger batch, or not training)
                grads.add(ops.im2col_flat(flat, n0 * g.size, length, k, g.cols, ones_row="bias" in self.params), dfull)
            dx[:, n0:n1] = g.pixels(ops.col2im_flat(w2.T @ dfull, length, k, g.cols), n1 - n0)
        return dx, grads.result(self.params) if need_grads else {}


class _GradSums:
    """Weight and bias gradients summed over blocks: ``[dW | db]^T += cols @ dout^T`` (the ones row of
    ``cols`` gives the bias). The transpose ``(C*k*k [+ 1], F)``: ``cols @ dout.T`` ran ~30% faster in
    OpenBLAS here than ``dout @ cols.T`` (the long axis is the reduction either way).
    """

    def __init__(self):
        self.total: np.ndarray | None = None

    def add(self, cols: np.ndarray, dout_block: np.ndarray) -> None:
        """``cols: (C*k*k [+ 1], P)``, ``dout_block: (F, P)`` (zeros at dropped grid positions add nothing)."""
        part = cols @ dout_block.T
        if self.total is None:
            self.total = part
        else:
            self.total += part

    def result(self, params: dict[str, np.ndarray]) -> dict:
        w = params["weight"]
        rows = w[0].size
        total = self.total if self.total is not None else np.zeros((rows + ("bias" in params), w.shape[0]), dtype=w.dtype)
        grads = {"weight": np.ascontiguousarray(total[:rows].T).reshape(w.shape)}
        if "bias" in params:
            grads["bias"] = total[rows].copy()
        return grads
