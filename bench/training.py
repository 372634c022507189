"""Training speed of each preset on its dataset, and the time to reach the shipped accuracy:
``python -m bench training``."""

from __future__ import annotations

import os
import time

from bench.timing import median_ms
from engine.data.registry import builtin_dataset
from engine.model import Model
from engine.presets import PRESETS, preset_spec
from engine.train import Hyperparameters, Trainer

# The recipes that made the shipped models (README, "Ready-trained models"), replayed from scratch.
RECIPES = {
    "tiny-vgg-shapes": ("tiny-vgg", "shapes", Hyperparameters(optimizer="adam", learning_rate=0.001), 0.95),
    "lenet5-digits": ("lenet5", "digits", Hyperparameters(learning_rate=0.05, weight_decay=0.0005, augment=True), 0.98),
}


def steps_per_second(preset: str, dataset, batch_size: int = 32, rounds: int = 30, workers: int = 1) -> float:
    model = Model.build(preset_spec(preset, dataset.input_shape, dataset.num_classes), seed=0)
    hp = Hyperparameters(batch_size=batch_size, learning_rate=PRESETS[preset].learning_rate)
    trainer = Trainer(model, dataset, hp, workers=workers)
    try:
        return 1000.0 / median_ms(trainer.train_step, repeat=rounds)
    finally:
        trainer.close()


def time_to_accuracy(preset: str, dataset, hp: Hyperparameters, target: float, *, eval_every: int = 250,
                     max_steps: int = 6000) -> dict:
    """Train from scratch, evaluating on the test split every ``eval_every`` steps, until ``target``."""
    model = Model.build(preset_spec(preset, dataset.input_shape, dataset.num_classes), seed=0)
    trainer = Trainer(model, dataset, hp, seed=0)
    train_s = 0.0
    accuracy = 0.0
    while trainer.step < max_steps:
        t0 = time.perf_counter()
        trainer.train(eval_every)
        train_s += time.perf_counter() - t0
        accuracy = trainer.evaluate().accuracy
        if accuracy >= target:
            break
    return {"steps": trainer.step, "train_seconds": round(train_s, 1), "test_accuracy": round(accuracy, 4), "target": target}


def run(rounds: int = 30) -> dict:
    """Steps/s with one worker (as the server trains) and one per core (as ``cnnvis train``), BLAS single-threaded."""
    from threadpoolctl import threadpool_limits

    datasets = {name: builtin_dataset(name) for name in ("shapes", "digits")}
    cores = os.cpu_count() or 1
    with threadpool_limits(limits=1, user_api="blas"):
        speed = [
            {"preset": p, "dataset": PRESETS[p].default_dataset, "workers": w,
             "steps_per_second": round(steps_per_second(p, datasets[PRESETS[p].default_dataset], rounds=rounds, workers=w), 1)}
            for p in PRESETS for w in sorted({1, cores})
        ]  # fmt: skip
    reach = [{"model": name, **time_to_accuracy(preset, datasets[ds], hp, target)} for name, (preset, ds, hp, target) in RECIPES.items()]
    return {"batch_size": 32, "speed": speed, "time_to_accuracy": reach}


def table(report: dict) -> str:
    lines = [f"training steps per second (batch {report['batch_size']}, median of many steps)"]
    lines += [f"  {s['preset']:<10} on {s['dataset']:<8} {s['workers']} worker(s) {s['steps_per_second']:>8.1f} steps/s" for s in report["speed"]]
    lines.append("from scratch to the shipped accuracy (test split checked every 250 steps; training time only)")
    lines += [
        f"  {r['model']:<16} {r['test_accuracy']:.2%} (target {r['target']:.0%}) after {r['steps']} steps, {r['train_seconds']:.1f} s"
        for r in report["time_to_accuracy"]
    ]
    return "\n".join(lines)
