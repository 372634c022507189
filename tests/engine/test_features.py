"""What a unit looks for: top-k against a loop over images and positions, crop boxes against the
input pixels a unit's gradient reaches, the deconvnet projection against PyTorch's ReLU hooks, and
activation maximization raising the unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import features
from engine.checkpoint import load_checkpoint
from engine.model import Model

PRETRAINED = Path(__file__).resolve().parents[2] / "engine" / "pretrained"
SPEC = {
    "version": 1,
    "input_shape": [3, 12, 12],
    "layers": [
        {"type": "conv2d", "filters": 5, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 6, "kernel_size": 2},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 4},
        {"type": "softmax"},
    ],
}


def small_model(seed: int = 3, dtype=np.float32) -> Model:
    model = Model.build(SPEC, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for name, arr in model.params.items():
        if name.endswith("bias"):
            arr[...] = rng.normal(0, 0.1, arr.shape)
    return model


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 12, 12), dtype=np.uint8)


def loop_top(model: Model, xs: np.ndarray, layer: int, channel: int, k: int) -> list[tuple[int, int, int, float]]:
    """The oracle: each image's first maximum, scanning positions one by one, then the k best images."""
    best = []
    for n, x in enumerate(xs):
        out = model.forward(x[None].astype(np.float32) / 255, stop=layer + 1).output[0, channel]
        value, where = -np.inf, (0, 0)
        for r in range(out.shape[0]):
            for c in range(out.shape[1]):
                if out[r, c] > value:
                    value, where = out[r, c], (r, c)
        best.append((n, *where, float(value)))
    best.sort(key=lambda t: (-t[3], t[0]))
    return best[:k]


