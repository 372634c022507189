"""The model: spec validation, per-layer facts (hand-computed), whole-network gradients, freezing,
seeded determinism and thread safety."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine import reference
from engine.model import Model
from engine.optim import SGD, Adam
from engine.specs import SpecError, parse_spec, spec_to_dict
from tests.engine.conftest import assert_grad_close, numerical_grad


def spec(input_shape, *layers) -> dict:
    return {"version": 1, "input_shape": list(input_shape), "layers": list(layers)}


def conv(filters, k, stride=1, padding=0, **kw) -> dict:
    return {"type": "conv2d", "filters": filters, "kernel_size": k, "stride": stride, "padding": padding, **kw}


RELU = {"type": "relu"}
FLATTEN = {"type": "flatten"}
SOFTMAX = {"type": "softmax"}


def dense(units, **kw) -> dict:
    return {"type": "dense", "units": units, **kw}


def pool(kind, k, **kw) -> dict:
    return {"type": kind, "pool_size": k, **kw}


# ---- spec validation ----------------------------------------------------------------------------

SHAPE_ERRORS = [
    pytest.param(
        spec((1, 4, 4), conv(2, 3), RELU, pool("maxpool2d", 2), RELU, pool("maxpool2d", 2)),
        4,
        "layer 4 (maxpool2d): input 1x1 is smaller than pool_size 2",
        id="maxpool-after-1x1",
    ),
    pytest.param(spec((1, 8, 8), conv(4, 3), dense(10)), 1, "layer 1 (dense): needs a flat vector but gets a 4x6x6 feature map", id="dense-before-flatten"),
    pytest.param(spec((3, 5, 6), SOFTMAX), 0, "layer 0 (softmax): needs a flat vector of class scores but gets a 3x5x6 map", id="softmax-on-map"),
    pytest.param(spec((1, 8, 8), FLATTEN, conv(2, 3)), 1, "layer 1 (conv2d): needs a (C, H, W) feature map but gets a flat vector of 64", id="conv-after-flatten"),
    pytest.param(spec((1, 8, 8), FLATTEN, pool("avgpool2d", 2)), 1, "layer 1 (avgpool2d): needs a (C, H, W) feature map", id="pool-after-flatten"),
    pytest.param(spec((1, 8, 8), FLATTEN, {"type": "global_avgpool2d"}), 1, "layer 1 (global_avgpool2d): needs a (C, H, W)", id="global-pool-after-flatten"),
    pytest.param(spec((1, 4, 9), conv(2, 5)), 0, "layer 0 (conv2d): input 4x9 (padded 4x9) is smaller than kernel_size 5", id="kernel-too-big"),
    pytest.param(spec((1, 9, 9), conv(2, 3, stride=2, padding="same")), 0, "layer 0 (conv2d): padding 'same' needs stride 1", id="same-with-stride"),
    pytest.param(spec((1, 9, 9), pool("maxpool2d", 3, padding=2)), 0, "layer 0 (maxpool2d): padding 2 must be at most half of pool_size 3", id="pool-padding-too-big"),
    pytest.param(spec((1, 9, 9), RELU, pool("avgpool2d", 2, padding=2)), 1, "layer 1 (avgpool2d): padding 2", id="avgpool-padding-too-big"),
]


@pytest.mark.parametrize(("bad", "index", "message"), SHAPE_ERRORS)
def test_shape_errors_name_layer_type_and_shapes(bad, index, message):
    with pytest.raises(SpecError) as info:
        Model.build(bad)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.layer_index == index


FIELD_ERRORS = [
    pytest.param(spec((1, 8, 8), RELU, {"type": "conv3d", "filters": 2}), 1, "layer 1: unknown type 'conv3d'", id="unknown-type"),
    pytest.param(spec((1, 8, 8), {"filters": 2}), 0, "layer 0: unknown type None", id="missing-type"),
    pytest.param(spec((1, 8, 8), conv(2, 3, dilation=2)), 0, "layer 0 (conv2d): unknown field(s) ['dilation']", id="unknown-field"),
    pytest.param(spec((1, 8, 8), {"type": "conv2d", "kernel_size": 3}), 0, "layer 0 (conv2d): missing required field 'filters'", id="missing-field"),
    pytest.param(spec((1, 8, 8), RELU, {"type": "leaky_relu", "alpha": float("nan")}), 1, "layer 1 (leaky_relu): alpha must be a finite number", id="nan-alpha"),
    pytest.param(spec((1, 8, 8), {"type": "dropout", "rate": float("inf")}), 0, "layer 0 (dropout): rate must be a finite number", id="inf-rate"),
    pytest.param(spec((1, 8, 8), conv(float("nan"), 3)), 0, "layer 0 (conv2d): filters must be an integer", id="nan-filters"),
    pytest.param(spec((1, 8, 8), conv(True, 3)), 0, "layer 0 (conv2d): filters must be an integer, got True", id="bool-filters"),
    pytest.param(spec((1, 8, 8), conv(2, True)), 0, "layer 0 (conv2d): kernel_size must be an integer", id="bool-kernel"),
    pytest.param(spec((1, 8, 8), conv(2, 3, padding=True)), 0, "layer 0 (conv2d): padding must be an integer", id="bool-padding"),
    pytest.param(spec((1, 8, 8), conv(2, 3.0)), 0, "layer 0 (conv2d): kernel_size must be an integer, got 3.0", id="float-kernel"),
    pytest.param(spec((1, 8, 8), conv(2, 3, padding="full")), 0, "layer 0 (conv2d): padding must be an integer or one of ['same', 'valid']", id="bad-padding-string"),
    pytest.param(spec((1, 8, 8), conv(2, 3, bias=1)), 0, "layer 0 (conv2d): bias must be true or false", id="int-bias"),
    pytest.param(spec((1, 8, 8), {"type": "dropout", "rate": True}), 0, "layer 0 (dropout): rate must be a finite number", id="bool-rate"),
    pytest.param(spec((1, 8, 8), FLATTEN, dense(False)), 1, "layer 1 (dense): units must be an integer", id="bool-units"),
    pytest.param(spec((1, 8, 8), pool("maxpool2d", 2, stride=False)), 0, "layer 0 (maxpool2d): stride must be an integer", id="bool-stride"),
    pytest.param(spec((1, 8, 8), conv(0, 3)), 0, "layer 0 (conv2d): filters must be at least 1", id="zero-filters"),
    pytest.param(spec((1, 8, 8), {"type": "dropout", "rate": 0.99}), 0, "layer 0 (dropout): rate must be at least 0.0 and at most 0.95", id="rate-too-high"),
    pytest.param(spec((1, 8, 8), "relu"), 0, "layer 0: expected an object", id="layer-not-object"),
]


@pytest.mark.parametrize(("bad", "index", "message"), FIELD_ERRORS)
def test_field_errors_name_layer_and_field(bad, index, message):
    with pytest.raises(SpecError) as info:
        Model.build(bad)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.layer_index == index


SPEC_ERRORS = [
    pytest.param([], "a spec must be an object", id="not-object"),
    pytest.param({**spec((1, 8, 8), RELU), "extra": 1}, "spec: unknown field(s) ['extra']", id="unknown-top-field"),
    pytest.param({**spec((1, 8, 8), RELU), "version": 2}, "spec: version must be 1", id="version-2"),
    pytest.param({**spec((1, 8, 8), RELU), "version": True}, "spec: version must be 1", id="bool-version"),
    pytest.param(spec((2, 8, 8), RELU), "spec: input_shape channels must be 1 (grey) or 3 (RGB), got 2", id="two-channels"),
    pytest.param(spec((True, 8, 8), RELU), "spec: input_shape must be [C, H, W] integers", id="bool-channels"),
    pytest.param(spec((1, 8.0, 8), RELU), "spec: input_shape must be [C, H, W] integers", id="float-height"),
    pytest.param(spec((1, float("nan"), 8), RELU), "spec: input_shape must be [C, H, W] integers", id="nan-height"),
    pytest.param(spec((1, 8), RELU), "spec: input_shape must be [C, H, W] integers", id="two-dims"),
    pytest.param(spec((1, 0, 8), RELU), "spec: input height and width must be between 1 and", id="zero-height"),
    pytest.param(spec((1, 8, 8)), "spec: layers must be a non-empty list", id="no-layers"),
    pytest.param({"version": 1, "input_shape": [1, 8, 8], "layers": {"type": "relu"}}, "spec: layers must be a non-empty list", id="layers-not-list"),
]


@pytest.mark.parametrize(("bad", "message"), SPEC_ERRORS)
def test_spec_level_errors(bad, message):
    with pytest.raises(SpecError) as info:
        Model.build(bad)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.layer_index is None


def test_spec_round_trips_through_dict():
    s = spec((3, 9, 7), conv(4, 2, padding="same"), {"type": "leaky_relu", "alpha": 0.1}, pool("avgpool2d", 3, stride=1, padding=1),
             {"type": "dropout", "rate": 0.25}, FLATTEN, dense(5, bias=False), SOFTMAX)
    parsed = parse_spec(s)
    assert parse_spec(spec_to_dict(parsed)) == parsed
    d = spec_to_dict(parsed)
    assert d["layers"][0] == {"type": "conv2d", "filters": 4, "kernel_size": 2, "stride": 1, "padding": "same", "bias": True}
    assert d["layers"][2] == {"type": "avgpool2d", "pool_size": 3, "stride": 1, "padding": 1}


# ---- facts: receptive fields, parameter counts, multiply-adds (all by hand) -----------------------


def test_receptive_fields_by_hand():
    """Units are input pixels; ``start`` is the centre of the first unit's field (pixel i has centre i).

    0 conv3 s1 p0:   covers pixels 0..2                        -> size 3,  jump 1, start 1
    1 relu:          unchanged
    2 maxpool2 s2:   conv units 0,1 -> pixels 0..3             -> size 4,  jump 2, start 1.5
    3 conv3 s2 p1:   pool units -1,0,1 -> pixels -2..5         -> size 8,  jump 4, start 1.5
    4 avgpool3 s1 p1: conv units -1,0,1 -> pixels -6..9        -> size 16, jump 4, start 1.5
    5 conv4 "same" (1 before, 2 after): units -1..2 -> pixels -12..15 -> size 28, jump 4, start 1.5 + 0.5*4 = 3.5
    6 global_avgpool2d over 4x4 units at centres 3.5, 7.5, 11.5, 15.5 -> pixels -10..29 -> size 40, start 9.5
    7 dense:          unchanged (a flat input)
    """
    m = Model.build(spec((1, 16, 16), conv(2, 3), RELU, pool("maxpool2d", 2), conv(2, 3, stride=2, padding=1),
                         pool("avgpool2d", 3, stride=1, padding=1), conv(2, 4, padding="same"), {"type": "global_avgpool2d"},
                         dense(3)))
    shapes = [i.output_shape for i in m.info]
    assert shapes == [(2, 14, 14), (2, 14, 14), (2, 7, 7), (2, 4, 4), (2, 4, 4), (2, 4, 4), (2,), (3,)]
    expected = [(3, 1, 1), (3, 1, 1), (4, 2, 1.5), (8, 4, 1.5), (16, 4, 1.5), (28, 4, 3.5), (40, 0, 9.5), (40, 0, 9.5)]
    got = [(i.receptive_field.size, i.receptive_field.jump, i.receptive_field.start) for i in m.info]
    assert got == expected


def test_global_receptive_field_of_a_non_square_map_covers_its_longer_side():
    """conv3 on 6x10 gives 4x8 units at centres 1..4 (rows) and 1..8 (columns), jump 1: a global unit
    spans the longer side, columns 0..9 -> size 3 + 7 = 10, centre 1 + 7/2 = 4.5."""
    m = Model.build(spec((1, 6, 10), conv(2, 3), {"type": "global_avgpool2d"}))
    rf = m.info[1].receptive_field
    assert (rf.size, rf.jump, rf.start) == (10, 0, 4.5)


def test_parameter_counts_and_macs_by_hand():
    m = Model.build(spec((3, 12, 10), conv(4, 3, padding=1), RELU, pool("maxpool2d", 2), conv(6, 2, stride=2, bias=False),
                         FLATTEN, dense(7), SOFTMAX))
    assert [i.output_shape for i in m.info] == [(4, 12, 10), (4, 12, 10), (4, 6, 5), (6, 3, 2), (36,), (7,), (7,)]
    assert [i.parameters for i in m.info] == [4 * 3 * 3 * 3 + 4, 0, 0, 6 * 4 * 2 * 2, 0, 36 * 7 + 7, 0]
    assert m.num_parameters == 112 + 96 + 259
    assert [i.macs for i in m.info] == [4 * 12 * 10 * (3 * 3 * 3), 0, 0, 6 * 3 * 2 * (4 * 2 * 2), 0, 36 * 7, 0]
    assert [i.name for i in m.info] == ["conv2d_1", "relu_1", "maxpool2d_1", "conv2d_2", "flatten_1", "dense_1", "softmax_1"]
    assert [i.input_shape for i in m.info][:2] == [(3, 12, 10), (4, 12, 10)]
    assert sorted(m.params) == ["layers.0.bias", "layers.0.weight", "layers.3.weight", "layers.5.bias", "layers.5.weight"]
    assert m.params["layers.0.weight"].shape == (4, 3, 3, 3)
    assert m.params["layers.5.weight"].shape == (7, 36)


def test_tiny_vgg_counts_by_hand():
    from engine.presets import preset_spec

    m = Model.build(preset_spec("tiny-vgg", (3, 64, 64), 10))
    # 64 -> 62 -> 60 -> 30 -> 28 -> 26 -> 13; conv params 10*C*9 + 10
    assert m.num_parameters == (10 * 3 * 9 + 10) + 3 * (10 * 10 * 9 + 10) + (10 * 13 * 13 * 10 + 10)
    assert m.output_shape == (10,)
    assert m.info[0].macs == 10 * 62 * 62 * 27


# ---- whole-network gradients in float64 ---------------------------------------------------------

GRAD_NET = spec(
    (1, 7, 6),
    conv(3, 3, padding=1),
    {"type": "tanh"},
    pool("maxpool2d", 2),
    conv(4, 2, padding="same", bias=False),
    {"type": "leaky_relu", "alpha": 0.1},
    pool("avgpool2d", 2, stride=1, padding=1),
    {"type": "dropout", "rate": 0.3},
    FLATTEN,
    dense(5),
    {"type": "sigmoid"},
    dense(4),
    SOFTMAX,
)


def _randomize(model: Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.normal(scale=0.5, size=p.shape)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_whole_network_param_gradients_match_finite_differences(loss):
    model = Model.build(GRAD_NET, seed=1, dtype=np.float64)
    _randomize(model, 2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 1, 7, 6))
    y = np.array([0, 3, 1])

    def value() -> float:
        return model.loss_and_grads(x, y, loss=loss, train=True, rng=np.random.default_rng(9)).loss

    res = model.loss_and_grads(x, y, loss=loss, train=True, rng=np.random.default_rng(9))
    assert set(res.grads) == set(model.params)
    for name, p in model.params.items():
        assert res.grads[name].dtype == np.float64
        assert_grad_close(res.grads[name], numerical_grad(value, p), f"{loss}: {name}")


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_whole_network_matches_the_reference_layer_by_layer(loss):
    """`engine.reference` run layer by layer in NCHW gives the loss, probabilities and gradients of
    the model's fused, channel-major training pass (no dropout: its mask is the engine's own draw)."""
    model = Model.build({**GRAD_NET, "layers": [la for la in GRAD_NET["layers"] if la["type"] != "dropout"]}, seed=1, dtype=np.float64)
    _randomize(model, 2)
    x, y = np.random.default_rng(3).normal(size=(3, 1, 7, 6)), np.array([0, 3, 1])
    res = model.loss_and_grads(x, y, loss=loss)
    specs = model.spec.layers[:-1] if loss == "cross_entropy" else model.spec.layers  # softmax fused with the loss
    h, caches = x, []
    for lspec, layer in zip(specs, model.layers):
        h, cache, _ = reference.layer_forward(lspec, layer.params, h)
        caches.append(cache)
    if loss == "cross_entropy":
        value, d, probs = reference.softmax_cross_entropy(h, y)
    else:
        (value, d), probs = reference.mean_squared_error(h, y), h
    grads = {}
    for i in reversed(range(len(specs))):
        d, layer_grads = reference.layer_backward(specs[i], d, caches[i])
        grads.update({f"layers.{i}.{name}": g for name, g in layer_grads.items()})
    assert res.loss == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(res.probabilities, probs, rtol=1e-12, atol=1e-15)
    assert res.grads.keys() == grads.keys() == model.params.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(res.grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)


def test_micro_batches_give_the_whole_batch_results(monkeypatch):
    """Batches run as micro-batches whose largest layer output fits the cache (unless that leaves
    too little work per micro-batch); without dropout the loss, probabilities and gradients equal
    the whole batch's up to float rounding."""
    import engine.model as model_module

    no_dropout = {**GRAD_NET, "layers": [layer for layer in GRAD_NET["layers"] if layer["type"] != "dropout"]}
    model = Model.build(no_dropout, seed=1, dtype=np.float64)
    _randomize(model, 2)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 1, 7, 6)), rng.integers(0, 4, 10)
    largest = max(math.prod(info.output_shape) for info in model.info) * 8
    per_image = sum(info.macs for info in model.info)

    monkeypatch.setattr(model_module, "MICRO_BATCH_MIN_MACS", 1)
    monkeypatch.setattr(model_module, "MICRO_BATCH_BYTES", 100 * largest)
    assert model.micro_batch_size() == 100
    whole = model.loss_and_grads(x, y)
    whole_p = model.predict_proba(x)

    monkeypatch.setattr(model_module, "MICRO_BATCH_BYTES", 3 * largest + 1)
    assert model.micro_batch_size() == 3
    monkeypatch.setattr(model_module, "MICRO_BATCH_MIN_MACS", 4 * per_image)
    assert model.micro_batch_size() == 4  # too little work in 3 images: the work floor wins
    split = model.loss_and_grads(x, y)  # 10 images in 3 parts
    assert math.isclose(split.loss, whole.loss, rel_tol=1e-12)
    np.testing.assert_allclose(split.probabilities, whole.probabilities, rtol=1e-12)
    for name in whole.grads:
        np.testing.assert_allclose(split.grads[name], whole.grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(model.predict_proba(x), whole_p, rtol=1e-12)


def test_losses_by_hand():
    """Cross-entropy of equal logits is log K; MSE is sum 1/2 (t - o)^2 averaged over the batch."""
    m = Model.build(spec((1, 2, 2), FLATTEN, dense(3, bias=False), SOFTMAX), dtype=np.float64)
    m.params["layers.1.weight"][...] = 0.0
    x = np.ones((2, 1, 2, 2))
    res = m.loss_and_grads(x, np.array([0, 2]), loss="cross_entropy")
    assert res.loss == pytest.approx(math.log(3), rel=1e-12)
    np.testing.assert_allclose(res.probabilities, np.full((2, 3), 1 / 3), rtol=1e-12)
    # every output 1/3: per example (1 - 1/3)^2 / 2 + 2 * (1/3)^2 / 2 = 2/9 + 1/9 = 1/3
    res = m.loss_and_grads(x, np.array([0, 2]), loss="mse")
    assert res.loss == pytest.approx(1 / 3, rel=1e-12)
    # without a softmax, cross-entropy takes the output as logits
    logits = Model.build(spec((1, 1, 2), FLATTEN, dense(2, bias=False)), dtype=np.float64)
    logits.params["layers.1.weight"][...] = [[1.0, 0.0], [0.0, 1.0]]
    res = logits.loss_and_grads(np.array([[[[2.0, 0.0]]]]), np.array([1]), loss="cross_entropy")
    assert res.loss == pytest.approx(math.log(1 + math.exp(2.0)), rel=1e-12)


def test_unknown_loss_is_an_error():
    m = Model.build(spec((1, 2, 2), FLATTEN, dense(2)))
    with pytest.raises(ValueError, match="loss must be one of"):
        m.loss_and_grads(np.ones((1, 1, 2, 2), np.float32), np.array([0]), loss="hinge")


def test_input_gradient_via_backward_matches_finite_differences():
    model = Model.build(GRAD_NET, seed=4, dtype=np.float64)
    _randomize(model, 5)
    x = np.random.default_rng(6).normal(size=(2, 1, 7, 6))
    out = model.forward(x)
    proj = np.random.default_rng(7).normal(size=out.output.shape)

    def value() -> float:
        return float(np.sum(model.forward(x).output * proj))

    dx, grads = model.backward(proj, out.caches, need_dx=True)
    assert dx.shape == x.shape
    assert set(grads) == set(model.params)
    assert_grad_close(dx, numerical_grad(value, x), "input gradient")
    # the same gradient from an intermediate layer down: backward from layer 5's output to the input
    mid = model.forward(x, stop=6)
    proj_mid = np.random.default_rng(8).normal(size=mid.output.shape)
    dx_mid, grads_mid = model.backward(proj_mid, mid.caches, need_dx=True)
    assert set(grads_mid) == {"layers.0.weight", "layers.0.bias", "layers.3.weight"}
    assert_grad_close(dx_mid, numerical_grad(lambda: float(np.sum(model.forward(x, stop=6).output * proj_mid)), x), "input gradient from layer 5")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_models_run_in_the_dtype_they_were_built_with(dtype):
    """Also a model without weights: its dtype cannot be read off its parameters."""
    for layers in ([FLATTEN, dense(2)], [FLATTEN, SOFTMAX], [pool("avgpool2d", 2), {"type": "tanh"}]):
        m = Model.build(spec((1, 2, 4), *layers), dtype=dtype)
        for x_dtype in (np.float32, np.float64):
            assert m.forward(np.ones((1, 1, 2, 4), x_dtype)).output.dtype == dtype, (layers, x_dtype)


def test_forward_keep_returns_every_activation_in_nchw():
    model = Model.build(GRAD_NET, seed=0)
    x = np.random.default_rng(0).random((2, 1, 7, 6), dtype=np.float32)
    res = model.forward(x, keep=True)
    assert len(res.activations) == len(model.layers)
    for act, info in zip(res.activations, model.info):
        assert act.shape == (2, *info.output_shape)
        assert act.dtype == np.float32
    np.testing.assert_array_equal(res.activations[-1], res.output)
    np.testing.assert_allclose(res.output.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"input must be \(N, 1, 7, 6\)"):
        model.forward(np.zeros((2, 1, 6, 7), np.float32))


# ---- freezing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_opt", [lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.01), lambda: Adam(lr=0.01, weight_decay=0.01)], ids=["sgd", "adam"])
def test_frozen_layers_get_no_grads_and_do_not_change(make_opt):
    model = Model.build(spec((1, 6, 6), conv(2, 3), RELU, conv(3, 3), FLATTEN, dense(2), SOFTMAX), seed=0)
    model.set_frozen([0, 4])
    assert not model.trainable(0) and model.trainable(2) and not model.trainable(4)
    frozen_before = {k: v.copy() for k, v in model.params.items()}
    opt = make_opt()
    x = np.random.default_rng(0).random((4, 1, 6, 6), dtype=np.float32)
    for _ in range(3):
        res = model.loss_and_grads(x, np.array([0, 1, 1, 0]))
        assert set(res.grads) == {"layers.2.weight", "layers.2.bias"}
        opt.step(model.params, res.grads)
    for name in ("layers.0.weight", "layers.0.bias", "layers.4.weight", "layers.4.bias"):
        np.testing.assert_array_equal(model.params[name], frozen_before[name])
    assert not np.array_equal(model.params["layers.2.weight"], frozen_before["layers.2.weight"])
    # the input gradient still flows through frozen layers
    out = model.forward(x)
    proj = np.random.default_rng(1).normal(size=out.output.shape).astype(np.float32)  # ones would vanish through softmax
    dx, grads = model.backward(proj, out.caches, need_dx=True)
    assert dx is not None and np.abs(dx).sum() > 0
    assert set(grads) == {"layers.2.weight", "layers.2.bias"}
    model.set_frozen([])
    assert set(model.loss_and_grads(x, np.array([0, 1, 1, 0])).grads) == set(model.params)


def test_freezing_a_layer_without_weights_is_an_error():
    model = Model.build(spec((1, 6, 6), conv(2, 3), RELU, FLATTEN, dense(2)))
    with pytest.raises(ValueError, match=r"layers \[1\] have no weights"):
        model.set_frozen([1])
    with pytest.raises(ValueError, match=r"layers \[7\]"):
        model.set_frozen([7])


# ---- determinism and threads ---------------------------------------------------------------------


def test_seeded_build_is_deterministic():
    s = spec((3, 8, 8), conv(4, 3), RELU, FLATTEN, dense(5))
    a, b, c = Model.build(s, seed=7), Model.build(s, seed=7), Model.build(s, seed=8)
    assert set(a.params) == set(b.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
        assert a.params[name].dtype == np.float32
    assert not np.array_equal(a.params["layers.0.weight"], c.params["layers.0.weight"])
    # float64 builds draw the same weights (rounded to float32 they are the float32 build's)
    d = Model.build(s, seed=7, dtype=np.float64)
    np.testing.assert_array_equal(d.params["layers.0.weight"].astype(np.float32), a.params["layers.0.weight"])


def test_dropout_same_seed_same_mask():
    model = Model.build(spec((1, 6, 6), {"type": "dropout", "rate": 0.5}, FLATTEN, dense(3)), seed=0)
    x = np.random.default_rng(0).random((4, 1, 6, 6), dtype=np.float32) + 0.5
    a = model.forward(x, train=True, rng=np.random.default_rng(3), keep=True).activations[0]
    b = model.forward(x, train=True, rng=np.random.default_rng(3), keep=True).activations[0]
    c = model.forward(x, train=True, rng=np.random.default_rng(4), keep=True).activations[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a == 0, c == 0)
    evaluated = model.forward(x, keep=True).activations[0]
    np.testing.assert_array_equal(evaluated, x)


def test_concurrent_forward_and_backward_from_threads_match_serial():
    """Four threads each run a forward pass, all wait, then each runs its backward pass: a layer that
    kept its cache on itself would hand three of them another thread's cache."""
    from engine.presets import preset_spec

    model = Model.build(preset_spec("tiny-vgg", (3, 20, 24), 4), seed=0)
    rng = np.random.default_rng(0)
    inputs = [rng.random((2, 3, 20, 24), dtype=np.float32) for _ in range(4)]
    projections = [rng.normal(size=(2, 4)).astype(np.float32) for _ in range(4)]

    def run(k, barrier=None):
        res = model.forward(inputs[k], keep=True)
        if barrier is not None:
            barrier.wait(timeout=30)
        dx, grads = model.backward(projections[k], res.caches, need_dx=True)
        return res.output, res.activations, dx, grads

    serial = [run(k) for k in range(4)]
    for _ in range(3):
        barrier = threading.Barrier(4)
        with ThreadPoolExecutor(max_workers=4) as pool_:
            parallel = list(pool_.map(lambda k: run(k, barrier), range(4)))
        for (out, acts, dx, grads), (s_out, s_acts, s_dx, s_grads) in zip(parallel, serial):
            np.testing.assert_array_equal(out, s_out)
            for a, b in zip(acts, s_acts):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(dx, s_dx)
            assert set(grads) == set(s_grads)
            for name in s_grads:
                np.testing.assert_array_equal(grads[name], s_grads[name])


def test_passes_leave_the_layers_untouched():
    """Caches are returned, never stored: forward and backward change no attribute of any layer."""
    model = Model.build(GRAD_NET, seed=0)
    before = [dict(vars(layer)) for layer in model.layers]
    x = np.random.default_rng(0).random((2, 1, 7, 6), dtype=np.float32)
    res = model.forward(x, train=True, rng=np.random.default_rng(1), keep=True)
    model.backward(np.ones_like(res.output), res.caches, need_dx=True)
    model.loss_and_grads(x, np.array([0, 1]), rng=np.random.default_rng(2))
    for layer, attrs in zip(model.layers, before):
        assert set(vars(layer)) == set(attrs), f"{type(layer).__name__} gained {set(vars(layer)) - set(attrs)}"
        for name, value in attrs.items():
            assert vars(layer)[name] is value, f"{type(layer).__name__}.{name} was replaced"


def test_predict_proba_adds_softmax_when_missing():
    logits = Model.build(spec((1, 1, 3), FLATTEN, dense(3, bias=False)), dtype=np.float64)
    logits.params["layers.1.weight"][...] = np.eye(3)
    x = np.array([[[[0.0, 1.0, 2.0]]]])
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(logits.predict_proba(x), [e / e.sum()], rtol=1e-12)


def test_copy_is_independent():
    m = Model.build(spec((1, 4, 4), conv(2, 3), FLATTEN, dense(2)), seed=0)
    m.set_frozen([0])
    c = m.copy()
    c.params["layers.0.weight"][...] = 0
    assert np.abs(m.params["layers.0.weight"]).sum() > 0
    assert c.frozen == {0}
    # the copy's layers hold the copy's arrays: a forward pass sees the zeroed weights
    out = c.forward(np.ones((1, 1, 4, 4), np.float32), keep=True).activations[0]
    np.testing.assert_array_equal(out, np.zeros_like(out) + c.params["layers.0.bias"][None, :, None, None])


def test_load_state_checks_names_and_shapes():
    m = Model.build(spec((1, 4, 4), conv(2, 3), FLATTEN, dense(2)), seed=0)
    good = {k: np.full(v.shape, 0.5, np.float32) for k, v in m.params.items()}
    with pytest.raises(ValueError, match=r"missing \['layers.2.bias'\]"):
        m.load_state({k: v for k, v in good.items() if k != "layers.2.bias"})
    with pytest.raises(ValueError, match=r"unexpected \['layers.1.weight'\]"):
        m.load_state({**good, "layers.1.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"layers.2.weight: shape \(8, 2\)"):
        m.load_state({**good, "layers.2.weight": np.zeros((8, 2), np.float32)})
    m.load_state(good)
    assert all(np.all(p == 0.5) for p in m.params.values())


def test_size_limits_refuse_before_allocating():
    """conv(4, 3) on 3x8x8: 4 * (3*3*3 + 1) = 112 weights; activations 4*6*6 = 144 per layer."""
    s = spec((3, 8, 8), conv(4, 3), RELU, FLATTEN, dense(2))
    assert Model.build(s, max_parameters=112 + 144 * 2 + 2, max_values=144 * 3 + 2).num_parameters == 402
    with pytest.raises(SpecError, match=r"layer 0 \(conv2d\): the network would have over 111 parameters") as info:
        Model.build(s, max_parameters=111)
    assert info.value.layer_index == 0
    with pytest.raises(SpecError, match=r"layer 3 \(dense\): the network would have over 401 parameters"):
        Model.build(s, max_parameters=401)
    with pytest.raises(SpecError, match=r"layer 1 \(relu\): the activations of one image would exceed 287 values"):
        Model.build(s, max_values=287)
    with pytest.raises(SpecError, match=r"layer 3 \(dense\)"):
        Model.build(s, max_values=144 * 3 + 1)
