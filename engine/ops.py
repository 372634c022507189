"""Array kernels shared by the layers: padding, im2col and col2im on channel-major tensors.

Inside the engine, feature maps are laid out channel-first, batch-second: ``(C, N, H, W)``.
With that layout a convolution is one ``(F, C*kh*kw) @ (C*kh*kw, N*Ho*Wo)`` product whose
result is already ``(F, N, Ho, Wo)``: no transpose on the way in or out (measured 1.3-3x faster
than NCHW here). The public API speaks NCHW; `engine.model.Model` converts at the edges.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

Padding = tuple[int, int, int, int]  # (top, bottom, left, right)


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a sliding window: floor((size + pads - kernel) / stride) + 1."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def pad_chw(x: np.ndarray, pad: Padding, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x: (C, N, H, W)`` by ``pad`` with a constant ``value``."""
    top, bottom, left, right = pad
    if not any(pad):
        return x
    c, n, h, w = x.shape
    out = np.full((c, n, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def padded_size(hw: tuple[int, int], pad: Padding) -> tuple[int, int]:
    """``(H + top + bottom, W + left + right)``."""
    return hw[0] + pad[0] + pad[1], hw[1] + pad[2] + pad[3]


def unpad_chw(x: np.ndarray, pad: Padding) -> np.ndarray:
    """Inverse of `pad_chw`: crop ``pad`` from the last two axes (a view)."""
    top, bottom, left, right = pad
    h, w = x.shape[2], x.shape[3]
    return x[:, :, top : h - bottom, left : w - right]


def window_views(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int):
    """Yield ``(i, j, view)`` for every kernel offset: ``view = xp[:, :, i::s, j::s]`` of shape (C, N, Ho, Wo)."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


def window_stack(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int, *, writeable: bool = False) -> np.ndarray:
    """Every kernel offset's window view at once: ``(kh, kw, C, N, Ho, Wo)``, ``[i, j]`` being the
    `window_views` view for offset ``(i, j)``.

    One NumPy call then copies or writes them all: with two training threads, every call that
    releases the GIL costs a hand-off of it (measured: ~15 us each), so fewer, larger calls win.
    """
    if kh + stride * (ho - 1) > xp.shape[2] or kw + stride * (wo - 1) > xp.shape[3]:
        raise ValueError(f"{ho}x{wo} windows of {kh}x{kw}, stride {stride}, do not fit in {xp.shape[2]}x{xp.shape[3]}")
    sc, sn, sh, sw = xp.strides
    shape = (kh, kw, xp.shape[0], xp.shape[1], ho, wo)
    return as_strided(xp, shape, (sh, sw, sc, sn, sh * stride, sw * stride), writeable=writeable)


def _with_ones_row(rows: int, length: int, ones_row: bool, dtype) -> np.ndarray:
    """``(rows [+ 1], length)``; the extra last row is ones (a bias column then adds inside the product)."""
    out = np.empty((rows + ones_row, length), dtype=dtype)
    if ones_row:
        out[rows] = 1
    return out


def im2col(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int, *, ones_row: bool = False) -> np.ndarray:
    """Unfold padded ``xp: (C, N, Hp, Wp)`` into ``cols: (C*kh*kw [+ 1], N*Ho*Wo)``.

    Row order is (c, i, j), matching a PyTorch weight ``[F, C, kh, kw]`` reshaped to ``(F, C*kh*kw)``;
    ``ones_row`` appends a row of ones for the bias. One strided copy (see `window_stack`).
    """
    c, n = xp.shape[0], xp.shape[1]
    cols = _with_ones_row(c * kh * kw, n * ho * wo, ones_row, xp.dtype)
    cols[: c * kh * kw].reshape(c, kh, kw, n, ho, wo)[...] = window_stack(xp, kh, kw, stride, ho, wo).transpose(2, 0, 1, 3, 4, 5)
    return cols


def col2im(
    cols: np.ndarray, padded_shape: tuple[int, int, int, int], kh: int, kw: int, stride: int, ho: int, wo: int
) -> np.ndarray:
    """Adjoint of `im2col`: fold ``cols: (C*kh*kw, N*Ho*Wo)`` back into ``(C, N, Hp, Wp)``, summing overlaps.

    kh*kw strided slice-adds; np.add.at was 1.6-5x slower here.
    """
    c, n = padded_shape[0], padded_shape[1]
    cols6 = cols.reshape(c, kh, kw, n, ho, wo)
    out = np.zeros(padded_shape, dtype=cols.dtype)
    for i, j, view in window_views(out, kh, kw, stride, ho, wo):
        view += cols6[:, i, j]
    return out


class Grid(NamedTuple):
    """Where a stride-1 convolution lays its padded input out flat (see `flat_padded`).

    Each image takes a block of ``rows * cols`` grid positions. Neighbouring rows and images share
    their zero borders (a row's right pad is the next row's left pad), so the positions computed
    and later dropped are only ``rows * cols / (Ho * Wo) - 1`` of the work: 6% for a padded 3x3 on
    32x32, against 13% with a border of its own for every row and image.
    """

    h: int
    w: int
    rows: int  # grid rows per image: H plus the shared vertical gap
    cols: int  # grid row length: W plus the shared horizontal gap
    top: int  # zero rows above the image inside its block
    left: int  # zero columns left of each image row
    ho: int
    wo: int
    k: int

    @property
    def size(self) -> int:
        return self.rows * self.cols

    @property
    def tail(self) -> int:
        """Zeros past the last block, so every kernel offset reads a full-length slice."""
        return (self.k - 1) * (self.cols + 1)

    def pixels(self, flat: np.ndarray, n: int) -> np.ndarray:
        """The ``(C, n, H, W)`` view of the image pixels in ``flat: (C, n * size + ...)``."""
        blocks = flat[:, : n * self.size].reshape(flat.shape[0], n, self.rows, self.cols)
        return blocks[:, :, self.top : self.top + self.h, self.left : self.left + self.w]

    def outputs(self, flat: np.ndarray, n: int) -> np.ndarray:
        """The ``(F, n, Ho, Wo)`` view of the valid output positions in ``flat: (F, n * size)``."""
        return flat.reshape(flat.shape[0], n, self.rows, self.cols)[:, :, : self.ho, : self.wo]


def stride1_grid(hw: tuple[int, int], pad: Padding, k: int) -> Grid:
    """The flat layout for a stride-1 ``k x k`` convolution of ``hw`` maps padded by ``pad``.

    The gap between rows must hold the larger pad (a window wraps into the next row's left pad)
    and leave room for every output column: ``max(left, right, left + right - k + 1)``; the same
    holds between images, row for column.
    """
    h, w = hw
    top, bottom, left, right = pad
    rows = h + max(top, bottom, top + bottom - k + 1)
    cols = w + max(left, right, left + right - k + 1)
    return Grid(h, w, rows, cols, top, left, h + top + bottom - k + 1, w + left + right - k + 1, k)


def flat_padded(x: np.ndarray, grid: Grid) -> np.ndarray:
    """``x: (C, N, H, W)`` laid out on ``grid`` and flattened to ``(C, N * grid.size + grid.tail)``, zeros elsewhere.

    Output ``(n, y, x)`` sits at position ``n * size + y * cols + x``; kernel offset ``(i, j)``
    reads the input at that position ``+ i * cols + j`` (see `im2col_flat`).
    """
    c, n = x.shape[0], x.shape[1]
    flat = np.zeros((c, n * grid.size + grid.tail), dtype=x.dtype)
    grid.pixels(flat, n)[...] = x
    return flat


def im2col_flat(flat: np.ndarray, start: int, length: int, k: int, wp: int, *, ones_row: bool = False) -> np.ndarray:
    """Stride-1 im2col on the padded grid: ``cols[(c, i, j), p] = flat[c, start + p + i*Wp + j]``
    (``ones_row``: plus a last row of ones, as in `im2col`).

    Each row is one contiguous run, so unfolding streams memory instead of k*k*N*Ho short strided
    runs. Columns at grid positions past the valid output (x >= Wo or y >= Ho) are computed and
    later dropped: a few percent more arithmetic for much faster copies.
    """
    c = flat.shape[0]
    if start + length + (k - 1) * (wp + 1) > flat.shape[1]:
        raise ValueError(f"grid block {start}+{length} with kernel {k} runs past the flat input ({flat.shape[1]})")
    sc, sp = flat.strides
    cols = _with_ones_row(c * k * k, length, ones_row, flat.dtype)
    cols[: c * k * k].reshape(c, k, k, length)[...] = as_strided(flat[:, start:], (c, k, k, length), (sc, wp * sp, sp, sp), writeable=False)
    return cols


def col2im_flat(cols: np.ndarray, length: int, k: int, wp: int) -> np.ndarray:
    """Adjoint of `im2col_flat` for one block: ``(C*k*k, length)`` -> ``(C, length + (k-1)*(Wp+1))``."""
    c = cols.shape[0] // (k * k)
    cols4 = cols.reshape(c, k, k, length)
    out = np.zeros((c, length + (k - 1) * (wp + 1)), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            off = i * wp + j
            out[:, off : off + length] += cols4[:, i, j]
    return out


def nchw_to_cnhw(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W) -> (C, N, H, W)`` (a view)."""
    return x.transpose(1, 0, 2, 3)


def cnhw_to_nchw(x: np.ndarray) -> np.ndarray:
    """``(C, N, H, W) -> (N, C, H, W)`` (a view); 2-D ``(N, D)`` arrays pass through."""
    return x.transpose(1, 0, 2, 3) if x.ndim == 4 else x
