"""The array kernels under the layers: padding, window stacks, im2col (against an index formula) and col2im (its adjoint)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ops, reference
from engine.registry import build_layer
from engine.specs import parse_layer


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "before", "after", "expected"),
    [(7, 3, 1, 0, 0, 5), (7, 3, 2, 0, 0, 3), (7, 3, 2, 1, 1, 4), (10, 4, 1, 1, 2, 10), (5, 5, 3, 2, 2, 2), (2, 2, 2, 0, 0, 1)],
)
def test_conv_output_size(size, kernel, stride, before, after, expected):
    assert ops.conv_output_size(size, kernel, stride, before, after) == expected


def test_pad_and_unpad():
    x = np.arange(2 * 3 * 2 * 3, dtype=np.float64).reshape(2, 3, 2, 3)
    xp = ops.pad_chw(x, (1, 2, 0, 1), value=-7.0)
    assert xp.shape == (2, 3, 5, 4)
    assert (xp[:, :, 0] == -7).all() and (xp[:, :, 3:] == -7).all() and (xp[:, :, :, 3] == -7).all()
    np.testing.assert_array_equal(xp[:, :, 1:3, 0:3], x)
    np.testing.assert_array_equal(ops.unpad_chw(xp, (1, 2, 0, 1)), x)
    assert ops.pad_chw(x, (0, 0, 0, 0)) is x


def test_im2col_matches_index_formula():
    """cols[(c, i, j), (n, oh, ow)] = xp[c, n, oh * s + i, ow * s + j]: PyTorch's weight order (c, kh, kw)."""
    rng = np.random.default_rng(0)
    c, n, hp, wp, k, s = 2, 3, 7, 8, 3, 2
    xp = rng.normal(size=(c, n, hp, wp))
    ho, wo = (hp - k) // s + 1, (wp - k) // s + 1
    cols = ops.im2col(xp, k, k, s, ho, wo)
    assert cols.shape == (c * k * k, n * ho * wo)
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                for b in range(n):
                    for oh in range(ho):
                        for ow in range(wo):
                            assert cols[ci * k * k + i * k + j, b * ho * wo + oh * wo + ow] == xp[ci, b, oh * s + i, ow * s + j]


geometry = st.tuples(
    st.integers(1, 3),  # channels
    st.integers(1, 3),  # batch
    st.integers(1, 5),  # kernel
    st.integers(1, 3),  # stride
    st.integers(0, 5),  # extra height beyond the kernel
    st.integers(0, 5),  # extra width beyond the kernel
)


def _sizes(geo) -> tuple[int, int, int, int, int, int, int, int]:
    """``(c, n, k, s, Hp, Wp, Ho, Wo)`` of a drawn geometry."""
    c, n, k, s, dh, dw = geo
    hp, wp = k + dh, k + dw
    return c, n, k, s, hp, wp, (hp - k) // s + 1, (wp - k) // s + 1


@settings(max_examples=40, deadline=None)
@given(geometry, st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(geo, seed):
    """<im2col(x), y> == <x, col2im(y)> for every geometry: col2im sums overlaps exactly once."""
    c, n, k, s, hp, wp, ho, wo = _sizes(geo)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c, n, hp, wp))
    y = rng.normal(size=(c * k * k, n * ho * wo))
    lhs = float(np.sum(ops.im2col(x, k, k, s, ho, wo) * y))
    rhs = float(np.sum(x * ops.col2im(y, x.shape, k, k, s, ho, wo)))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 3),
    st.sampled_from([0, 1, 2, "same", "valid"]),
    st.integers(5, 9),
    st.integers(5, 9),
    st.booleans(),
)
def test_conv_forward_matches_the_reference_for_any_geometry(c, f, k, s, padding, h, w, bias):
    if padding == "same":
        s = 1
    spec = {"type": "conv2d", "filters": f, "kernel_size": k, "stride": s, "padding": padding, "bias": bias}
    layer = build_layer(parse_layer(spec), (c, h, w), np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(1)
    for p in layer.params.values():
        p[...] = rng.normal(size=p.shape)
    x = rng.normal(size=(2, c, h, w))
    out, _ = layer.forward(np.ascontiguousarray(x.transpose(1, 0, 2, 3)))
    expected, _ = reference.conv2d_forward(x, layer.params["weight"], layer.params.get("bias"), s, padding)
    assert out.shape[0] == expected.shape[1] and out.shape[2:] == expected.shape[2:]
    assert (f, *out.shape[2:]) == layer.output_shape((c, h, w))
    np.testing.assert_allclose(out.transpose(1, 0, 2, 3), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(geometry, st.integers(0, 2**32 - 1))
def test_window_stack_holds_every_window_view(geo, seed):
    c, n, k, s, hp, wp, ho, wo = _sizes(geo)
    xp = np.random.default_rng(seed).normal(size=(c, n, hp, wp))
    stack = ops.window_stack(xp, k, k, s, ho, wo)
    assert stack.shape == (k, k, c, n, ho, wo) and not stack.flags.writeable
    for i, j, view in ops.window_views(xp, k, k, s, ho, wo):
        np.testing.assert_array_equal(stack[i, j], view)


def test_window_stack_and_flat_unfolding_refuse_windows_past_the_input():
    """Both are raw strided views: a wrong geometry must raise, not read past the array."""
    xp = np.zeros((1, 1, 5, 5))
    with pytest.raises(ValueError, match="do not fit"):
        ops.window_stack(xp, 3, 3, 2, 3, 2)
    flat = np.zeros((2, 30))
    with pytest.raises(ValueError, match="runs past"):
        ops.im2col_flat(flat, 10, 15, 3, 4)


def test_ones_row_appends_ones_for_the_bias():
    rng = np.random.default_rng(0)
    xp = rng.normal(size=(2, 3, 6, 5))
    plain = ops.im2col(xp, 3, 3, 1, 4, 3)
    with_ones = ops.im2col(xp, 3, 3, 1, 4, 3, ones_row=True)
    np.testing.assert_array_equal(with_ones[:-1], plain)
    np.testing.assert_array_equal(with_ones[-1], np.ones(plain.shape[1]))
    flat = rng.normal(size=(2, 40))
    plain = ops.im2col_flat(flat, 2, 20, 3, 5)
    with_ones = ops.im2col_flat(flat, 2, 20, 3, 5, ones_row=True)
    np.testing.assert_array_equal(with_ones[:-1], plain)
    np.testing.assert_array_equal(with_ones[-1], np.ones(20))
