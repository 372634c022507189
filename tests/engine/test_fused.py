"""Fused layer pairs (engine.layers.fused): the same numbers as the layers run one by one, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from engine import losses, reference
from engine.registry import build_layer
from engine.layers.fused import ReLUMaxPool, fuse
from engine.model import Model
from engine.specs import parse_layer

POOLS = [
    {"pool_size": 2},
    {"pool_size": 3},
    {"pool_size": 2, "stride": 3},
    {"pool_size": 3, "stride": 2, "padding": 1},
    {"pool_size": 2, "stride": 1},
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
def test_relu_maxpool_equals_relu_then_maxpool(pool, dtype):
    """Bit for bit, forward and input gradient, on inputs full of ties (zeros, negatives, positives)."""
    in_shape = (2, 7, 8)
    relu = build_layer(parse_layer({"type": "relu"}), in_shape, np.random.default_rng(0), dtype)
    maxpool = build_layer(parse_layer({"type": "maxpool2d", **pool}), in_shape, np.random.default_rng(0), dtype)
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, size=(2, 3, 7, 8)).astype(dtype)  # engine layout (C, N, H, W)
    x[0] += rng.normal(scale=0.1, size=x[0].shape).astype(dtype)  # and some distinct values

    r, r_cache = relu.forward(x)
    expected, p_cache = maxpool.forward(r)
    fused = ReLUMaxPool(maxpool)
    out, cache = fused.forward(x)
    assert out.dtype == dtype and (out.shape[0], *out.shape[2:]) == fused.output_shape(in_shape)
    np.testing.assert_array_equal(out, expected)

    dout = rng.normal(size=out.shape).astype(dtype)
    expected_dx, _ = relu.backward(maxpool.backward(dout, p_cache)[0], r_cache)
    dx, grads = fused.backward(dout, cache)
    np.testing.assert_array_equal(dx, expected_dx)
    assert grads == {}

    # and both equal the reference's relu then max pool, in public (N, C, H, W) layout
    to_public = (1, 0, 2, 3)
    r, r_cache = reference.relu_forward(x.transpose(to_public).astype(np.float64))
    ref_out, p_cache = reference.maxpool2d_forward(r, pool["pool_size"], pool.get("stride"), pool.get("padding", 0))
    np.testing.assert_array_equal(out.transpose(to_public), ref_out)
    ref_dx, _ = reference.relu_backward(reference.maxpool2d_backward(dout.transpose(to_public).astype(np.float64), p_cache)[0], r_cache)
    tol = 1e-6 if dtype == np.float32 else 1e-12  # overlapping windows sum in float32 there
    np.testing.assert_allclose(dx.transpose(to_public), ref_dx, rtol=tol, atol=tol)


def test_fuse_pairs_only_relu_then_maxpool():
    spec = [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "relu"},
        {"type": "avgpool2d", "pool_size": 2},
        {"type": "leaky_relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "relu"},
    ]
    model = Model.build({"version": 1, "input_shape": [1, 16, 16], "layers": spec})
    units = fuse(model.layers)
    assert [(a, b) for a, b, _ in units] == [(0, 1), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8)]
    assert isinstance(units[1][2], ReLUMaxPool) and units[1][2].pool is model.layers[2]
    assert all(unit is model.layers[a] for a, b, unit in units if b == a + 1)


NET = {
    "version": 1,
    "input_shape": [1, 9, 8],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 4, "kernel_size": 2},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
        {"type": "softmax"},
    ],
}


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("frozen", [(), (0,)])
def test_training_pass_equals_the_layer_by_layer_pass(loss, frozen):
    """`Model.loss_and_grads` runs fused units; the layer-by-layer passes the page and the
    explanations use must give the same loss, probabilities and gradients. Half the input pixels
    are zero (a blank canvas), so many windows tie."""
    model = Model.build(NET, seed=3, dtype=np.float64)
    model.set_frozen(frozen)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 1, 9, 8)) * (rng.random((5, 1, 9, 8)) < 0.5)
    y = rng.integers(0, 3, 5)

    res = model.loss_and_grads(x, y, loss=loss)

    n_layers = len(model.layers) - (loss == "cross_entropy")
    fwd = model.forward(x, stop=n_layers)
    if loss == "cross_entropy":
        value, dout, probs = losses.softmax_cross_entropy(fwd.output, y)
    else:
        value, dout = losses.mean_squared_error(fwd.output, y)
        probs = fwd.output
    _, grads = model.backward(dout, fwd.caches, need_dx=False)

    assert res.loss == value
    np.testing.assert_array_equal(res.probabilities, probs)
    assert set(res.grads) == set(grads) == {n for n in model.params if int(n.split(".")[1]) not in frozen}
    for name in grads:
        np.testing.assert_array_equal(res.grads[name], grads[name], err_msg=name)
    np.testing.assert_array_equal(model.predict_proba(x), model.forward(x).output)
