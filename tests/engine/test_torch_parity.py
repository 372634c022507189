"""Parity with PyTorch in float32: every layer type, whole networks, the losses and the optimizers.

The engine's weights are copied into its PyTorch twin (`bench.torch_twin`, the one the benchmark
runs) and outputs, kept activations, losses, input gradients and parameter gradients are
compared: max abs error <= 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; install the bench extra (pip install torch==2.13.0) to run the parity tests"
)
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.torch_twin import torch_layer, torch_twin  # noqa: E402
from engine.registry import build_layer  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.optim import SGD, Adam  # noqa: E402
from engine.presets import preset_spec  # noqa: E402
from engine.registry import REGISTRY as LAYER_TYPES  # noqa: E402
from engine.specs import parse_layer  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    # PyTorch's own note that "same" with an even kernel copies the input; the result is still exact
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning"),
]

ATOL = 1e-4


def _t(x: np.ndarray, grad: bool = False):
    return torch.tensor(np.array(x), requires_grad=grad)


def assert_close(engine: np.ndarray, reference, what: str, atol: float = ATOL) -> None:
    ref = reference.detach().numpy() if isinstance(reference, torch.Tensor) else np.asarray(reference)
    assert engine.shape == ref.shape, f"{what}: shape {engine.shape} != torch {ref.shape}"
    err = float(np.abs(engine.astype(np.float64) - ref.astype(np.float64)).max(initial=0.0))
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:g}"



def assert_grads_close(grads: dict[str, np.ndarray], module) -> None:
    """The engine's gradients have the module's parameter names and PyTorch's ``.grad`` values."""
    assert set(grads) == {name for name, _ in module.named_parameters()}
    for name, p in module.named_parameters():
        assert_close(grads[name], p.grad, f"{name} gradient")

# ---- every layer type ---------------------------------------------------------------------------

LAYER_CASES = [
    ({"type": "conv2d", "filters": 4, "kernel_size": 3}, (3, 9, 12)),
    ({"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": 1}, (3, 9, 12)),
    ({"type": "conv2d", "filters": 5, "kernel_size": 4, "padding": "same"}, (2, 7, 10)),
    ({"type": "conv2d", "filters": 5, "kernel_size": 2, "padding": "same", "bias": False}, (3, 8, 5)),
    ({"type": "conv2d", "filters": 3, "kernel_size": 5, "stride": 3, "padding": 2}, (1, 11, 8)),
    ({"type": "conv2d", "filters": 6, "kernel_size": 1}, (4, 5, 6)),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "valid"}, (3, 6, 6)),
    ({"type": "relu"}, (3, 6, 7)),
    ({"type": "leaky_relu", "alpha": 0.1}, (3, 6, 7)),
    ({"type": "sigmoid"}, (3, 6, 7)),
    ({"type": "tanh"}, (10,)),
    ({"type": "maxpool2d", "pool_size": 2}, (3, 7, 10)),
    ({"type": "maxpool2d", "pool_size": 3, "stride": 2, "padding": 1}, (3, 7, 10)),
    ({"type": "maxpool2d", "pool_size": 2, "stride": 1, "padding": 1}, (2, 5, 6)),
    ({"type": "avgpool2d", "pool_size": 2}, (3, 7, 10)),
    ({"type": "avgpool2d", "pool_size": 3, "stride": 2, "padding": 1}, (3, 7, 10)),
    ({"type": "avgpool2d", "pool_size": 3, "stride": 3}, (2, 8, 7)),
    ({"type": "global_avgpool2d"}, (5, 6, 7)),
    ({"type": "batchnorm2d"}, (3, 5, 6)),  # evaluation: the running statistics in both
    ({"type": "batchnorm2d", "momentum": 0.3, "eps": 1e-3, "affine": False}, (2, 4, 5)),
    ({"type": "dropout", "rate": 0.5}, (3, 4, 5)),  # evaluation: the identity in both
    ({"type": "flatten"}, (3, 4, 5)),
    ({"type": "dense", "units": 7}, (12,)),
    ({"type": "dense", "units": 3, "bias": False}, (12,)),
    ({"type": "softmax"}, (6,)),
]


def test_every_layer_type_is_covered():
    assert {c[0]["type"] for c in LAYER_CASES} == set(LAYER_TYPES)


