"""The trainer: bit-for-bit replay, resumption, epoch bookkeeping, evaluation against a hand-made
confusion matrix, and learning on an easy problem."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.dataset import Dataset, to_float
from engine.model import Model
from engine.train import Hyperparameters, Trainer, evaluate_model

NET = {
    "version": 1,
    "input_shape": [1, 6, 5],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "dropout", "rate": 0.25},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
        {"type": "softmax"},
    ],
}


def _dataset(n_train: int = 10, n_test: int = 6, seed: int = 0, name: str = "tiny") -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        name=name,
        classes=("a", "b", "c"),
        x_train=rng.integers(0, 256, size=(n_train, 1, 6, 5), dtype=np.uint8),
        y_train=np.arange(n_train) % 3,
        x_test=rng.integers(0, 256, size=(n_test, 1, 6, 5), dtype=np.uint8),
        y_test=np.arange(n_test) % 3,
    )


def _weights(model: Model) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.params.items()}


def _assert_same_weights(a: Model, b: Model) -> None:
    assert set(a.params) == set(b.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


# A schedule of (steps, hyperparameter changes before them): batch sizes that do not divide the
# dataset, a learning-rate change, augmentation on, a switch to Adam and to the MSE loss.
SCHEDULE = [
    (3, {}),
    (2, {"batch_size": 3, "learning_rate": 0.02}),
    (2, {"augment": True, "nesterov": True}),
    (3, {"optimizer": "adam", "learning_rate": 0.005, "weight_decay": 0.01}),
    (2, {"loss": "mse", "batch_size": 7}),
]


def _run(trainer: Trainer, schedule) -> list:
    records = []
    for steps, changes in schedule:
        if changes:
            trainer.set_hyperparameters(**changes)
        records += trainer.train(steps)
    return records


def test_same_seed_same_schedule_gives_bit_identical_weights():
    ds = _dataset()
    runs = []
    for _ in range(2):
        t = Trainer(Model.build(NET, seed=1), ds, Hyperparameters(batch_size=4, learning_rate=0.05), seed=9)
        records = _run(t, SCHEDULE)
        runs.append((t, records))
    (a, ra), (b, rb) = runs
    _assert_same_weights(a.model, b.model)
    assert [r.loss for r in ra] == [r.loss for r in rb]
    assert a.step == b.step == 12
    # a different trainer seed (batch order, dropout, augmentation) gives different weights
    c = Trainer(Model.build(NET, seed=1), ds, Hyperparameters(batch_size=4, learning_rate=0.05), seed=10)
    _run(c, SCHEDULE)
    assert not np.array_equal(c.model.params["layers.0.weight"], a.model.params["layers.0.weight"])


@pytest.mark.parametrize("pause_after", [1, 3, 5, 8])
def test_rebuilt_trainer_continues_identically(pause_after):
    """Stop after ``pause_after`` schedule steps, rebuild from (seed, step, examples_seen), weights and
    optimizer state, continue: the weights equal those of a trainer that never stopped."""
    ds = _dataset()
    hp = Hyperparameters(batch_size=4, learning_rate=0.05, momentum=0.9)
    steps = [changes for n, changes in SCHEDULE for changes in [changes] + [{}] * (n - 1)]

    straight = Trainer(Model.build(NET, seed=1), ds, hp, seed=3)
    for changes in steps:
        if changes:
            straight.set_hyperparameters(**changes)
        straight.train_step()

    first = Trainer(Model.build(NET, seed=1), ds, hp, seed=3)
    for changes in steps[:pause_after]:
        if changes:
            first.set_hyperparameters(**changes)
        first.train_step()
    # what a checkpoint would hold, copied now (the live buffers keep changing)
    saved = dict(seed=first.seed, step=first.step, examples_seen=first.examples_seen)
    saved_weights = _weights(first.model)
    saved_state = {k: np.array(v, copy=True) for k, v in first.optimizer_state().items()}
    saved_hp = first.hp
    first.train(2)  # the old trainer keeps going; it must not disturb the saved state

    model = Model.build(NET, seed=123)  # different initial weights, overwritten by the saved ones
    model.load_state(saved_weights)
    resumed = Trainer(model, ds, saved_hp, **saved)
    resumed.load_optimizer_state(saved_state)
    for changes in steps[pause_after:]:
        if changes:
            resumed.set_hyperparameters(**changes)
        resumed.train_step()
    _assert_same_weights(resumed.model, straight.model)
    assert (resumed.step, resumed.examples_seen) == (straight.step, straight.examples_seen)


def test_optimizer_state_for_unknown_parameter_is_an_error():
    t = Trainer(Model.build(NET, seed=1), _dataset())
    with pytest.raises(ValueError, match="unknown parameter"):
        t.load_optimizer_state({"layers.9.weight/velocity": np.zeros(3)})


def test_epochs_count_examples_and_visit_each_example_once():
    n = 10
    ds = _dataset(n_train=n)
    t = Trainer(Model.build(NET, seed=0), ds, Hyperparameters(batch_size=4), seed=5)
    seen = []
    for batch_size in [4, 4, 4, 3, 3, 2, 4, 6]:  # 30 examples: exactly 3 epochs, batches straddling epochs
        t.set_hyperparameters(batch_size=batch_size)
        idx = t.batch_indices()
        assert len(idx) == batch_size
        x, y = t.next_batch()
        np.testing.assert_array_equal(x, to_float(ds.x_train[idx]))
        np.testing.assert_array_equal(y, ds.y_train[idx])
        before = t.examples_seen
        rec = t.train_step()
        assert t.examples_seen == before + batch_size
        assert rec.epoch == t.examples_seen // n == t.epoch
        seen.extend(idx.tolist())
    assert t.examples_seen == 30 and t.epoch == 3 and t.step == 8
    epochs = [seen[i : i + n] for i in range(0, 30, n)]
    for e in epochs:
        assert sorted(e) == list(range(n))
    assert epochs[0] != epochs[1] != epochs[2], "every epoch should be reshuffled"
    # a batch larger than the dataset spans several epochs, each a full permutation
    small = Trainer(Model.build(NET, seed=0), _dataset(n_train=4), Hyperparameters(batch_size=10), seed=5)
    idx = small.batch_indices().tolist()
    assert sorted(idx[:4]) == sorted(idx[4:8]) == [0, 1, 2, 3] and len(set(idx[8:])) == 2
    small.train_step()
    assert (small.examples_seen, small.epoch) == (10, 2)


def _controlled_dataset_and_model():
    """4 classes; a test image is 1x1x4 with pixel k = 255 where we want the model to predict k.

    Model: flatten, dense with weight 10 * I (no bias), softmax: logits are 10 at the lit pixel.
    """
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
    preds = [0, 1, 0, 1, 1, 2, 0, 2, 1, 3]  # class 3 is predicted once but never the true label
    x = np.zeros((len(labels), 1, 1, 4), np.uint8)
    x[np.arange(len(labels)), 0, 0, preds] = 255
    ds = Dataset(name="controlled", classes=("w", "x", "y", "z"), x_train=x[:2], y_train=np.array(labels[:2]),
                 x_test=x, y_test=np.array(labels))
    model = Model.build({"version": 1, "input_shape": [1, 1, 4], "layers": [
        {"type": "flatten"}, {"type": "dense", "units": 4, "bias": False}, {"type": "softmax"}]})
    model.params["layers.1.weight"][...] = 10 * np.eye(4, dtype=np.float32)
    return ds, model


def test_evaluation_matches_hand_computed_confusion_matrix():
    ds, model = _controlled_dataset_and_model()
    ev = evaluate_model(model, ds, split="test", step=7)
    assert ev.split == "test" and ev.step == 7
    assert ev.confusion_matrix == [
        [2, 1, 0, 1],  # true 0: predicted 0, 1, 0, 3
        [0, 2, 0, 0],
        [1, 1, 2, 0],  # true 2: predicted 2, 0, 2, 1
        [0, 0, 0, 0],
    ]
    assert ev.accuracy == pytest.approx(6 / 10)
    assert ev.per_class_accuracy[:3] == pytest.approx([2 / 4, 2 / 2, 2 / 4])
    assert ev.per_class_accuracy[3] is None
    big = math.exp(10) / (math.exp(10) + 3)  # probability at the lit pixel
    small = 1 / (math.exp(10) + 3)
    assert [m["index"] for m in ev.misclassified] == [1, 6, 8, 9]
    assert [(m["label"], m["prediction"]) for m in ev.misclassified] == [(0, 1), (2, 0), (2, 1), (0, 3)]
    assert [m["confidence"] for m in ev.misclassified] == pytest.approx([big] * 4, rel=1e-5)
    # cross-entropy: -log p[label]; 6 right (p = big), 4 wrong (p = small)
    assert ev.loss == pytest.approx((6 * -math.log(big) + 4 * -math.log(small)) / 10, rel=1e-4)
    # MSE: per example sum_k 1/2 (t_k - p_k)^2
    right = 0.5 * ((1 - big) ** 2 + 3 * small**2)
    wrong = 0.5 * (big**2 + (1 - small) ** 2 + 2 * small**2)
    mse = evaluate_model(model, ds, split="test", loss="mse")
    assert mse.loss == pytest.approx((6 * right + 4 * wrong) / 10, rel=1e-4)
    # max_examples takes the first ones
    head = evaluate_model(model, ds, split="test", max_examples=3)
    assert head.confusion_matrix[0] == [2, 1, 0, 0] and head.accuracy == pytest.approx(2 / 3)
    # the train split: the first two examples, of class 0, predicted 0 and 1
    assert evaluate_model(model, ds, split="train").confusion_matrix[0] == [1, 1, 0, 0]


def test_evaluation_of_an_empty_split():
    ds, model = _controlled_dataset_and_model()
    empty = Dataset(name="e", classes=ds.classes, x_train=ds.x_train, y_train=ds.y_train,
                    x_test=np.zeros((0, 1, 1, 4), np.uint8), y_test=np.zeros(0, np.int64))
    ev = evaluate_model(model, empty, split="test")
    assert math.isnan(ev.loss) and math.isnan(ev.accuracy)
    assert ev.confusion_matrix == [[0] * 4] * 4
    assert ev.per_class_accuracy == [None] * 4


def _easy_dataset(seed: int = 0) -> Dataset:
    """Dark images are class 0, bright ones class 1: separable by the mean pixel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=64)
    x = np.where(y[:, None, None, None] == 1, rng.integers(150, 256, size=(64, 1, 6, 5)), rng.integers(0, 100, size=(64, 1, 6, 5)))
    return Dataset(name="easy", classes=("dark", "bright"), x_train=x[:48].astype(np.uint8), y_train=y[:48],
                   x_test=x[48:].astype(np.uint8), y_test=y[48:])


