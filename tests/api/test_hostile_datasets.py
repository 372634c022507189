"""Hostile dataset imports (issue 11): each is refused with its documented 4xx and a JSON detail, before
the work when a budget can tell, and a real server's memory stays bounded while it refuses them.

Corpus, generated here: zip-slip names, a symlink entry, a zip bomb (one highly compressed member) and
overlapping entries, 10,000 tiny PNGs at 3x256x256 (refused by the size budget before decoding), 200
tiny 4096x4096 WebPs (refused by each header's decode budget) and slow-to-decode images (stopped by the
CPU budget), MNIST files declaring huge, wrong or missing arrays, an older ``.npz`` with an object array.
Durations are printed for the report (``-s``), never asserted.
"""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import time
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import image_bytes, make_settings, open_client
from bench.server import Server
from tests.api.test_datasets import make_zip, post_zip, symlink_zip

API = "/api/v1"
MB = 2**20


def tiny_png_zip(n: int) -> bytes:
    """``n`` entries of one 8x8 PNG, half in cat/, half in dog/ (about 1.7 MB for 10,000)."""
    png = image_bytes("PNG", size=(8, 8))
    return make_zip({f"{('cat', 'dog')[i % 2]}/{i}.png": png for i in range(n)})


def webp(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def webp_zip(n: int, side: int) -> bytes:
    data = webp(side)
    return make_zip({f"{('a', 'b')[i % 2]}/{i}.webp": data for i in range(n)}, zipfile.ZIP_DEFLATED)


def overlapping_zip() -> bytes:
    """Two central-directory entries pointing at the same local header (the 3.11.7 zipfile misses this)."""
    data = bytearray(make_zip({"cat/a.png": image_bytes(), "dog/b.png": image_bytes()}))
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # its local header offset -> the first entry's
    return bytes(data)


def idx(dtype_code: int, dims: tuple[int, ...], payload: bytes = b"") -> bytes:
    return bytes([0, 0, dtype_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def mnist_folder(root, **override: bytes):
    """Valid tiny MNIST files in ``root``, with some replaced (or removed when given b"")."""
    root.mkdir(parents=True)
    files = {
        "train-images-idx3-ubyte": idx(8, (4, 28, 28), bytes(4 * 784)),
        "train-labels-idx1-ubyte": idx(8, (4,), bytes([0, 1, 2, 3])),
        "t10k-images-idx3-ubyte": idx(8, (2, 28, 28), bytes(2 * 784)),
        "t10k-labels-idx1-ubyte": idx(8, (2,), bytes([0, 1])),
    } | override
    for name, data in files.items():
        if data:
            (root / name).write_bytes(data)


def refused(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and all(w in detail for w in words), detail
    return detail


# ---- in-process: each input's answer -------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "make", "status", "words"),
    [
        ("slip", lambda: make_zip({"../x.png": image_bytes(), "dog/b.png": image_bytes()}), 422, ["'..'"]),
        ("slip-deep", lambda: make_zip({"cat/../../x.png": image_bytes(), "dog/b.png": image_bytes()}), 422, ["'..'"]),
        ("symlink", symlink_zip, 422, ["symbolic link"]),
        ("bomb", lambda: make_zip({"cat/a.png": bytes(50 * MB), "dog/b.png": image_bytes()}, zipfile.ZIP_DEFLATED), 413,
         ["zip bomb"]),
        ("overlap", overlapping_zip, 422, ["overlap"]),
    ],
)
def test_unsafe_zips_are_refused_before_reading(client, label, make, status, words):
    refused(post_zip(client, make(), label), status, *words)
    assert label not in [d["name"] for d in client.get(f"{API}/datasets").json()]


def test_ten_thousand_tiny_pngs_at_a_big_size_are_refused_before_decoding(client, data_dir):
    t = time.perf_counter()
    r = post_zip(client, tiny_png_zip(10_000), "many", channels="3", height="256", width="256")
    print(f"\n10,000 PNGs at 3x256x256: {r.status_code} in {time.perf_counter() - t:.2f} s")
    refused(r, 413, "10,000 images of 3x256x256", "1.8 GB", "512 MB", "CNNVIS_MAX_DATASET_BYTES")
    assert r.json()["budget"] == "bytes"
    assert not any(p.name.startswith(("many", ".tmp-")) for p in (data_dir / "datasets").iterdir())
    # The same images at a size that fits are imported (and stored as uint8, not float32).
    ok = post_zip(client, tiny_png_zip(400), "fits", channels="1", height="16", width="16")
    assert ok.status_code == 201, ok.text
    assert (data_dir / "datasets" / "fits" / "x_train.npy").stat().st_size < 400 * 256 + 200


def test_huge_webps_are_refused_by_their_headers(client):
    t = time.perf_counter()
    r = post_zip(client, webp_zip(200, 4096), "webps")
    print(f"\n200 WebPs of 4096x4096: {r.status_code} in {time.perf_counter() - t:.2f} s")
    refused(r, 422, "no usable image", "too_large", "to decode")


def test_an_import_that_uses_its_cpu_budget_stops_with_413(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_import_seconds=1e-6)) as c:
        r = post_zip(c, tiny_png_zip(20), "slow", channels="1", height="16", width="16")
        refused(r, 413, "CPU time", "CNNVIS_MAX_IMPORT_SECONDS")
        assert r.json()["budget"] == "seconds"
        assert c.get(f"{API}/datasets/slow").status_code == 404


@pytest.mark.parametrize(
    ("label", "override", "status", "words"),
    [
        ("huge", {"train-images-idx3-ubyte": idx(8, (60000, 4096, 4096))}, 413, ["declares", "CNNVIS_MAX_DATASET_BYTES"]),
        ("huge-gz", {"train-images-idx3-ubyte": gzip.compress(idx(8, (2**31, 28, 28)))}, 413, ["declares"]),
        ("overflow", {"train-images-idx3-ubyte": idx(8, (2**32 - 1,) * 8)}, 413, ["declares"]),
        ("wrong-shape", {"train-images-idx3-ubyte": idx(8, (4, 784), bytes(4 * 784))}, 422, ["(N, H, W)"]),
        ("wrong-type", {"train-labels-idx1-ubyte": idx(0x0D, (4,), bytes(16))}, 422, ["uint8 labels"]),
        ("truncated", {"train-images-idx3-ubyte": idx(8, (4, 28, 28), bytes(100))}, 422, ["truncated"]),
        ("missing", {"t10k-labels-idx1-ubyte": b""}, 422, ["t10k-labels-idx1-ubyte"]),
        ("bad-labels", {"train-labels-idx1-ubyte": idx(8, (4,), bytes([0, 1, 2, 200]))}, 422, ["0-9"]),
    ],
)
def test_hostile_mnist_files(client, settings, label, override, status, words):
    mnist_folder(settings.import_dir / label, **override)
    r = client.post(f"{API}/datasets/import", json={"format": "mnist", "path": label, "name": label})
    refused(r, status, *words)


def test_an_older_npz_with_an_object_array_is_refused_and_the_list_still_works(client, data_dir):
    x = np.zeros((2, 1, 4, 4), np.uint8)
    np.savez(data_dir / "datasets" / "evil.npz", name=np.array("evil"), classes=np.array(["a", "b"], dtype=object),
             x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([1, 0]))
    refused(client.get(f"{API}/datasets/evil"), 422, "unreadable")
    listed = {d["name"]: d for d in client.get(f"{API}/datasets").json()}
    assert listed["evil"]["ready"] is False and "unreadable" in listed["evil"]["description"]
    assert client.get("/").status_code == 200


def test_an_older_npz_is_moved_to_the_lazy_layout_losing_nothing(client, data_dir):
    from engine.data.dataset import Dataset, save_dataset

    rng = np.random.default_rng(0)
    old = Dataset("legacy", ("a", "b"), rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8), np.array([0, 1] * 3),
                  rng.integers(0, 256, (2, 1, 8, 8), dtype=np.uint8), np.array([1, 0]), "kept as it was")
    save_dataset(old, data_dir / "datasets" / "legacy.npz")
    listed = {d["name"]: d for d in client.get(f"{API}/datasets").json()}
    assert listed["legacy"]["description"] == "kept as it was" and listed["legacy"]["sizes"] == {"train": 6, "test": 2}
    assert not (data_dir / "datasets" / "legacy.npz").exists()
    png = client.get(f"{API}/datasets/legacy/samples/test/1.png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content)))[None], old.x_test[1])


def test_quota_of_imported_datasets_is_507(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_datasets=2)) as c:
        zips = tiny_png_zip(6)
        for name in ("one", "two"):
            assert post_zip(c, zips, name, channels="1", height="8", width="8").status_code == 201
        r = post_zip(c, zips, "three", channels="1", height="8", width="8")
        refused(r, 507, "2", "CNNVIS_MAX_DATASETS")
        assert r.json()["limit"] == 2 and r.json()["setting"] == "CNNVIS_MAX_DATASETS"
        assert c.delete(f"{API}/datasets/one").status_code == 204
        assert post_zip(c, zips, "three", channels="1", height="8", width="8").status_code == 201


# ---- a real server: peak memory while refusing, and a page after restart that reads no pixel -------
@pytest.fixture
def server(data_dir, pretrained_dir):
    srv = Server(data_dir, pretrained_dir, env={"CNNVIS_MAX_IMPORT_SECONDS": "5"})
    srv.start()
    yield srv
    srv.stop()


def test_real_server_memory_while_refusing_and_after_restart(server, data_dir):
    cases = (("many", tiny_png_zip(10_000), {"height": "256", "width": "256"}, 413),  # the size budget, before decoding
             ("webps", webp_zip(200, 4096), {}, 422),  # every header over the decode budget: nothing usable
             # each decodable (25-100 ms here): 600 take 3-12x the CPU budget (5 s here), which stops them
             ("slow", webp_zip(600, 2000), {}, 413))
    with httpx.Client(base_url=server.base + API, timeout=300) as http:
        assert http.get("/datasets").status_code == 200
        for label, data, fields, status in cases:
            before = server.memory_mb("VmHWM")
            t = time.perf_counter()
            r = http.post("/datasets", files={"file": ("x.zip", data, "application/zip")}, data={"name": label, **fields})
            rise = server.memory_mb("VmHWM") - before
            print(f"\n{label} ({len(data) / 1000:.0f} KB): {r.status_code} in {time.perf_counter() - t:.2f} s, "
                  f"peak RSS +{rise:.0f} MB: {r.text[:150]}")
            refused(r, status)
            assert rise <= 200

        # A few datasets whose pixels (about 100 MB) would show in RSS if listing them read any.
        rng = np.random.default_rng(0)
        from engine.data.idx import write_idx

        for k in range(3):
            folder = data_dir / "imports" / f"m{k}"
            folder.mkdir(parents=True)
            for prefix, n in (("train", 40_000), ("t10k", 4_000)):
                write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
                write_idx(folder / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
            r = http.post("/datasets/import", json={"format": "mnist", "path": f"m{k}", "name": f"m{k}"})
            assert r.status_code == 201, r.text
            shutil.rmtree(folder)
    server.stop()
    server.start()
    base = server.memory_mb("VmRSS")
    t = time.perf_counter()
    page = httpx.get(server.base + "/", timeout=60)
    took = time.perf_counter() - t
    listed = httpx.get(server.base + API + "/datasets", timeout=60).json()
    rise = server.memory_mb("VmRSS") - base
    print(f"\npage after restart: {page.status_code} in {took:.2f} s, RSS {base:.0f} MB -> +{rise:.0f} MB")
    assert page.status_code == 200
    assert {d["name"]: d["sizes"] for d in listed if d["name"].startswith("m")} == {
        f"m{k}": {"train": 40_000, "test": 4_000} for k in range(3)}
    assert rise < 40  # the three datasets hold 103 MB of pixels
