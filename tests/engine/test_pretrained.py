"""The ready-trained models shipped in engine/pretrained keep the accuracies the README promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.checkpoint import load_checkpoint
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


def test_every_shipped_file_is_listed_here():
    assert sorted(p.name for p in PRETRAINED.glob("*.npz")) == sorted(SHIPPED)
