"""Inside the learning step: output gradients against finite differences, the applied update against
the weights (and checkpoints) before and after, recorded norms against NumPy, dead ReLUs against a count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import ops
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.data.dataset import Dataset
from engine.model import Model
from engine.optim import SGD, Adam
from engine.stepview import RATIO_HEALTHY, dead_relu, dropout_masks, relu_layers, step_view
from engine.train import Hyperparameters, Trainer
from tests.engine.conftest import assert_grad_close, kink_free, numerical_grad

NET = {
    "version": 1,
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "dropout", "rate": 0.5},
        {"type": "flatten"},
        {"type": "dense", "units": 5},
        {"type": "tanh"},
        {"type": "dense", "units": 3},
        {"type": "softmax"},
    ],
}
CLASSES = ["a", "b", "c"]


def _dataset(n: int = 12, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 1, 6, 6), dtype=np.uint8)
    return Dataset(name="tiny", classes=tuple(CLASSES), x_train=x, y_train=np.arange(n) % 3, x_test=x[:4], y_test=np.arange(4) % 3)


def _loss_from(model: Model, i: int, h: np.ndarray, label: int, loss: str) -> float:
    """The loss with layer i's output replaced by ``h`` (NCHW, one image), evaluation mode."""
    d = ops.nchw_to_cnhw(h) if h.ndim == 4 else h
    for layer in model.layers[i + 1 :]:
        d, _ = layer.forward(d, train=False)
    out = ops.cnhw_to_nchw(d)
    if loss == "mse":
        target = np.eye(out.shape[1])[label]
        return float(0.5 * ((out[0] - target) ** 2).sum())
    return float(-np.log(out[0, label]))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_output_gradients_match_finite_differences(loss):
    model = Model.build(NET, seed=1, dtype=np.float64)
    model.params["layers.0.bias"][:] = 3.0  # every relu output positive: no ties in the pool below it
    rng = np.random.default_rng(0)
    x = kink_free(rng, (1, 6, 6))
    view = step_view(model, x, 2, loss=loss)
    acts = model.forward(x[None], keep=True).activations
    for i, act in enumerate(acts):
        h = np.ascontiguousarray(act, dtype=np.float64)
        numeric = numerical_grad(lambda: _loss_from(model, i, h, 2, loss), h)
        assert_grad_close(view.output_grads[i], numeric[0], f"{loss}: dL/d(out {i})", tol=1e-5)
    full = lambda: _loss_from(model, -1, np.ascontiguousarray(x[None]), 2, loss)  # noqa: E731
    for name, p in model.params.items():
        assert_grad_close(view.grads[name], numerical_grad(full, p), f"{loss}: dL/d{name}", tol=1e-5)
    assert_grad_close(view.input_grad, numerical_grad(full, x), f"{loss}: dL/dx", tol=1e-5)
    assert math.isclose(view.loss, full(), rel_tol=1e-9)


def test_frozen_layers_still_get_a_gradient_and_label_is_checked():
    model = Model.build(NET, seed=1)
    model.set_frozen([0])
    view = step_view(model, np.ones((1, 6, 6), np.float32), 0)
    assert set(view.grads) == set(model.params)
    with pytest.raises(ValueError, match="label"):
        step_view(model, np.ones((1, 6, 6), np.float32), 3)


@pytest.mark.parametrize("hp", [
    Hyperparameters(batch_size=5, optimizer="sgd", learning_rate=0.05, momentum=0.9, weight_decay=0.01),
    Hyperparameters(batch_size=5, optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True),
    Hyperparameters(batch_size=5, optimizer="adam", learning_rate=0.01, weight_decay=0.001),
], ids=["sgd-momentum", "sgd-nesterov", "adam"])
def test_applied_update_is_the_checkpoint_difference(hp, tmp_path):
    model = Model.build(NET, seed=3)
    trainer = Trainer(model, _dataset(), hp, seed=4)
    trainer.train(2)  # momentum and Adam's moments are warm
    save_checkpoint(tmp_path / "before.npz", model, classes=CLASSES, step=trainer.step)
    before = {k: v.copy() for k, v in model.params.items()}
    rec = trainer.train_step()
    save_checkpoint(tmp_path / "after.npz", model, classes=CLASSES, step=trainer.step)
    a = load_checkpoint(tmp_path / "before.npz").model.params
    b = load_checkpoint(tmp_path / "after.npz").model.params
    assert trainer.last_update_step == rec.step == 3
    assert set(trainer.last_update) == set(model.params)
    for name, delta in trainer.last_update.items():
        np.testing.assert_array_equal(delta, model.params[name] - before[name], err_msg=name)
        np.testing.assert_array_equal(delta, b[name] - a[name], err_msg=name)
        assert np.abs(delta).max() > 0, name


