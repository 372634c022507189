"""Attribution maps and their sanity checks (engine.explain), each against an independent computation.

Oracles: central finite differences in float64 (the gradient), PyTorch on the same weights with
backward hooks on ``nn.ReLU`` (guided backpropagation, deconvnet), with forward hooks and autograd
(Grad-CAM at two layers, integrated gradients), direct Python loops (occlusion, ranks).
Measured on the shipped TinyVGG, fixed test images: cascading randomization from the top changes
guided backpropagation far less than the gradient; re-initializing all layers leaves the signed
gradient uncorrelated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; install the bench extra (pip install torch==2.13.0) to run the parity tests"
)
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.torch_twin import torch_twin  # noqa: E402
from engine import explain  # noqa: E402
from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.explain.backprop import deconvnet_relu, guided_relu  # noqa: E402
from engine.data.shapes import make_shapes  # noqa: E402
from engine.model import Model  # noqa: E402
from tests.engine.conftest import assert_grad_close, numerical_grad  # noqa: E402

pytestmark = pytest.mark.torch

PRETRAINED = Path(__file__).resolve().parents[2] / "engine" / "pretrained"
TOL = 1e-4  # float32 against PyTorch, relative to the map's scale

# conv, relu, max pool, conv, relu, average pool, dense relu, dense, softmax: every rule the walks meet
SPEC = {
    "version": 1,
    "input_shape": [3, 12, 12],
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 6, "kernel_size": 3},
        {"type": "relu"},
        {"type": "avgpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 12},
        {"type": "relu"},
        {"type": "dense", "units": 5},
        {"type": "softmax"},
    ],
}


def small_model(dtype=np.float32, seed: int = 3) -> Model:
    model = Model.build(SPEC, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for name, arr in model.params.items():  # nonzero biases, so relus cut at varied places
        if name.endswith("bias"):
            arr[...] = rng.normal(0, 0.1, arr.shape)
    return model


def image(seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (3, 12, 12)).astype(dtype)


def relative_error(a: np.ndarray, b) -> float:
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12))


@pytest.fixture(scope="module")
def pretrained() -> Model:
    return load_checkpoint(PRETRAINED / "tiny-vgg-shapes.npz").model


@pytest.fixture(scope="module")
def shapes_images() -> np.ndarray:
    return make_shapes(n_train=1, n_test=4, seed=0).x_test.astype(np.float32) / 255


# ---- gradients ----------------------------------------------------------------------------------


def test_gradient_matches_finite_differences_in_float64():
    model = small_model(np.float64)
    x = image(1, np.float64)
    g, target = explain.gradient(model, x, target=2)
    assert target == 2 and g.shape == x.shape and g.dtype == np.float64
    probe = x.copy()
    numeric = numerical_grad(lambda: float(model.forward(probe[None], stop=len(model.layers) - 1).output[0, 2]), probe)
    assert_grad_close(g, numeric, "d logit / d x")
    sal, _ = explain.saliency(model, x, target=2)
    assert np.array_equal(sal, np.abs(g).max(axis=0))
    gx, _ = explain.gradient_x_input(model, x, target=2)
    assert np.allclose(gx, x * numeric, atol=1e-8)


def test_default_target_is_the_prediction_and_a_bad_target_is_refused():
    model, x = small_model(), image(2)
    predicted = int(model.predict_proba(x[None])[0].argmax())
    for method in (explain.gradient, explain.guided_backprop, explain.saliency, explain.grad_cam, explain.occlusion):
        assert method(model, x)[1] == predicted
    with pytest.raises(ValueError, match="target must be a class index from 0 to 4"):
        explain.gradient(model, x, target=5)


def _relu_hooked_twin(model: Model, rule: str) -> nn.Module:
    """The PyTorch twin whose ReLUs pass gradients back by ``rule``, via full backward hooks."""
    twin = torch_twin(model)

    def guided(module, grad_input, grad_output):  # grad_input = grad_output * [x > 0]
        return (grad_input[0].clamp(min=0),)

    def deconv(module, grad_input, grad_output):  # relu of the incoming gradient, whatever x was
        return (grad_output[0].clamp(min=0),)

    for module in twin.modules():
        if isinstance(module, nn.ReLU):
            module.register_full_backward_hook(guided if rule == "guided" else deconv)
    return twin


def _torch_input_gradient(twin: nn.Module, x: np.ndarray, target: int) -> torch.Tensor:
    xt = torch.tensor(x[None], requires_grad=True)
    twin.layers[:-1](xt)[0, target].backward()
    return xt.grad[0]


@pytest.mark.parametrize("rule, method", [("guided", explain.guided_backprop), ("deconvnet", explain.deconvnet)])
@pytest.mark.parametrize("seed", [0, 1])
def test_guided_backprop_and_deconvnet_match_pytorch_relu_hooks(rule, method, seed):
    model, x = small_model(seed=seed), image(seed)
    ours, target = method(model, x, target=1)
    reference = _torch_input_gradient(_relu_hooked_twin(model, rule), x, target)
    assert relative_error(ours, reference) < TOL
    plain = _torch_input_gradient(torch_twin(model), x, target)
    assert relative_error(ours, plain) > 0.01, "the modified rule should change the map"
    if rule == "guided":
        assert relative_error(explain.gradient(model, x, 1)[0], plain) < TOL


def test_relu_rules_by_hand():
    out, dout = np.array([0.0, 2.0, 3.0, 0.0]), np.array([1.0, -1.0, 2.0, -3.0])  # out: the relu's output (its cache)
    assert np.array_equal(guided_relu(dout, out), [0.0, 0.0, 2.0, 0.0])  # positive input and positive gradient
    assert np.array_equal(deconvnet_relu(dout, out), [1.0, 0.0, 2.0, 0.0])  # positive gradient only


# ---- Grad-CAM -----------------------------------------------------------------------------------


def _torch_grad_cam(model: Model, x: np.ndarray, layer: int, target: int) -> np.ndarray:
    twin = torch_twin(model)
    kept = {}
    twin.layers[layer].register_forward_hook(lambda m, i, out: kept.update(a=out) or out.retain_grad())
    twin.layers[:-1](torch.tensor(x[None]))[0, target].backward()
    a = kept["a"]
    cam = F.relu((a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[1:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max()).detach().numpy()


@pytest.mark.parametrize("layer", [1, 4])  # the first relu (12x12) and the second (4x4, upsampled 3x)
def test_grad_cam_matches_pytorch_at_two_layers(layer):
    model, x = small_model(), image(5)
    cam, target, index = explain.grad_cam(model, x, layer, 3)
    assert (target, index) == (3, layer) and cam.shape == (12, 12)
    assert 0 <= cam.min() and np.isclose(cam.max(), 1)
    assert relative_error(cam, _torch_grad_cam(model, x, layer, 3)) < TOL


def test_grad_cam_refuses_a_layer_without_feature_maps_and_defaults_to_the_last_one():
    model, x = small_model(), image(5)
    assert explain.grad_cam(model, x)[2] == explain.last_conv_index(model) == 5
    with pytest.raises(ValueError, match="no feature maps"):
        explain.grad_cam(model, x, 7)


def test_guided_grad_cam_is_guided_backprop_times_the_cam():
    model, x = small_model(), image(6)
    ggc, target, layer = explain.guided_grad_cam(model, x, 4, 2)
    cam, _, _ = explain.grad_cam(model, x, 4, 2)
    guided, _ = explain.guided_backprop(model, x, 2)
    assert (target, layer) == (2, 4) and ggc.shape == x.shape
    assert np.allclose(ggc, guided * cam[None], rtol=1e-5, atol=1e-7)


# ---- SmoothGrad and integrated gradients --------------------------------------------------------


def test_smoothgrad_one_sample_without_noise_is_the_gradient():
    model, x = small_model(), image(7)
    sg, target = explain.smoothgrad(model, x, 1, rng=np.random.default_rng(0), n=1, sigma=0.0)
    assert np.array_equal(sg, explain.gradient(model, x, 1)[0]) and target == 1


def test_smoothgrad_is_the_mean_gradient_of_the_seeded_noisy_copies():
    model, x = small_model(), image(8)
    sg, _ = explain.smoothgrad(model, x, 2, rng=np.random.default_rng(5), n=7, sigma=0.2)
    noise = np.random.default_rng(5).normal(0.0, 0.2 * float(x.max() - x.min()), size=(7, *x.shape))
    copies = [explain.gradient(model, (x + e).astype(np.float32), 2)[0] for e in noise]
    assert relative_error(sg, np.mean(copies, axis=0)) < 1e-5
    again, _ = explain.smoothgrad(model, x, 2, rng=np.random.default_rng(5), n=7, sigma=0.2)
    assert np.array_equal(sg, again)


@pytest.mark.parametrize("baseline", [None, 0.25])
def test_integrated_gradients_match_pytorch(baseline):
    model, x, steps = small_model(), image(9), 10
    ours, target, gap = explain.integrated_gradients(model, x, 4, baseline=baseline, steps=steps)
    x0 = np.full_like(x, 0.0 if baseline is None else baseline)
    alphas = torch.linspace(0, 1, steps + 1, dtype=torch.float64)[:, None, None, None]
    path = (torch.tensor(x0) + alphas * torch.tensor(x - x0)).float().requires_grad_(True)
    scores = torch_twin(model).layers[:-1](path)[:, target]
    scores.sum().backward()
    weights = torch.full((steps + 1,), 1.0 / steps, dtype=torch.float64)
    weights[[0, -1]] /= 2
    reference = torch.tensor(x - x0, dtype=torch.float64) * (weights[:, None, None, None] * path.grad.double()).sum(0)
    assert relative_error(ours, reference) < TOL
    expected_gap = float(reference.sum()) - float(scores[-1].detach() - scores[0].detach())
    assert abs(gap - expected_gap) < 1e-3 * max(1.0, abs(float(reference.sum())))


def test_integrated_gradients_completeness_gap_is_small_at_64_steps(pretrained, shapes_images):
    for x in shapes_images:
        attributions, target, gap = explain.integrated_gradients(pretrained, x, steps=64)
        logits = pretrained.forward(np.stack([x, np.zeros_like(x)]), stop=len(pretrained.layers) - 1).output[:, target]
        difference = float(logits[0] - logits[1])
        assert abs(gap) <= 0.05 * abs(difference), f"gap {gap:.4f} against score difference {difference:.3f}"
        assert np.isclose(attributions.sum() - difference, gap, atol=1e-3 * abs(difference))


# ---- occlusion ----------------------------------------------------------------------------------


def test_occlusion_matches_a_direct_loop_and_reports_progress():
    model, x = small_model(), image(10)
    calls = []
    ours, target = explain.occlusion(model, x, 0, patch=4, stride=3, baseline=0.1, progress=lambda d, t: calls.append((d, t)))
    base = model.predict_proba(x[None])[0, 0]
    drop, count = np.zeros((12, 12)), np.zeros((12, 12))
    for y in range(0, 12 - 4 + 1, 3):
        for xx in range(0, 12 - 4 + 1, 3):
            covered = x.copy()
            covered[:, y : y + 4, xx : xx + 4] = 0.1
            drop[y : y + 4, xx : xx + 4] += base - model.predict_proba(covered[None])[0, 0]
            count[y : y + 4, xx : xx + 4] += 1
    assert target == 0 and np.allclose(ours, drop / np.maximum(count, 1), atol=1e-6)
    assert calls[-1] == (9, 9) and [d for d, _ in calls] == sorted(d for d, _ in calls)


# ---- sanity checks ------------------------------------------------------------------------------


def _naive_spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(v):
        return np.array([1 + (v < u).sum() + ((v == u).sum() - 1) / 2 for u in v])

    return float(np.corrcoef(ranks(a.ravel()), ranks(b.ravel()))[0, 1])


def test_rank_correlation_against_a_naive_loop_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (6, 7)).astype(float)  # many ties
    b = a + rng.integers(0, 3, (6, 7))
    assert np.isclose(explain.rank_correlation(a, b), _naive_spearman(a, b))
    assert np.isclose(explain.rank_correlation(a, a), 1.0)
    assert np.isclose(explain.rank_correlation(a, -a), -1.0)
    assert explain.rank_correlation(a, np.ones_like(a)) == 0.0
    assert np.isclose(explain.rank_correlation(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 4])), 0.9486832980505138)


def test_randomized_model_re_initializes_all_layers_or_a_top_cascade():
    model = small_model()
    fresh = Model.build(SPEC, seed=7)
    every = explain.randomized_model(model, seed=7)
    assert all(np.array_equal(every.params[k], fresh.params[k]) for k in model.params)
    top = explain.randomized_model(model, seed=7, down_to=7)
    for name in model.params:
        expected = fresh if int(name.split(".")[1]) >= 7 else model
        assert np.array_equal(top.params[name], expected.params[name]), name
    assert not np.shares_memory(top.params["layers.0.weight"], model.params["layers.0.weight"])


def test_model_randomization_on_the_pretrained_model(pretrained, shapes_images):
    for x in shapes_images:
        same = explain.model_randomization(pretrained, x, explain.gradient, seed=1, down_to=len(pretrained.layers) - 1)
        g, target = explain.gradient(pretrained, x)
        assert same.target == target and np.array_equal(same.original, g)
        assert explain.rank_correlation(g, g) == 1.0
        # all layers re-initialized: the signed gradient no longer resembles the trained one
        full = explain.model_randomization(pretrained, x, explain.gradient, absolute=False)
        assert abs(full.rank_correlation) < 0.2
        # a cascade from the top (the dense layer, then down to the second block): guided backprop
        # keeps its picture (rank correlation >= 0.7 measured) while the gradient's drops (<= 0.7)
        for down_to in (11, 5):
            grad = explain.model_randomization(pretrained, x, explain.gradient, down_to=down_to)
            guided = explain.model_randomization(pretrained, x, explain.guided_backprop, down_to=down_to)
            assert guided.rank_correlation > grad.rank_correlation + 0.15, (down_to, guided.rank_correlation, grad.rank_correlation)


def test_deletion_curve_shape_and_end_points(pretrained, shapes_images):
    x = shapes_images[0]
    g, target = explain.gradient(pretrained, x)
    for baseline, fill in (("zero", np.zeros((3, 1, 1))), ("mean", x.mean(axis=(1, 2), keepdims=True)), (0.5, 0.5)):
        curve = explain.deletion_curve(pretrained, x, g, steps=20, baseline=baseline)
        assert curve.target == target and len(curve.fractions) == len(curve.scores) == 21
        assert curve.fractions[0] == 0 and curve.fractions[-1] == 1 and np.all(np.diff(curve.fractions) > 0)
        assert 0 <= curve.auc <= 1
        probs = pretrained.predict_proba(np.stack([x, np.broadcast_to(fill, x.shape)]).astype(np.float32))[:, target]
        assert np.allclose(curve.scores[[0, -1]], probs, atol=1e-6)


def test_deletion_curve_removes_the_most_attributed_pixels_first():
    model, x = small_model(), image(11)
    ranking = np.arange(144, dtype=float).reshape(12, 12)  # the bottom-right pixel first
    curve = explain.deletion_curve(model, x, ranking, 2, steps=4)
    removed = x.copy()
    removed[:, 9:, :] = 0  # a quarter: the last three rows
    assert np.isclose(curve.scores[1], model.predict_proba(removed[None])[0, 2], atol=1e-6)
    with pytest.raises(ValueError, match="attribution must be"):
        explain.deletion_curve(model, x, ranking[:5], 2)
