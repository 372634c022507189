"""The oracle checked: `engine.reference` against PyTorch and against finite differences.

Every layer type and both losses, in float64: forward outputs, input and parameter gradients
(PyTorch's autograd), batchnorm2d's running statistics in training and evaluation, max pooling's
tie rule and dropout's mask; every backward also against central finite differences (no PyTorch
needed for those). The engine's own tests then compare the engine with `engine.reference`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from engine import reference as R
from tests.engine.conftest import assert_grad_close, kink_free, numerical_grad

TOL = {"rtol": 1e-10, "atol": 1e-12}
SAME_EVEN = "ignore:Using padding='same' with even kernel lengths:UserWarning"  # PyTorch's note; still exact

# batchnorm2d's running statistics for 3 channels, read-only: the reference must not write to them
RUNNING_MEAN = np.array([0.3, -0.5, 1.2])
RUNNING_VAR = np.array([0.8, 1.5, 0.4])
RUNNING_MEAN.flags.writeable = RUNNING_VAR.flags.writeable = False


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed; install the bench extra (pip install torch==2.13.0) to run the parity tests"
    )


@dataclass(frozen=True)
class Case:
    """One configuration: the reference forward, the same layer in ``torch.nn.functional`` and the
    parameter shapes (``params`` reach both as dicts of arrays or tensors)."""

    id: str
    kind: str  # the layer type: its backward is ``R.BACKWARD[kind]``
    x_shape: tuple[int, ...]
    ref: Callable  # (x, params) -> (out, cache)
    torch: Callable  # (F, x, params) -> out
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)


def conv(k, s, p, bias, x_shape=(2, 2, 5, 6), filters=3) -> Case:
    shapes = {"weight": (filters, x_shape[1], k, k), **({"bias": (filters,)} if bias else {})}
    return Case(
        f"conv2d-k{k}-s{s}-p{p}-bias{bias}", "conv2d", x_shape,
        lambda x, q: R.conv2d_forward(x, q["weight"], q.get("bias"), s, p),
        lambda F, x, q: F.conv2d(x, q["weight"], q.get("bias"), stride=s, padding=p),
        shapes,
    )


def pool(kind, k, s, p, x_shape=(2, 3, 7, 6)) -> Case:
    ref = R.maxpool2d_forward if kind == "maxpool2d" else R.avgpool2d_forward
    if kind == "maxpool2d":
        def torch_fn(F, x, q):
            return F.max_pool2d(x, k, s or k, p)
    else:
        def torch_fn(F, x, q):
            return F.avg_pool2d(x, k, s or k, p, count_include_pad=True)
    return Case(f"{kind}-k{k}-s{s}-p{p}", kind, x_shape, lambda x, q: ref(x, k, s, p), torch_fn)


def batchnorm(train, affine, x_shape=(4, 3, 5, 2), momentum=0.1, eps=1e-5) -> Case:
    def ref(x, q):
        return R.batchnorm2d_forward(x, q.get("weight"), q.get("bias"), RUNNING_MEAN, RUNNING_VAR, train, momentum, eps)[:2]

    def torch_fn(F, x, q):
        rm, rv = (x.new_tensor(np.array(a)) for a in (RUNNING_MEAN, RUNNING_VAR))
        return F.batch_norm(x, rm, rv, q.get("weight"), q.get("bias"), training=train, momentum=momentum, eps=eps)

    shapes = {"weight": (3,), "bias": (3,)} if affine else {}
    mode = "train" if train else "eval"
    return Case(f"batchnorm2d-{mode}-affine{affine}-n{x_shape[0]}", "batchnorm2d", x_shape, ref, torch_fn, shapes)


MAP = (2, 3, 4, 5)
CASES = [
    conv(3, 1, 1, True), conv(4, 1, "same", True), conv(2, 1, "same", False), conv(3, 1, "valid", True),
    conv(2, 2, 0, False), conv(5, 2, 2, True, x_shape=(2, 2, 6, 5)), conv(1, 3, 0, True), conv(3, 3, 1, True, x_shape=(1, 3, 7, 8)),
    Case("relu", "relu", MAP, lambda x, q: R.relu_forward(x), lambda F, x, q: F.relu(x)),
    Case("relu-flat", "relu", (3, 7), lambda x, q: R.relu_forward(x), lambda F, x, q: F.relu(x)),
    Case("leaky_relu", "leaky_relu", MAP, lambda x, q: R.leaky_relu_forward(x), lambda F, x, q: F.leaky_relu(x, 0.01)),
    Case("leaky_relu-0.2", "leaky_relu", (3, 7), lambda x, q: R.leaky_relu_forward(x, 0.2), lambda F, x, q: F.leaky_relu(x, 0.2)),
    Case("sigmoid", "sigmoid", MAP, lambda x, q: R.sigmoid_forward(x), lambda F, x, q: F.sigmoid(x)),
    Case("tanh", "tanh", MAP, lambda x, q: R.tanh_forward(x), lambda F, x, q: F.tanh(x)),
    *[pool(kind, *geo) for kind, geo in itertools.product(("maxpool2d", "avgpool2d"), [(2, None, 0), (3, None, 1), (3, 2, 1), (2, 1, 0), (2, 3, 1)])],
    Case("global_avgpool2d", "global_avgpool2d", MAP, lambda x, q: R.global_avgpool2d_forward(x), lambda F, x, q: x.mean(dim=(2, 3))),
    Case("dropout-eval", "dropout", MAP, lambda x, q: R.dropout_forward(x, None, 0.5, train=False), lambda F, x, q: F.dropout(x, 0.5, training=False)),
    Case("flatten", "flatten", MAP, lambda x, q: R.flatten_forward(x), lambda F, x, q: x.flatten(1)),
    Case("dense", "dense", (4, 7), lambda x, q: R.dense_forward(x, q["weight"], q["bias"]), lambda F, x, q: F.linear(x, q["weight"], q["bias"]), {"weight": (5, 7), "bias": (5,)}),
    Case("dense-nobias", "dense", (3, 6), lambda x, q: R.dense_forward(x, q["weight"]), lambda F, x, q: F.linear(x, q["weight"]), {"weight": (1, 6)}),
    Case("softmax", "softmax", (3, 5), lambda x, q: R.softmax_forward(x), lambda F, x, q: F.softmax(x, dim=1)),
    *[batchnorm(train, affine) for train, affine in itertools.product((True, False), (True, False))],
    batchnorm(True, True, x_shape=(1, 3, 2, 1)),  # n = 2 values per channel: the smallest batch that trains
]
# dropout in training is checked by test_dropout_matches_torch (PyTorch draws its own mask)
ids = [c.id for c in CASES]


def _inputs(case: Case, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = kink_free(rng, case.x_shape)  # no relu kink, no max-pool tie, even under a finite-difference step
    return x, {name: rng.normal(size=shape) for name, shape in case.params.items()}


def test_every_layer_type_has_a_case():
    """The engine's layer types are all in the reference (tests/engine/test_layers.py checks that)."""
    assert {c.kind for c in CASES} == set(R.FORWARD) == set(R.BACKWARD)
    assert len(set(ids)) == len(ids)