@pytest.mark.parametrize(("optimizer", "loss"), [("sgd", "cross_entropy"), ("adam", "cross_entropy"), ("sgd", "mse")])
def test_loss_decreases_on_an_easy_problem(optimizer, loss):
    ds = _easy_dataset()
    spec = {**NET, "layers": NET["layers"][:-2] + [{"type": "dense", "units": 2}, {"type": "softmax"}]}
    lr = {"sgd": 0.1, "adam": 0.03}[optimizer]
    t = Trainer(Model.build(spec, seed=0), ds, Hyperparameters(batch_size=8, learning_rate=lr, optimizer=optimizer, loss=loss), seed=0)
    before = t.evaluate("test")
    records = t.train(50)
    after = t.evaluate("test")
    assert after.loss < 0.5 * before.loss, (before.loss, after.loss)
    assert after.accuracy == 1.0
    first, last = np.mean([r.loss for r in records[:5]]), np.mean([r.loss for r in records[-5:]])
    assert last < 0.5 * first
    assert records[-1].step == 50 and records[-1].epoch == 50 * 8 // 48


def test_trainer_rejects_mismatched_dataset_and_bad_hyperparameters():
    ds = _dataset()
    with pytest.raises(ValueError, match="inputs"):
        Trainer(Model.build({**NET, "input_shape": [1, 6, 6]}), ds)
    two_class = {**NET, "layers": NET["layers"][:-2] + [{"type": "dense", "units": 2}, {"type": "softmax"}]}
    with pytest.raises(ValueError, match="3 classes"):
        Trainer(Model.build(two_class), ds)
    for bad in ({"batch_size": 0}, {"batch_size": 2.5}, {"batch_size": True}, {"learning_rate": float("nan")},
                {"momentum": 1.0}, {"optimizer": "rmsprop"}, {"loss": "hinge"}):
        with pytest.raises(ValueError):
            Hyperparameters(**bad)
    t = Trainer(Model.build(NET), ds)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        t.set_hyperparameters(learning_rat=0.1)


