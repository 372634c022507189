"""IDX (MNIST) and CIFAR-10 binary readers, on fixture files written byte by byte here."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile

import numpy as np
import pytest

from engine.data.cifar import CIFAR10_CLASSES, load_cifar10, write_cifar10_bin
from engine.data.dataset import DatasetError
from engine.data.idx import FASHION_CLASSES, load_mnist, read_idx, write_idx


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file assembled by hand: 0, 0, type code, ndim, big-endian dims, payload."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


# ---- IDX -------------------------------------------------------------------------------


def test_read_idx_raw_and_gzipped_from_path_and_bytes(tmp_path):
    pixels = bytes(range(24))
    raw = idx_bytes(0x08, (2, 3, 4), pixels)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.bin").write_bytes(gzip.compress(raw))  # gzip found by magic, not by name
    for source in (tmp_path / "a", tmp_path / "b.bin", raw, gzip.compress(raw)):
        arr = read_idx(source)
        assert arr.dtype == np.uint8 and arr.shape == (2, 3, 4)
        assert arr[1, 2, 3] == 23 and arr[0, 1, 0] == 4


def test_read_idx_big_endian_types():
    arr = read_idx(idx_bytes(0x0B, (3,), struct.pack(">3h", -2, 300, 7)))
    assert arr.tolist() == [-2, 300, 7] and arr.dtype == np.int16 and arr.dtype.isnative
    arr = read_idx(idx_bytes(0x0D, (2,), struct.pack(">2f", 1.5, -0.25)))
    assert arr.tolist() == [1.5, -0.25] and arr.dtype == np.float32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (idx_bytes(0x07, (1,), b"\x00"), "unknown IDX type code 0x07"),
        (idx_bytes(0x08, (), b""), "0 dimensions"),
        (bytes([0, 0, 8, 3]) + struct.pack(">I", 5), "truncated inside its header"),
        (idx_bytes(0x08, (2, 3), bytes(5)), "truncated"),
        (idx_bytes(0x08, (2, 3), bytes(7)), "extra bytes"),
        (idx_bytes(0x0C, (2,), bytes(7)), "truncated"),
        (gzip.compress(idx_bytes(0x08, (4,), bytes(4)))[:-12], "corrupt or truncated gzip"),
    ],
)
def test_read_idx_rejects_bad_files(data, message):
    with pytest.raises(DatasetError, match=message):
        read_idx(data)


def test_read_idx_caps_declared_and_decompressed_sizes():
    with pytest.raises(DatasetError, match="limit"):
        read_idx(idx_bytes(0x08, (100, 100, 100), b""), max_bytes=10_000)
    with pytest.raises(DatasetError, match="limit"):
        read_idx(gzip.compress(bytes(50_000)), max_bytes=10_000)


def test_write_idx_matches_the_format(tmp_path):
    arr = np.array([[1, -2], [3, 40000]], dtype=np.int32)
    write_idx(tmp_path / "x.idx", arr)
    assert (tmp_path / "x.idx").read_bytes() == idx_bytes(0x0C, (2, 2), struct.pack(">4i", 1, -2, 3, 40000))
    write_idx(tmp_path / "x.idx.gz", arr)
    assert gzip.decompress((tmp_path / "x.idx.gz").read_bytes()) == (tmp_path / "x.idx").read_bytes()
    with pytest.raises(ValueError):
        write_idx(tmp_path / "bad", np.zeros(2, dtype=np.uint16))


def write_mnist(folder, n_train=6, n_test=4, gz=("train-images-idx3-ubyte",), labels=None):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": (0x08, (n_train, 28, 28), rng.integers(0, 256, n_train * 784, dtype=np.uint8)),
        "train-labels-idx1-ubyte": (0x08, (n_train,), np.arange(n_train, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": (0x08, (n_test, 28, 28), rng.integers(0, 256, n_test * 784, dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": (0x08, (n_test,), np.arange(n_test, dtype=np.uint8)),
    }
    if labels is not None:
        files["t10k-labels-idx1-ubyte"] = (0x08, (len(labels),), labels)
    for name, (code, dims, values) in files.items():
        data = idx_bytes(code, dims, np.asarray(values, dtype=np.uint8).tobytes())
        if name in gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return files


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_load_mnist(tmp_path, kind):
    files = write_mnist(tmp_path)
    ds = load_mnist(tmp_path, kind=kind)
    assert ds.name == kind
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(ds.x_train.reshape(-1), files["train-images-idx3-ubyte"][2])
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4, 5] and ds.y_train.dtype == np.int64
    assert ds.classes == (FASHION_CLASSES if kind == "fashion-mnist" else tuple("0123456789"))
    assert FASHION_CLASSES[0] == "T-shirt/top" and FASHION_CLASSES[9] == "Ankle boot"


def test_load_mnist_errors(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    write_mnist(tmp_path, labels=np.array([0, 1, 12, 3], np.uint8))
    with pytest.raises(DatasetError, match="label 12"):
        load_mnist(tmp_path)
    write_mnist(tmp_path, labels=np.array([0, 1, 2], np.uint8))
    with pytest.raises(DatasetError, match="4 images but"):
        load_mnist(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        load_mnist(tmp_path / "nope")


# ---- CIFAR-10 --------------------------------------------------------------------------


def cifar_records(labels, seed=0):
    """Records by hand: label byte, then the red, green and blue 32x32 planes."""
    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 256, (len(labels), 3, 1024), dtype=np.uint8)
    data = b"".join(bytes([lab]) + planes[i, 0].tobytes() + planes[i, 1].tobytes() + planes[i, 2].tobytes()
                    for i, lab in enumerate(labels))
    return data, planes.reshape(len(labels), 3, 32, 32)


def write_cifar_folder(folder, meta=True):
    folder.mkdir(parents=True, exist_ok=True)
    expected = []
    for i in range(1, 6):
        data, x = cifar_records([i, (i + 1) % 10], seed=i)
        (folder / f"data_batch_{i}.bin").write_bytes(data)
        expected.append(x)
    data, x_test = cifar_records([9, 0, 3], seed=9)
    (folder / "test_batch.bin").write_bytes(data)
    if meta:
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return np.concatenate(expected), x_test


def test_load_cifar10_folder(tmp_path):
    x_train, x_test = write_cifar_folder(tmp_path / "cifar-10-batches-bin")
    for path in (tmp_path / "cifar-10-batches-bin", tmp_path):  # the folder or its parent
        ds = load_cifar10(path)
        assert ds.name == "cifar10" and ds.classes == CIFAR10_CLASSES
        assert ds.x_train.shape == (10, 3, 32, 32)
        np.testing.assert_array_equal(ds.x_train, x_train)
        np.testing.assert_array_equal(ds.x_test, x_test)
        assert ds.y_train.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
        assert ds.y_test.tolist() == [9, 0, 3]


def test_load_cifar10_tar_gz_in_memory(tmp_path):
    x_train, _ = write_cifar_folder(tmp_path / "src" / "cifar-10-batches-bin")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    before = sorted(p.name for p in tmp_path.iterdir())
    ds = load_cifar10(archive)
    np.testing.assert_array_equal(ds.x_train, x_train)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted


def test_load_cifar10_rejects_link_members(tmp_path):
    write_cifar_folder(tmp_path / "src")
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted((tmp_path / "src").iterdir()):
            if p.name != "test_batch.bin":
                tar.add(p, arcname=f"cifar-10-batches-bin/{p.name}")
        link = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DatasetError, match="not a regular file"):
        load_cifar10(archive)


def test_load_cifar10_errors(tmp_path):
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    data = (folder / "data_batch_3.bin").read_bytes()
    (folder / "data_batch_3.bin").write_bytes(data[:-100])
    with pytest.raises(DatasetError, match="data_batch_3.bin.*3073-byte records"):
        load_cifar10(folder)
    (folder / "data_batch_3.bin").write_bytes(bytes([10]) + data[1:])
    with pytest.raises(DatasetError, match="label 10"):
        load_cifar10(folder)
    (folder / "data_batch_3.bin").write_bytes(data)
    (folder / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match="10 class names"):
        load_cifar10(folder)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match="test_batch.bin"):
        load_cifar10(folder)
    (tmp_path / "junk.tar.gz").write_bytes(b"definitely not a tar")
    with pytest.raises(DatasetError, match="tar"):
        load_cifar10(tmp_path / "junk.tar.gz")


def test_write_cifar10_bin_layout(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8)
    y = np.arange(12) % 10
    write_cifar10_bin(tmp_path, x, y, n_test=2)
    first = (tmp_path / "data_batch_1.bin").read_bytes()
    assert len(first) == 2 * 3073 and first[0] == 0
    assert first[1:1025] == x[0, 0].tobytes() and first[2049:3073] == x[0, 2].tobytes()
    assert (tmp_path / "batches.meta.txt").read_text().split() == list(CIFAR10_CLASSES)
    ds = load_cifar10(tmp_path)
    np.testing.assert_array_equal(ds.x_test, x[10:])
    assert ds.y_test.tolist() == [0, 1]


def test_tar_read_never_touches_disk_for_unwanted_members(tmp_path):
    """Members other than the seven expected ones (e.g. a path traversal) are skipped unread."""
    write_cifar_folder(tmp_path / "src")
    archive = tmp_path / "x.tar"
    with tarfile.open(archive, "w") as tar:
        for p in sorted((tmp_path / "src").iterdir()):
            tar.add(p, arcname=f"cifar-10-batches-bin/{p.name}")
        evil = tarfile.TarInfo("../../escape.txt")
        payload = b"nope"
        evil.size = len(payload)
        tar.addfile(evil, io.BytesIO(payload))
    assert load_cifar10(archive).x_train.shape == (10, 3, 32, 32)
    assert not (tmp_path.parent / "escape.txt").exists()