@pytest.mark.parametrize(("spec_dict", "in_shape"), LAYER_CASES, ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(LAYER_CASES)])
def test_layer_forward_and_backward_match_torch(spec_dict, in_shape):
    spec = parse_layer(spec_dict)
    layer = build_layer(spec, in_shape, np.random.default_rng(0), np.float32)
    rng = np.random.default_rng(1)
    for p in layer.params.values():
        p[...] = rng.normal(size=p.shape).astype(np.float32)
    for name, b in getattr(layer, "buffers", {}).items():  # running variances stay positive
        b[...] = (rng.random(b.shape) + 0.5 if name.endswith("var") else rng.normal(size=b.shape)).astype(np.float32)
    n = 3
    x = rng.normal(size=(n, *in_shape)).astype(np.float32)  # public layout
    x_engine = np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if x.ndim == 4 else x.copy()
    out, cache = layer.forward(x_engine, train=False)
    out_public = out.transpose(1, 0, 2, 3) if out.ndim == 4 else out
    proj = rng.normal(size=out_public.shape).astype(np.float32)
    dout = np.ascontiguousarray(proj.transpose(1, 0, 2, 3)) if proj.ndim == 4 else proj
    dx, grads = layer.backward(dout, cache)
    dx_public = dx.transpose(1, 0, 2, 3) if dx.ndim == 4 else dx

    module = torch_layer(spec, in_shape, layer.params, getattr(layer, "buffers", {})).eval()
    xt = _t(x, grad=True)
    yt = module(xt)
    (yt * _t(proj)).sum().backward()
    assert_close(out_public, yt, "output")
    assert_close(dx_public, xt.grad, "input gradient")
    assert_grads_close(grads, module)


# ---- whole networks -----------------------------------------------------------------------------

CONV_NET = {
    "version": 1,
    "input_shape": [3, 17, 14],
    "layers": [
        {"type": "conv2d", "filters": 6, "kernel_size": 4, "padding": "same"},
        {"type": "leaky_relu", "alpha": 0.1},
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "sigmoid"},
        {"type": "avgpool2d", "pool_size": 3, "stride": 2, "padding": 1},
        {"type": "conv2d", "filters": 5, "kernel_size": 2, "padding": "valid", "bias": False},
        {"type": "tanh"},
        {"type": "maxpool2d", "pool_size": 2, "stride": 1, "padding": 1},
        {"type": "dropout", "rate": 0.3},
        {"type": "flatten"},
        {"type": "dense", "units": 7},
        {"type": "softmax"},
    ],
}

NETWORKS = {
    "tiny-vgg": (preset_spec("tiny-vgg", (3, 64, 64), 10), 4),
    "lenet5": (preset_spec("lenet5", (1, 28, 28), 10), 8),
    "nin": (preset_spec("nin", (3, 32, 32), 6), 4),
    "mlp": (preset_spec("mlp", (1, 28, 28), 10), 8),
    "conv-net": (CONV_NET, 5),
}


@pytest.fixture(params=list(NETWORKS), scope="module")
def network(request):
    spec, n = NETWORKS[request.param]
    model = Model.build(spec, seed=3)
    rng = np.random.default_rng(4)
    for name, p in model.params.items():  # non-zero biases, so a bias mix-up shows
        if name.endswith("bias"):
            p[...] = rng.normal(scale=0.1, size=p.shape).astype(np.float32)
    x = rng.random((n, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.output_shape[0], size=n)
    return model, torch_twin(model), x, y


def test_network_activations_match_torch(network):
    model, twin, x, _ = network
    res = model.forward(x, keep=True)
    h = _t(x)
    with torch.no_grad():
        for i, module in enumerate(twin.layers):
            h = module(h)
            assert_close(res.activations[i], h, f"layer {i} ({model.spec.layers[i].type}) output")
    assert_close(res.output, h, "output")


def _train_mode(model: Model) -> bool:
    """Training passes (which keep the convolutions' unfolding) where no dropout would make them random."""
    return all(layer.type != "dropout" for layer in model.spec.layers)


def test_network_cross_entropy_and_gradients_match_torch(network):
    model, twin, x, y = network
    res = model.loss_and_grads(x, y, loss="cross_entropy", train=_train_mode(model))
    logits_net = twin.layers[:-1] if model.ends_with_softmax else twin
    twin.zero_grad()
    logits = logits_net(_t(x))
    loss = F.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    assert abs(res.loss - loss.item()) <= ATOL
    assert_close(res.probabilities, torch.softmax(logits, dim=1), "probabilities")
    assert_grads_close(res.grads, twin)


def test_network_mse_and_gradients_match_torch(network):
    model, twin, x, y = network
    res = model.loss_and_grads(x, y, loss="mse", train=_train_mode(model))
    twin.zero_grad()
    out = twin(_t(x))
    target = F.one_hot(torch.from_numpy(y), out.shape[1]).to(out.dtype)
    loss = (0.5 * (target - out) ** 2).sum() / out.shape[0]
    loss.backward()
    assert abs(res.loss - loss.item()) <= ATOL
    assert_grads_close(res.grads, twin)


def test_network_input_gradient_matches_torch(network):
    model, twin, x, _ = network
    res = model.forward(x)
    proj = np.random.default_rng(5).normal(size=res.output.shape).astype(np.float32)
    dx, grads = model.backward(proj, res.caches, need_dx=True)
    twin.zero_grad()
    xt = _t(x, grad=True)
    (twin(xt) * _t(proj)).sum().backward()
    assert_close(dx, xt.grad, "input gradient")
    assert_grads_close(grads, twin)


# ---- the twin itself ----------------------------------------------------------------------------

SMALL_NET = {
    "version": 1,
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"}, {"type": "dense", "units": 4}, {"type": "softmax"},
    ],
}  # fmt: skip


