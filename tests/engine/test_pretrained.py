"""The ready-trained models shipped in engine/pretrained keep the accuracies the README promises and
carry the history of the training that made them (``{id}.history.json``, the model store's format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.checkpoint import load_checkpoint
from engine.jsonio import read_json
from engine.data.registry import builtin_dataset
from engine.train import evaluate_model

PRETRAINED = Path(__file__).resolve().parents[2] / "engine" / "pretrained"
# file -> (dataset it was trained on, the test accuracy the README states as a floor)
SHIPPED = {"tiny-vgg-shapes.npz": ("shapes", 0.95), "lenet5-digits.npz": ("digits", 0.98)}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    cache = tmp_path_factory.mktemp("datasets")
    return {name: builtin_dataset(name, cache) for name in ("shapes", "digits")}


@pytest.mark.parametrize("filename", sorted(SHIPPED))
def test_shipped_model_reaches_its_stated_accuracy(filename, datasets):
    path = PRETRAINED / filename
    assert path.stat().st_size <= 1_000_000, "shipped models must stay under 1 MB"
    with np.load(path, allow_pickle=False) as npz:  # readable without pickle, as any checkpoint
        assert {"spec", "classes", "step"} <= set(npz.files)
    ckpt = load_checkpoint(path)
    name, floor = SHIPPED[filename]
    ds = datasets[name]
    assert ckpt.meta["dataset"] == name and ckpt.classes == list(ds.classes)
    ev = evaluate_model(ckpt.model, ds, split="test")
    assert ev.accuracy >= floor, f"{filename}: {ev.accuracy:.4f} on {name} test, below {floor}"
    assert ev.accuracy == ckpt.meta["test_accuracy"], "the checkpoint states the accuracy it has"


@pytest.mark.parametrize("filename", sorted(SHIPPED))
def test_shipped_model_carries_the_history_that_made_it(filename):
    ckpt = load_checkpoint(PRETRAINED / filename)
    history = read_json(PRETRAINED / filename.replace(".npz", ".history.json"))
    assert set(history) == {"steps", "evaluations", "events"}
    steps = history["steps"]
    numbers = [s["step"] for s in steps]  # the first, every 10th and the last (`cnnvis train --history-every 10`)
    assert numbers[0] == 1 and numbers[-1] == ckpt.step and numbers == sorted(set(numbers))
    assert max(b - a for a, b in zip(numbers, numbers[1:])) <= 10 and len(numbers) <= 1000, "the page draws 1500 points at most"
    assert steps[-1]["epoch"] <= ckpt.meta["epoch"] and steps[-1]["learning_rate"] == ckpt.meta["hyperparameters"]["learning_rate"]
    evals = history["evaluations"]
    assert len(evals) >= 2 and all(e["split"] == "test" for e in evals)
    assert evals[-1]["step"] == ckpt.step and evals[-1]["accuracy"] == ckpt.meta["test_accuracy"]


def test_every_shipped_file_is_listed_here():
    assert sorted(p.name for p in PRETRAINED.glob("*.npz")) == sorted(SHIPPED)
    assert sorted(p.name for p in PRETRAINED.glob("*.history.json")) == sorted(f.replace(".npz", ".history.json") for f in SHIPPED)
