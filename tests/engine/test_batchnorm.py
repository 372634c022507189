"""batchnorm2d: PyTorch parity in training and evaluation (forward, backward, running statistics,
five SGD steps), batch statistics over the whole batch whatever the split, and buffers kept apart
from the parameters (the optimizer never sees them; checkpoints store them under PyTorch's names)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.checkpoint import checkpoint_bytes, load_checkpoint
from engine.model import Model
from engine.optim import SGD

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from bench.torch_twin import torch_twin  # noqa: E402

SPEC = {
    "input_shape": [3, 10, 10],
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "batchnorm2d", "momentum": 0.2, "eps": 1e-4},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 5, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d", "affine": False},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ],
}


def _batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, size=(n, 3, 10, 10)), rng.integers(0, 3, size=n)


def _model(dtype=np.float64) -> Model:
    model = Model.build(SPEC, seed=3, dtype=dtype)
    rng = np.random.default_rng(7)  # non-trivial scale, shift and running statistics
    for name, arr in model.state().items():
        if name.endswith(("1.weight", "running_var")):
            arr[...] = rng.uniform(0.5, 2.0, arr.shape)
        elif name.endswith(("1.bias", "running_mean")):
            arr[...] = rng.normal(0, 0.5, arr.shape)
    return model


def _twin64(model: Model):
    """The PyTorch twin in float64 with the engine's exact float64 values (not rounded through float32)."""
    twin = torch_twin(model).double()
    with torch.no_grad():
        for name, tensor in twin.state_dict().items():
            if name in model.state():
                tensor.copy_(torch.from_numpy(model.state()[name]))
    return twin


@pytest.mark.parametrize("train", [True, False])
def test_forward_backward_and_running_statistics_match_pytorch(train):
    model = _model()
    x, y = _batch()
    twin = _twin64(model).train(train)
    xt = torch.tensor(x, requires_grad=True)
    out_t = twin(xt)
    loss_t = torch.nn.functional.cross_entropy(out_t, torch.tensor(y))
    loss_t.backward()

    res = model.loss_and_grads(x, y, train=train, rng=np.random.default_rng(0))
    assert res.loss == pytest.approx(loss_t.item(), rel=1e-10)
    named = dict(twin.named_parameters())
    for name, g in res.grads.items():
        np.testing.assert_allclose(g, named[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    # the input gradient, through every batchnorm (the training path mixes the whole batch)
    fwd = model.forward(x, train=train, rng=np.random.default_rng(0))
    np.testing.assert_allclose(fwd.output, out_t.detach().numpy(), rtol=1e-9, atol=1e-10)
    buffers = dict(twin.named_buffers())
    if train:
        assert set(res.buffers) == {n for n in model.buffers}
        for name, arr in res.buffers.items():
            np.testing.assert_allclose(arr, buffers[name].numpy(), rtol=1e-10, err_msg=name)
    else:
        assert res.buffers == {}


def test_input_gradient_matches_pytorch_in_training():
    model = _model()
    x, _ = _batch()
    twin = _twin64(model).train(True)
    xt = torch.tensor(x, requires_grad=True)
    out = twin(xt)
    dout = np.random.default_rng(1).normal(size=out.shape)
    out.backward(torch.tensor(dout))
    fwd = model.forward(x, train=True, rng=np.random.default_rng(0))
    dx, _ = model.backward(dout, fwd.caches)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_five_sgd_steps_match_pytorch_in_float32():
    model = _model(np.float32)
    twin = torch_twin(model).train(True)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    opt = SGD(lr=0.05, momentum=0.9)
    for step in range(5):
        x, y = _batch(8, seed=step)
        res = model.loss_and_grads(x.astype(np.float32), y, rng=np.random.default_rng(step))
        opt.step(model.params, res.grads)
        model.apply_buffers(res.buffers)
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(x, dtype=torch.float32)), torch.tensor(y)).backward()
        opt_t.step()
    theirs = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    for name, arr in model.state().items():
        np.testing.assert_allclose(arr, theirs[name], rtol=2e-4, atol=2e-5, err_msg=name)
    x, _ = _batch(4, seed=9)
    twin.eval()
    np.testing.assert_allclose(model.predict_proba(x.astype(np.float32)),
                               torch.softmax(twin(torch.tensor(x, dtype=torch.float32)), 1).detach().numpy(), atol=2e-5)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_training_uses_the_whole_batch_whatever_the_split(shards, monkeypatch):
    model = _model()
    x, y = _batch(9)
    whole = model._loss_and_grads(x, y, "cross_entropy", True, np.random.default_rng(0))
    monkeypatch.setattr(Model, "micro_batch_size", lambda self: 2)  # would split into five parts
    res = model.loss_and_grads(x, y, shards=shards, rng=np.random.default_rng(0))
    assert res.loss == whole.loss
    for name in whole.grads:
        np.testing.assert_array_equal(res.grads[name], whole.grads[name])
    for name in whole.buffers:
        np.testing.assert_array_equal(res.buffers[name], whole.buffers[name])


def test_buffers_are_not_parameters_and_survive_a_checkpoint():
    model = _model(np.float32)
    assert set(model.buffers) == {"layers.1.running_mean", "layers.1.running_var",
                                  "layers.5.running_mean", "layers.5.running_var"}
    assert not set(model.buffers) & set(model.params)
    assert "layers.5.weight" not in model.params  # affine=False: no scale or shift
    assert model.info[1].parameters == 8 and model.info[5].parameters == 0
    before = {k: v.copy() for k, v in model.buffers.items()}
    x, y = _batch()
    res = model.loss_and_grads(x.astype(np.float32), y, rng=np.random.default_rng(0))
    assert not set(res.grads) & set(model.buffers)
    SGD(lr=0.1).step(model.params, res.grads)
    for k, v in model.buffers.items():  # the step alone leaves them; applying the batch's statistics moves them
        np.testing.assert_array_equal(v, before[k])
    model.apply_buffers(res.buffers)
    assert not np.array_equal(model.buffers["layers.1.running_mean"], before["layers.1.running_mean"])
    with np.load(__import__("io").BytesIO(checkpoint_bytes(model, classes=["a", "b", "c"], step=1))) as npz:
        assert {"layers.1.running_mean", "layers.1.running_var"} <= set(npz.files)
        assert npz["layers.1.running_var"].shape == (4,)
    loaded = load_checkpoint(checkpoint_bytes(model, classes=["a", "b", "c"], step=1)).model
    for k, v in model.state().items():
        np.testing.assert_array_equal(loaded.state()[k], v)


def test_evaluation_uses_running_statistics_and_is_per_image():
    model = _model()
    x, _ = _batch(5)
    one_by_one = np.concatenate([model.forward(x[i : i + 1]).output for i in range(5)])
    np.testing.assert_allclose(model.forward(x).output, one_by_one, rtol=1e-12)