def test_twin_state_dict_keys_are_the_engine_parameter_names():
    model = Model.build(CONV_NET, seed=0)
    twin = torch_twin(model)
    assert list(twin.state_dict()) == list(model.params)
    for name, value in twin.state_dict().items():
        assert np.array_equal(value.numpy(), model.params[name]), name
    assert not twin.training


def test_twin_of_a_spec_has_the_engine_initial_weights_and_params_replace_them():
    model = Model.build(SMALL_NET, seed=0)
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        assert_close(model.forward(x).output, torch_twin(SMALL_NET)(_t(x)), "output", atol=1e-6)
        new = {"layers.4.bias": np.arange(4, dtype=np.float32)}
        twin = torch_twin(model, new)
    assert np.array_equal(twin.state_dict()["layers.4.bias"].numpy(), new["layers.4.bias"])
    assert np.array_equal(twin.state_dict()["layers.0.weight"].numpy(), model.params["layers.0.weight"])
    with pytest.raises(KeyError, match="layers.9.weight"):
        torch_twin(model, {"layers.9.weight": np.zeros(1, np.float32)})


def test_twin_batchnorm_takes_weights_and_running_statistics():
    """Evaluation-mode batch normalization: ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    spec = SimpleNamespace(type="batchnorm2d", eps=1e-3, momentum=0.2, affine=True)
    params = {"weight": rng.normal(size=3).astype(np.float32), "bias": rng.normal(size=3).astype(np.float32)}
    buffers = {"running_mean": rng.normal(size=3).astype(np.float32), "running_var": rng.random(3).astype(np.float32) + 0.5}
    module = torch_layer(spec, (3, 4, 5), params, buffers).eval()
    assert (module.eps, module.momentum, module.affine) == (1e-3, 0.2, True)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    c = (slice(None), None, None)
    expected = (x - buffers["running_mean"][c]) / np.sqrt(buffers["running_var"][c] + 1e-3) * params["weight"][c] + params["bias"][c]
    with torch.no_grad():
        assert_close(expected, module(_t(x)), "batchnorm2d output", atol=1e-5)
    assert set(torch_layer(SimpleNamespace(type="batchnorm2d", eps=1e-5, momentum=0.1, affine=False), (3, 4, 5)).state_dict()) == {
        "running_mean", "running_var", "num_batches_tracked"}


# ---- optimizers ---------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": (lambda: SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd-momentum": (lambda: SGD(lr=0.1, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "sgd-nesterov": (lambda: SGD(lr=0.05, momentum=0.8, nesterov=True), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    "sgd-weight-decay": (
        lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.05),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05),
    ),
    "sgd-nesterov-weight-decay": (
        lambda: SGD(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1),
    ),
    "adam": (lambda: Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam-weight-decay": (
        lambda: Adam(lr=0.02, beta1=0.8, beta2=0.99, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch_over_steps(name):
    make_engine, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    params = {"layers.0.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "layers.0.bias": rng.normal(size=4).astype(np.float32)}
    tparams = {k: nn.Parameter(_t(v)) for k, v in params.items()}
    opt, topt = make_engine(), make_torch(list(tparams.values()))
    for step in range(5):
        if step == 3:  # hyperparameters may change between steps
            opt.lr *= 0.5
            for group in topt.param_groups:
                group["lr"] *= 0.5
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        opt.step(params, grads)
        for k, p in tparams.items():
            p.grad = _t(grads[k])
        topt.step()
        for k in params:
            assert_close(params[k], tparams[k], f"{name} step {step + 1}: {k}", atol=1e-5)
    assert opt.steps == 5


def test_mse_formula_matches_torch_expression():
    from engine.losses import mean_squared_error, softmax_cross_entropy

    rng = np.random.default_rng(0)
    out = rng.random((6, 4)).astype(np.float32)
    y = np.array([0, 3, 2, 1, 1, 0])
    value, dout = mean_squared_error(out, y)
    ot = _t(out, grad=True)
    target = F.one_hot(torch.from_numpy(y), 4).float()
    ref = (0.5 * (target - ot) ** 2).sum() / 6
    ref.backward()
    assert abs(value - ref.item()) <= 1e-6
    assert_close(dout, ot.grad, "mse gradient", atol=1e-6)

    logits = (rng.normal(size=(6, 4)) * 30).astype(np.float32)  # large logits: still stable
    value, dlogits, p = softmax_cross_entropy(logits, y)
    lt = _t(logits, grad=True)
    ref = F.cross_entropy(lt, torch.from_numpy(y))
    ref.backward()
    assert abs(value - ref.item()) <= ATOL
    assert_close(dlogits, lt.grad, "cross-entropy gradient", atol=1e-6)
    assert_close(p, torch.softmax(lt, dim=1), "probabilities", atol=1e-6)