def test_optimizer_report_leaves_the_numbers_unchanged():
    """step() returns what it applied; the weights are those of the bare update rule."""
    rng = np.random.default_rng(0)
    for make in (lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.01), lambda: Adam(lr=0.01)):
        p1 = {"w": rng.standard_normal((4, 3)).astype(np.float32)}
        p2 = {"w": p1["w"].copy()}
        o1, o2 = make(), make()
        for _ in range(3):
            g = {"w": rng.standard_normal((4, 3)).astype(np.float32)}
            old = p1["w"].copy()
            applied = o1.step(p1, g)
            o2._update("w", p2["w"], g["w"], o2.state.setdefault("w", {}))
            np.testing.assert_array_equal(p1["w"], p2["w"])
            np.testing.assert_array_equal(applied["w"], p1["w"] - old)


def test_recorded_norms_and_ratios_match_numpy():
    model = Model.build(NET, seed=5)
    model.set_frozen([5])
    trainer = Trainer(model, _dataset(), Hyperparameters(batch_size=6, optimizer="adam", learning_rate=0.01), seed=1)
    trainer.train_step()
    x, y = trainer.next_batch()
    res = model.loss_and_grads(x, y, train=True, rng=trainer._rng(2), shards=trainer.shards(len(y)))
    before = {k: v.astype(np.float64) for k, v in model.params.items()}
    rec = trainer.train_step()
    assert sorted(rec.layers) == [0, 7]  # weighted, not frozen
    for i, stats in rec.layers.items():
        names = [n for n in model.params if n.startswith(f"layers.{i}.")]
        g = math.sqrt(sum(float((res.grads[n].astype(np.float64) ** 2).sum()) for n in names))
        w = math.sqrt(sum(float((before[n] ** 2).sum()) for n in names))
        u = math.sqrt(sum(float(((model.params[n] - before[n]) ** 2).sum()) for n in names))
        assert math.isclose(stats.grad_norm, g, rel_tol=1e-5), i
        assert math.isclose(stats.update_ratio, u / w, rel_tol=1e-5), i
    assert 1e-6 < RATIO_HEALTHY < 1


def test_dead_relu_share_matches_a_direct_count():
    model = Model.build(NET, seed=2)
    model.params["layers.0.bias"][1] = -100.0  # filter 1 never fires
    x = np.random.default_rng(0).random((7, 1, 6, 6)).astype(np.float32)
    got = dead_relu(model, x, chunk=3)
    assert list(got) == relu_layers(model) == [1]
    act = model.forward(x, keep=True).activations[1]  # (N, C, H, W)
    dead = ~(act > 0).any(axis=0)
    assert got[1].share == pytest.approx(dead.mean())
    np.testing.assert_allclose(got[1].per_filter, [dead[c].mean() for c in range(3)])
    assert got[1].per_filter[1] == 1.0


def test_dead_relu_is_recorded_every_few_steps():
    model = Model.build(NET, seed=2)
    trainer = Trainer(model, _dataset(), Hyperparameters(batch_size=4), dead_relu_every=2)
    recs = trainer.train(3)
    assert [r.dead_relu is not None for r in recs] == [True, False, True]
    assert set(recs[0].dead_relu) == {1}


def test_dropout_mask_is_the_training_pass_draw():
    model = Model.build(NET, seed=2)
    x = np.random.default_rng(0).random((1, 6, 6)).astype(np.float32)
    masks = dropout_masks(model, x, np.random.default_rng([0, 3, 2]))
    assert list(masks) == [3] and masks[3].shape == (3, 3, 3)
    assert set(np.unique(masks[3])) <= {0.0, 1.0}
    again = dropout_masks(model, x, np.random.default_rng([0, 3, 2]))
    np.testing.assert_array_equal(masks[3], again[3])
    pooled = model.forward(x[None], stop=3).output[0]
    dropped = model.forward(x[None], train=True, rng=np.random.default_rng([0, 3, 2]), stop=4).output[0]
    np.testing.assert_allclose(dropped, pooled * masks[3] * 2.0)