def test_each_step_draws_fresh_augmentation_and_dropout():
    """One training example, batch 1: every step sees the same image, so only the per-step random
    streams (augmentation, dropout masks) make two steps differ; next_batch itself is repeatable."""
    rng = np.random.default_rng(0)
    ds = Dataset(name="one", classes=("a", "b", "c"), x_train=rng.integers(0, 256, (1, 1, 6, 5), dtype=np.uint8),
                 y_train=np.array([1]), x_test=np.zeros((0, 1, 6, 5), np.uint8), y_test=np.zeros(0, np.int64))
    t = Trainer(Model.build(NET, seed=0), ds, Hyperparameters(batch_size=1, learning_rate=1e-6, augment=True), seed=0)
    first, again = t.next_batch()[0], t.next_batch()[0]
    np.testing.assert_array_equal(first, again)
    t.train_step()
    assert not np.array_equal(t.next_batch()[0], first), "augmentation repeated itself across steps"
    t.set_hyperparameters(augment=False)
    losses = [t.train_step().loss for _ in range(6)]  # lr 1e-6: the weights barely move; the masks do
    assert max(losses) - min(losses) > 1e-3, losses


def test_workers_split_each_batch_deterministically(monkeypatch):
    """``workers=2`` trains each batch as two shards in two threads: bit-identical run to run, and
    (without dropout) the same gradients as one worker up to float rounding."""
    import engine.train as train_module

    ds = _dataset(n_train=12)
    runs = []
    for _ in range(2):
        t = Trainer(Model.build(NET, seed=1), ds, Hyperparameters(batch_size=6, learning_rate=0.05), seed=3, workers=2)
        assert t.shards(6) == 1  # this tiny net is below the work worth a thread
        monkeypatch.setattr(train_module, "MIN_SHARD_MACS", 1)
        assert t.shards(6) == 2
        runs.append(_run(t, SCHEDULE[:3]))
        monkeypatch.undo()
        t.close()
        runs.append(t.model)
    _assert_same_weights(runs[1], runs[3])
    assert [r.loss for r in runs[0]] == [r.loss for r in runs[2]]

    no_dropout = {**NET, "layers": [layer for layer in NET["layers"] if layer["type"] != "dropout"]}
    model = Model.build(no_dropout, seed=2, dtype=np.float64)
    x, y = to_float(ds.x_train).astype(np.float64), ds.y_train
    one = model.loss_and_grads(x, y)
    for shards in (2, 5):
        split = model.loss_and_grads(x, y, shards=shards)
        assert math.isclose(split.loss, one.loss, rel_tol=1e-12)
        np.testing.assert_allclose(split.probabilities, one.probabilities, rtol=1e-12)
        for name in one.grads:
            np.testing.assert_allclose(split.grads[name], one.grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