@pytest.mark.torch
@pytest.mark.filterwarnings(SAME_EVEN)
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_forward_and_backward_match_torch(case: Case, torch):
    F = torch.nn.functional
    x, params = _inputs(case)
    xt = torch.tensor(x, requires_grad=True)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    out, cache = case.ref(x, params)
    out_t = case.torch(F, xt, pt)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    dout = np.random.default_rng(1).normal(size=out.shape)
    out_t.backward(torch.tensor(dout))
    dx, grads = R.BACKWARD[case.kind](dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    assert grads.keys() == params.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(g, pt[name].grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_backward_matches_finite_differences(case: Case):
    x, params = _inputs(case)
    x_before = x.copy()
    out, cache = case.ref(x, params)
    proj = np.random.default_rng(2).normal(size=out.shape)

    def loss() -> float:
        return float(np.sum(case.ref(x, params)[0] * proj))

    dx, grads = R.BACKWARD[case.kind](proj, cache)
    np.testing.assert_array_equal(x, x_before)
    assert_grad_close(dx, numerical_grad(loss, x), f"{case.id}: input gradient")
    for name, p in params.items():
        assert_grad_close(grads[name], numerical_grad(loss, p), f"{case.id}: {name} gradient")


@pytest.mark.torch
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_running_statistics_match_torch(train, torch):
    """PyTorch updates its running statistics in place; the reference returns them (unbiased
    variance in the update) and `layer_forward` passes them through for a batchnorm2d spec."""
    x = np.random.default_rng(3).normal(size=(3, 3, 4, 5))
    spec = SimpleNamespace(type="batchnorm2d", momentum=0.3, eps=1e-3, affine=False)
    buffers = {"running_mean": RUNNING_MEAN, "running_var": RUNNING_VAR}
    out, _, running = R.layer_forward(spec, {}, x, train=train, buffers=buffers)
    rm, rv = torch.tensor(np.array(RUNNING_MEAN)), torch.tensor(np.array(RUNNING_VAR))
    out_t = torch.nn.functional.batch_norm(torch.tensor(x), rm, rv, training=train, momentum=0.3, eps=1e-3)
    np.testing.assert_allclose(out, out_t.numpy(), **TOL)
    np.testing.assert_allclose(running["running_mean"], rm.numpy(), **TOL)
    np.testing.assert_allclose(running["running_var"], rv.numpy(), **TOL)
    if not train:
        np.testing.assert_array_equal(running["running_var"], RUNNING_VAR)


def test_batchnorm_refuses_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than one value"):
        R.batchnorm2d_forward(np.ones((1, 3, 1, 1)), None, None, RUNNING_MEAN, RUNNING_VAR, train=True)


@pytest.mark.torch
@pytest.mark.parametrize("geo", [(2, None, 0), (3, None, 0), (2, 3, 0), (3, 2, 1), (2, 1, 0)], ids=str)
def test_maxpool_ties_go_to_the_first_maximum_as_in_torch(geo, torch):
    """Inputs from {-1, 0, 1} tie in most windows; PyTorch passes each window's gradient to its first maximum."""
    k, s, p = geo
    rng = np.random.default_rng(4)
    x = rng.integers(-1, 2, size=(2, 2, 7, 8)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(xt, k, s or k, p)
    out, cache = R.maxpool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    dout = rng.normal(size=out.shape)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(R.maxpool2d_backward(dout, cache)[0], xt.grad.numpy(), **TOL)


@pytest.mark.torch
@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_matches_torch(rate, torch):
    """Given PyTorch's mask (read off its output: the inputs are never 0), the same output and gradient."""
    x = kink_free(np.random.default_rng(5), (3, 2, 4, 5))
    xt = torch.tensor(x, requires_grad=True)
    torch.manual_seed(0)
    out_t = torch.nn.functional.dropout(xt, rate, training=True)
    mask = (out_t.detach().numpy() != 0).astype(np.float64)
    assert 0 < mask.mean() < 1
    out, cache = R.dropout_forward(x, mask, rate)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    dout = np.random.default_rng(6).normal(size=out.shape)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(R.dropout_backward(dout, cache)[0], xt.grad.numpy(), **TOL)


@pytest.mark.torch
def test_losses_match_torch(torch):
    """Cross-entropy: PyTorch's mean ``cross_entropy``; MSE: ``sum 1/2 (out - onehot)^2 / N``."""
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    logits, y = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    loss, dlogits, p = R.softmax_cross_entropy(logits, y)
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(lt, torch.tensor(y))
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, lt.grad.numpy(), **TOL)
    np.testing.assert_allclose(p, F.softmax(lt, dim=1).detach().numpy(), **TOL)

    loss, dout = R.mean_squared_error(logits, y)
    ot = torch.tensor(logits, requires_grad=True)
    loss_t = 0.5 * F.mse_loss(ot, F.one_hot(torch.tensor(y), 4).double(), reduction="sum") / 5
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(dout, ot.grad.numpy(), **TOL)


@pytest.mark.parametrize("loss_fn", [R.softmax_cross_entropy, R.mean_squared_error], ids=["cross_entropy", "mse"])
def test_loss_gradients_match_finite_differences(loss_fn):
    rng = np.random.default_rng(8)
    z, y = rng.normal(size=(4, 3)), np.array([2, 0, 1, 2])
    assert_grad_close(loss_fn(z, y)[1], numerical_grad(lambda: loss_fn(z, y)[0], z), loss_fn.__name__)