@pytest.mark.parametrize("layer", [0, 1, 2, 4])
@pytest.mark.parametrize("batch", [3, 7])
def test_top_k_matches_a_loop_over_images_and_positions(layer, batch):
    model, xs = small_model(), images(20)
    oracle = {c: loop_top(model, xs, layer, c, 5) for c in range(model.info[layer].output_shape[0])}
    calls = []
    every = features.layer_top_activations(model, xs, layer, 5, batch=batch, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (20, 20) and len(calls) == -(-20 // batch)
    for c, expected in oracle.items():
        got = every.channel(c)
        assert [(t.index, t.row, t.col) for t in got] == [e[:3] for e in expected]
        assert np.allclose([t.value for t in got], [e[3] for e in expected], rtol=1e-5)
    one = features.top_activations(model, xs.astype(np.float32) / 255, layer, 1, k=5)
    assert [(t.index, t.row, t.col) for t in one] == [e[:3] for e in oracle[1]]


def test_fewer_images_than_k_and_bad_units():
    model = small_model()
    assert len(features.top_activations(model, images(4), 3, 0, k=9)) == 4
    with pytest.raises(ValueError, match="layer 5 \\(flatten\\) has no maps"):
        features.top_activations(model, images(2), 5, 0)
    with pytest.raises(ValueError, match="channel 6 does not exist"):
        features.top_activations(model, images(2), 3, 6)
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        features.deconv_projection(model, images(1)[0], 9, 0, (0, 0))


def test_crop_boxes_are_the_receptive_field_in_model_info():
    model, xs = small_model(), images(10)
    for layer in (0, 2, 3):
        rf = model.info[layer].receptive_field
        for t in features.top_activations(model, xs, layer, 0, k=4):
            half = (rf.size - 1) / 2
            cy, cx = rf.start + t.row * rf.jump, rf.start + t.col * rf.jump
            assert t.box == (max(0, cy - half), max(0, cx - half), min(12, cy + half + 1), min(12, cx + half + 1))


POSITIVE = {
    "version": 1,
    "input_shape": [1, 13, 13],
    "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1},
        {"type": "avgpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "stride": 2},
    ],
}


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_receptive_box_is_where_a_units_gradient_reaches(layer):
    """With positive weights nothing cancels, so the input pixels a unit's gradient reaches are exactly its receptive field."""
    model = Model.build(POSITIVE, seed=0, dtype=np.float64)
    for arr in model.params.values():
        arr[...] = np.abs(arr) + 0.1
    x = np.ones((1, 1, 13, 13))
    res = model.forward(x, stop=layer + 1)
    _, _, h, w = res.output.shape
    for row, col in [(0, 0), (h - 1, w - 1), (h // 2, w // 3)]:
        dout = np.zeros_like(res.output)
        dout[0, 0, row, col] = 1
        dx, _ = model.backward(dout, res.caches, start=layer + 1)
        ys, xs_ = np.nonzero(dx[0, 0])
        assert features.receptive_box(model, layer, row, col) == (ys.min(), xs_.min(), ys.max() + 1, xs_.max() + 1)


@pytest.mark.torch
@pytest.mark.parametrize("layer, position", [(1, (5, 7)), (2, (2, 3)), (4, (1, 2))])
def test_deconv_projection_matches_pytorch_relu_hooks(layer, position):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; pip install torch==2.13.0")
    from torch import nn

    from bench.torch_twin import torch_twin

    model = small_model()
    x = images(1, seed=4)[0].astype(np.float32) / 255
    ours = features.deconv_projection(model, x, layer, 2, position)
    twin = torch_twin(model)
    for module in twin.modules():
        if isinstance(module, nn.ReLU):  # relu of the incoming gradient, whatever x was
            module.register_full_backward_hook(lambda m, gi, go: (go[0].clamp(min=0),))
    xt = torch.tensor(x[None], requires_grad=True)
    out = twin.layers[: layer + 1](xt)
    dout = torch.zeros_like(out)
    dout[0, 2, position[0], position[1]] = out[0, 2, position[0], position[1]].detach()
    out.backward(dout)
    reference = xt.grad[0].numpy()
    assert ours.shape == x.shape
    assert np.abs(ours - reference).max() <= 1e-4 * max(np.abs(reference).max(), 1e-12)


def test_tv_gradient_and_blur():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6))
    tv = lambda z: 0.5 * (np.sum(np.diff(z, axis=1) ** 2) + np.sum(np.diff(z, axis=2) ** 2))  # noqa: E731
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        numeric[i] = (tv(x + e) - tv(x - e)) / 2e-6
    assert np.allclose(features.tv_gradient(x), numeric, atol=1e-6)
    assert np.allclose(features.gaussian_blur(np.full((1, 6, 6), 0.3), 0.7), 0.3)
    assert features.gaussian_blur(x, 1.0).std() < x.std()


@pytest.fixture(scope="module")
def tiny_vgg() -> Model:
    return load_checkpoint(PRETRAINED / "tiny-vgg-shapes.npz").model


@pytest.mark.parametrize("layer, channel", [(2, 0), (5, 3), (8, 7)])
def test_activation_maximization_raises_the_unit(tiny_vgg, layer, channel):
    rng = np.random.default_rng(1)
    start = features.seed_image(tiny_vgg, rng)
    calls = []
    img = features.activation_maximization(tiny_vgg, layer, channel, rng=rng, start=start, steps=40,
                                           progress=lambda d, t: calls.append(d))
    assert img.shape == (3, 64, 64) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert calls == list(range(1, 41))
    after = features.channel_mean(tiny_vgg, img, layer, channel)
    grey = features.channel_mean(tiny_vgg, np.full((3, 64, 64), 0.5, np.float32), layer, channel)
    assert after > features.channel_mean(tiny_vgg, start, layer, channel) + 0.1 and after > grey + 0.1


def test_activation_maximization_is_reproducible_from_its_seed():
    model = small_model()
    a = features.activation_maximization(model, 3, 1, rng=np.random.default_rng(5), steps=6)
    b = features.activation_maximization(model, 3, 1, rng=np.random.default_rng(5), steps=6)
    assert np.array_equal(a, b)
