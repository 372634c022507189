"""Built-in datasets by name, and their on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from engine import data
from engine.data import registry
from engine.data.dataset import Dataset, DatasetError, save_dataset, store_dataset


def tiny(name: str, description: str) -> Dataset:
    x = np.zeros((2, 1, 3, 3), np.uint8)
    return Dataset(name, ("a", "b"), x, np.array([0, 1]), x, np.array([1, 0]), description)


@pytest.fixture
def counted(monkeypatch):
    calls = []

    def make():
        calls.append(1)
        return tiny("shapes", "v-test")

    info = registry.BuiltinInfo((1, 2, 2), ("a", "b"), "v-test", make)
    monkeypatch.setattr(registry, "BUILTIN_INFO", {"shapes": info})
    return calls


def test_builtin_names():
    assert set(registry.BUILTIN) == {"shapes", "digits"}
    with pytest.raises(TypeError):
        registry.BUILTIN["x"] = None  # read-only


def test_cache_is_written_once_and_reused(tmp_path, counted):
    first = registry.builtin_dataset("shapes", tmp_path)
    assert (tmp_path / "shapes" / "dataset.json").is_file() and len(counted) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temp folder left behind
    second = registry.builtin_dataset("shapes", tmp_path)
    assert len(counted) == 1
    assert isinstance(second.x_train, np.memmap)  # opened lazily
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_damaged_or_outdated_cache_is_regenerated(tmp_path, counted):
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "dataset.json").write_bytes(b"garbage")
    registry.builtin_dataset("shapes", tmp_path)
    assert len(counted) == 1
    store_dataset(tiny("shapes", "made by an older generator"), tmp_path / "shapes")
    assert registry.builtin_dataset("shapes", tmp_path).description == "v-test"
    assert len(counted) == 2


def test_an_older_npz_cache_is_moved_not_regenerated(tmp_path, counted):
    old = tiny("shapes", "v-test")
    save_dataset(old, tmp_path / "shapes.npz")
    moved = registry.builtin_dataset("shapes", tmp_path)
    assert len(counted) == 0 and not (tmp_path / "shapes.npz").exists()
    np.testing.assert_array_equal(moved.x_train, old.x_train)


def test_no_cache_dir_generates(counted):
    registry.builtin_dataset("shapes")
    registry.builtin_dataset("shapes")
    assert len(counted) == 2


def test_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="shapes"):
        registry.builtin_dataset("imagenet", tmp_path)


@pytest.mark.slow
def test_real_builtins_through_the_cache(tmp_path):
    """The default datasets: full size, cached, and the same after a reload."""
    for name, shape, n in (("shapes", (3, 64, 64), (6000, 1000)), ("digits", (1, 28, 28), (10000, 2000))):
        ds = data.builtin_dataset(name, tmp_path)
        assert ds.input_shape == shape and (len(ds.y_train), len(ds.y_test)) == n
        again = data.builtin_dataset(name, tmp_path)
        np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_package_exports():
    for name in ("Dataset", "DatasetError", "make_shapes", "make_digits", "load_mnist", "load_cifar10",
                 "load_image_folder", "augment_batch", "AugmentConfig", "open_image", "preprocess",
                 "ImageError", "builtin_dataset", "download_dataset", "to_float"):
        assert name in data.__all__ and hasattr(data, name)
