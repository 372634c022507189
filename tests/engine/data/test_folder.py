"""Image folders and zips: layouts, stratified split, skipped files, and zip safety."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from engine.data.archive import ArchiveError, check_zip, read_member
from engine.data.dataset import DatasetError, DatasetTooLarge
from engine.data.folder import load_image_folder


def png(value: int, size=(10, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(root, spec: dict[str, int], prefix=""):
    """spec: class -> number of images; image k of class c has grey level 10 * k + class index."""
    for ci, (cls, n) in enumerate(sorted(spec.items())):
        d = root / prefix / cls
        d.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            (d / f"img{k:02d}.png").write_bytes(png(10 * k + ci))


def make_zip(entries: dict[str, bytes], **kw) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, **kw) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_class_folders_with_stratified_split(tmp_path):
    make_tree(tmp_path, {"dog": 10, "cat": 3, "eel": 2, "fox": 1})
    ds, report = load_image_folder(tmp_path, input_shape=(1, 6, 6), test_fraction=0.2, seed=4, name="pets")
    assert ds.name == "pets" and ds.classes == ("cat", "dog", "eel", "fox")  # sorted
    # round(0.2 n) per class, at least one test image when n >= 2, never the whole class.
    assert report.counts == {
        "cat": {"train": 2, "test": 1},   # round(0.6) = 1
        "dog": {"train": 8, "test": 2},   # round(2.0) = 2
        "eel": {"train": 1, "test": 1},   # round(0.4) = 0, raised to 1
        "fox": {"train": 1, "test": 0},   # a single image stays in train
    }
    assert ds.counts() == {"train": [2, 8, 1, 1], "test": [1, 2, 1, 0]}
    assert report.skipped == [] and report.layout == "folders"
    assert ds.x_train.shape == (12, 1, 6, 6) and ds.x_train.dtype == np.uint8
    # Every image of class "dog" (index 1 when sorted) has grey level 10 k + 1: labels follow folders.
    dog_levels = set(ds.x_train[ds.y_train == 1][:, 0, 0, 0].tolist()) | set(ds.x_test[ds.y_test == 1][:, 0, 0, 0].tolist())
    assert dog_levels == {10 * k + 1 for k in range(10)}


def test_split_is_seeded(tmp_path):
    make_tree(tmp_path, {"a": 20, "b": 20})
    pick = lambda seed: load_image_folder(tmp_path, input_shape=(1, 4, 4), seed=seed)[0].x_test[:, 0, 0, 0].tolist()
    assert pick(1) == pick(1)
    assert pick(1) != pick(2)


def test_given_train_test_layout_and_unreadable_files(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 2}, prefix="train")
    make_tree(tmp_path, {"cat": 1, "dog": 1}, prefix="test")
    (tmp_path / "train" / "cat" / "broken.png").write_bytes(png(7)[:40])
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "dog" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "README.md").write_text("hello")
    ds, report = load_image_folder(tmp_path, input_shape=(3, 8, 8))
    assert report.layout == "split"
    assert report.counts == {"cat": {"train": 3, "test": 1}, "dog": {"train": 2, "test": 1}}
    skipped = dict(report.skipped)
    assert set(skipped) == {"train/cat/broken.png", "train/dog/notes.txt", "README.md"}
    assert skipped["train/cat/broken.png"].startswith("corrupt")
    assert skipped["train/dog/notes.txt"].startswith("unsupported")
    assert ds.x_test.shape == (2, 3, 8, 8)


@pytest.mark.parametrize(
    ("spec", "message"),
    [({}, "need at least 2 class folders"), ({"only": 3}, "need at least 2"), ({"a": 2, "b": 0}, "no usable image")],
)
def test_folder_errors(tmp_path, spec, message):
    make_tree(tmp_path, spec)
    if spec.get("b") == 0:
        (tmp_path / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DatasetError, match=message):
        load_image_folder(tmp_path)


def test_zip_with_wrapper_folder_and_macos_clutter(tmp_path):
    entries = {f"photos/{c}/{k}.png": png(10 * k + i) for i, c in enumerate(("ant", "bee")) for k in range(5)}
    entries["__MACOSX/photos/ant/._0.png"] = b"resource fork"
    entries["photos/.DS_Store"] = b"finder"
    path = tmp_path / "bugs.zip"
    path.write_bytes(make_zip(entries))
    ds, report = load_image_folder(path, input_shape=(1, 5, 5), test_fraction=0.4)
    assert ds.name == "bugs" and ds.classes == ("ant", "bee")
    assert report.counts == {"ant": {"train": 3, "test": 2}, "bee": {"train": 3, "test": 2}}
    assert report.skipped == []


def test_zip_with_split_layout(tmp_path):
    entries = {f"{s}/{c}/{k}.png": png(k) for s in ("train", "test") for c in ("x", "y") for k in range(2)}
    path = tmp_path / "d.zip"
    path.write_bytes(make_zip(entries))
    ds, report = load_image_folder(path, input_shape=(1, 4, 4))
    assert report.layout == "split" and ds.counts() == {"train": [2, 2], "test": [2, 2]}


# ---- zip safety --------------------------------------------------------------------------


def zip_with_info(info: zipfile.ZipInfo, data: bytes = b"x", extra: dict[str, bytes] | None = None) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, d in (extra or {"a/ok.png": b"1", "b/ok.png": b"2"}).items():
            zf.writestr(name, d)
        zf.writestr(info, data)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize(
    "name", ["../evil.png", "a/../../evil.png", "/etc/passwd", "C:/windows/x.png", "a\\..\\evil.png", "a//b.png"]
)
def test_check_zip_rejects_path_tricks(name):
    with pytest.raises(ArchiveError) as err:
        check_zip(zip_with_info(zipfile.ZipInfo(name)))
    assert err.value.kind == "invalid"


def test_check_zip_rejects_symlinks():
    info = zipfile.ZipInfo("a/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(ArchiveError, match="symbolic link") as err:
        check_zip(zip_with_info(info, b"/etc/passwd"))
    assert err.value.kind == "invalid"


def test_check_zip_rejects_deep_trees():
    with pytest.raises(ArchiveError, match="nested too deeply"):
        check_zip(zip_with_info(zipfile.ZipInfo("train/a/b/c.png")))
    # One wrapping folder is fine: wrap/train/cat/x.png.
    ok = zip_with_info(zipfile.ZipInfo("w/train/c/x.png"), extra={"w/train/d/y.png": b"1"})
    assert [i.filename for i in check_zip(ok)] == ["w/train/d/y.png", "w/train/c/x.png"]


def test_check_zip_limits_entries_and_declared_size():
    z = zipfile.ZipFile(io.BytesIO(make_zip({f"a/{k}.png": b"x" for k in range(30)})))
    with pytest.raises(ArchiveError, match="30 entries") as err:
        check_zip(z, max_entries=20)
    assert err.value.kind == "too_large"
    z = zipfile.ZipFile(io.BytesIO(make_zip({"a/1.png": bytes(600), "b/2.png": bytes(600)})))
    with pytest.raises(ArchiveError, match="unpack") as err:
        check_zip(z, max_total_bytes=1000, max_ratio=10**6)
    assert err.value.kind == "too_large"


def test_check_zip_rejects_high_compression_ratio():
    z = zipfile.ZipFile(io.BytesIO(make_zip({"a/bomb.png": bytes(2_000_000), "b/x.png": b"x"})))
    with pytest.raises(ArchiveError, match="zip bomb") as err:
        check_zip(z)
    assert err.value.kind == "too_large"


def test_check_zip_rejects_overlapping_entries():
    data = bytearray(make_zip({"a/1.png": b"hello" * 20, "b/2.png": b"world" * 20}))
    # Point the second central-directory record at the first entry's local header (offset 0).
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    data[second + 42: second + 46] = (0).to_bytes(4, "little")
    with pytest.raises(ArchiveError, match="overlap") as err:
        check_zip(zipfile.ZipFile(io.BytesIO(bytes(data))))
    assert err.value.kind == "invalid"


def test_read_member_respects_the_budget():
    z = zipfile.ZipFile(io.BytesIO(make_zip({"a/1.png": b"abc" * 100})))
    (info,) = check_zip(z)
    assert read_member(z, info, budget=10_000) == b"abc" * 100
    with pytest.raises(ArchiveError) as err:
        read_member(z, info, budget=100)
    assert err.value.kind == "too_large"


def test_read_member_detects_damaged_data():
    data = bytearray(make_zip({"a/1.png": b"some bytes that will be damaged" * 4}))
    start = data.find(b"a/1.png") + len("a/1.png")  # compressed data follows the local header name
    data[start + 2] ^= 0xFF
    z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    with pytest.raises(ArchiveError) as err:
        read_member(z, check_zip(z)[0], budget=10_000)
    assert err.value.kind == "invalid"


def test_unsafe_zip_is_refused_by_the_folder_loader(tmp_path):
    path = tmp_path / "evil.zip"
    path.write_bytes(make_zip({"a/1.png": png(1), "../b/2.png": png(2)}))
    with pytest.raises(ArchiveError):
        load_image_folder(path)
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 but not really")
    with pytest.raises(DatasetError):
        load_image_folder(tmp_path / "fake.zip")


def test_size_budget_refuses_before_decoding(tmp_path, monkeypatch):
    import engine.data.folder as folder

    make_tree(tmp_path / "src", {"a": 3, "b": 3})
    monkeypatch.setattr(folder, "open_image", lambda *a, **k: pytest.fail("decoded before the budget was checked"))
    with pytest.raises(DatasetTooLarge, match=r"6 images of 3x32x32 need 18,432 bytes as stored; the limit is 18,431 bytes") as e:
        load_image_folder(tmp_path / "src", input_shape=(3, 32, 32), max_bytes=6 * 3 * 32 * 32 - 1)
    assert e.value.budget == "bytes"


def test_cpu_budget_stops_the_import(tmp_path):
    make_tree(tmp_path / "src", {"a": 3, "b": 3})
    with pytest.raises(DatasetTooLarge, match="CPU time, with 0 of 6 images decoded") as e:
        load_image_folder(tmp_path / "src", input_shape=(1, 6, 6), max_seconds=0.0)
    assert e.value.budget == "seconds"


def test_import_to_a_folder_streams_to_disk_and_opens_lazily(tmp_path):
    make_tree(tmp_path / "src", {"a": 4, "b": 3})
    in_memory, _ = load_image_folder(tmp_path / "src", input_shape=(1, 6, 6), seed=2)
    stored, report = load_image_folder(tmp_path / "src", input_shape=(1, 6, 6), seed=2, dest=tmp_path / "out" / "ds")
    assert isinstance(stored.x_train, np.memmap) and not isinstance(in_memory.x_train, np.memmap)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(stored, f), getattr(in_memory, f))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ds"]  # no pool or temp folder left


def test_no_usable_image_says_why(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"not an image")
    make_tree(tmp_path, {"b": 2})
    with pytest.raises(DatasetError, match=r"'a' has no usable image \(a/x.png: unsupported"):
        load_image_folder(tmp_path)
