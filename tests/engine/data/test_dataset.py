"""Dataset validation, counts, float conversion, the lazily opened folder format and the pickle-free .npz."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from engine.data.dataset import (
    Dataset,
    DatasetError,
    dataset_info,
    load_dataset,
    open_dataset,
    save_dataset,
    store_dataset,
    to_float,
)


def small(**over) -> Dataset:
    rng = np.random.default_rng(1)
    fields = {
        "name": "toy",
        "classes": ("a", "b", "c"),
        "x_train": rng.integers(0, 256, (7, 1, 4, 5), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 2, 1, 2, 2]),
        "x_test": rng.integers(0, 256, (3, 1, 4, 5), dtype=np.uint8),
        "y_test": np.array([2, 0, 0]),
        "description": "tiny",
    }
    fields.update(over)
    return Dataset(**fields)


def test_properties_and_counts():
    ds = small()
    assert ds.input_shape == (1, 4, 5)
    assert ds.num_classes == 3
    assert ds.counts() == {"train": [1, 2, 4], "test": [2, 0, 1]}
    assert ds.y_train.dtype == np.int64  # int labels are normalised to int64
    x, y = ds.split("test")
    assert x is ds.x_test and list(y) == [2, 0, 0]
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("validation")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"x_train": np.zeros((7, 1, 4, 5), np.float32)}, "uint8"),
        ({"x_train": np.zeros((7, 4, 5), np.uint8)}, "uint8"),
        ({"y_train": np.zeros(6, np.int64)}, "7 train images but 6"),
        ({"y_test": np.array([0, 3, 1])}, r"\[0, 2\]"),
        ({"y_test": np.array([0, -1, 1])}, r"\[0, 2\]"),
        ({"x_test": np.zeros((3, 3, 4, 5), np.uint8)}, "test images are"),
        ({"classes": ("a",)}, "at least 2 classes"),
        ({"classes": ("a", "a", "b")}, "duplicate"),
        ({"x_train": np.zeros((0, 1, 4, 5), np.uint8), "y_train": np.zeros(0, np.int64)}, "no training"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_datasets_are_rejected(override, message):
    with pytest.raises(DatasetError, match=message):
        small(**override)


def test_empty_test_split_is_allowed():
    ds = small(x_test=np.zeros((0, 1, 4, 5), np.uint8), y_test=np.zeros(0, np.int64))
    assert ds.counts()["test"] == [0, 0, 0]


def test_to_float():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-6)
    with pytest.raises(TypeError):
        to_float(out)


def test_save_load_round_trip(tmp_path):
    ds = small()
    path = tmp_path / "sub" / "toy.npz"
    save_dataset(ds, path)
    assert [p.name for p in path.parent.iterdir()] == ["toy.npz"]  # no temp file left behind
    back = load_dataset(path)
    assert (back.name, back.classes, back.description) == ("toy", ("a", "b", "c"), "tiny")
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, f), getattr(ds, f))
        assert getattr(back, f).dtype == getattr(ds, f).dtype
    # Nothing in the file needs pickle: every member is a plain .npy with a non-object dtype.
    with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
        assert all(n.endswith(".npy") for n in zf.namelist())
        assert all(npz[k].dtype != object for k in npz.files)


def test_save_overwrites_atomically_and_compressed(tmp_path):
    path = tmp_path / "toy.npz"
    save_dataset(small(), path)
    save_dataset(small(description="second"), path, compress=True)
    assert load_dataset(path).description == "second"
    assert len(list(tmp_path.iterdir())) == 1


def test_load_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="could not read"):
        load_dataset(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, name=np.array("x"), x_train=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(DatasetError, match="missing"):
        load_dataset(partial)


def test_load_refuses_pickled_object_arrays(tmp_path):
    ds = small()
    path = tmp_path / "evil.npz"
    np.savez(
        path, name=np.array("toy"), classes=np.array(["a", "b", "c"], dtype=object),
        x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
    )
    with pytest.raises(DatasetError):
        load_dataset(path)


def test_load_validates_labels_and_dtypes(tmp_path):
    ds = small()
    path = tmp_path / "bad.npz"
    np.savez(
        path, name=np.array("toy"), classes=np.array(["a", "b", "c"]),
        x_train=ds.x_train, y_train=ds.y_train + 5, x_test=ds.x_test, y_test=ds.y_test,
    )
    with pytest.raises(DatasetError, match="labels"):
        load_dataset(path)
    np.savez(
        path, name=np.array("toy"), classes=np.array(["a", "b", "c"]),
        x_train=ds.x_train.astype(np.float32), y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
    )
    with pytest.raises(DatasetError, match="uint8"):
        load_dataset(path)


def test_folder_format_round_trip_is_lazy_and_pickle_free(tmp_path):
    ds = small(x_test=np.zeros((0, 1, 4, 5), np.uint8), y_test=np.zeros(0, np.int64))
    store_dataset(ds, tmp_path / "toy")
    store_dataset(ds, tmp_path / "toy")  # replacing leaves no temp folder behind
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]
    info = dataset_info(tmp_path / "toy")
    assert info["sizes"] == {"train": 7, "test": 0} and info["counts"]["train"] == [1, 2, 4]
    assert info["input_shape"] == [1, 4, 5] and info["classes"] == ["a", "b", "c"]
    back = open_dataset(tmp_path / "toy")
    assert isinstance(back.x_train, np.memmap) and not back.x_train.flags.writeable
    np.testing.assert_array_equal(back.x_train, ds.x_train)
    np.testing.assert_array_equal(to_float(back.x_train[[1, 3]]), to_float(ds.x_train[[1, 3]]))
    assert (back.name, back.description, back.x_test.shape) == ("toy", "tiny", (0, 1, 4, 5))
    assert not isinstance(open_dataset(tmp_path / "toy", mmap=False).x_train, np.memmap)
    assert isinstance(load_dataset(tmp_path / "toy").x_train, np.memmap)  # load_dataset opens folders too


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "x_train.npy").write_bytes((d / "x_train.npy").read_bytes()[:-10]), "bytes"),
        (lambda d: np.save(d / "x_train.npy", np.zeros((7, 1, 4, 4), np.uint8)), "says"),
        (lambda d: np.save(d / "y_test.npy", np.array([0, 1, 9])), "labels"),
        (lambda d: np.save(d / "y_train.npy", np.array([object()] * 7), allow_pickle=True), "says|read"),
        (lambda d: (d / "dataset.json").write_text('{"name": 3}'), "not a dataset description"),
        (lambda d: (d / "dataset.json").unlink(), "could not read"),
        (lambda d: (d / "y_test.npy").unlink(), "could not read"),
    ],
)
def test_damaged_folders_are_refused_before_use(tmp_path, damage, message):
    store_dataset(small(), tmp_path / "toy")
    damage(tmp_path / "toy")
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path / "toy")
