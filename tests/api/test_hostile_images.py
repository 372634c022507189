"""Hostile images: every file of a generated corpus gets its documented status with a JSON detail, as an
upload and as a multipart forward pass, and a real server's memory stays bounded while it answers them;
then the image quota (507) and the expiry of unused uploads.

Statuses: 413 when the header alone shows the file over a limit (sides, or the memory its decoding
takes: ``max_decoded_bytes``), 415 not a format read here, 422 truncated or damaged, 201 (forward: 200)
for valid odd formats. A JPEG has no checksum, so a flipped bit in its entropy-coded data decodes
to other pixels (201); one in its header is refused (422). The EXIF orientation is applied.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.encoding import decode_tensor
from tests.api.conftest import SHIPPED_ID, image_bytes, make_settings, open_client, upload
from bench.server import Server

API = "/api/v1"
FWD = f"{API}/models/{SHIPPED_ID}/forward"
N = 4096
MAX_RISE_MB, MAX_KEPT_MB = 200, 100


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flat_png(width: int, height: int, *, depth: int, color: int, pixel: bytes, rows: int | None = None) -> bytes:
    """A PNG of one colour (``pixel``: one pixel's bytes), compressed row by row; ``rows`` cuts its data short."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    packer, row = zlib.compressobj(9), b"\0" + pixel * width
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def flipped(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x55
    return bytes(out)


def animated(fmt: str, frames: int) -> bytes:
    imgs = [Image.new("RGB", (64, 64), (i % 256, 255 - i % 256, 7)) for i in range(frames)]
    return encode(imgs[0], fmt, save_all=True, append_images=imgs[1:], duration=20,
                  **({"lossless": True} if fmt == "WEBP" else {}))


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20, shown 20x40
    return encode(Image.new("RGB", (40, 20), (255, 0, 0)), "JPEG", exif=exif)


def build_corpus() -> dict[str, tuple[bytes, int]]:
    """name -> (file, the status of its upload)."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    png, jpeg = encode(Image.fromarray(noise), "PNG"), encode(Image.fromarray(noise), "JPEG")
    palette = Image.new("P", (50, 40), 3)
    palette.putpalette([(i * 37) % 256 for i in range(768)])
    return {
        "truncated PNG": (png[: len(png) // 2], 422),
        "truncated JPEG": (jpeg[: len(jpeg) // 3], 422),
        "bit-flipped PNG data": (flipped(png, len(png) // 2), 422),
        "bit-flipped JPEG header": (flipped(jpeg, 20), 422),
        "bit-flipped JPEG scan": (flipped(jpeg, len(jpeg) // 2), 201),
        "PNG header claiming 60000x60000": (flat_png(60000, 60000, depth=8, color=2, pixel=b"\1\2\3", rows=4), 413),
        "animated GIF, 300 frames": (animated("GIF", 300), 201),
        "animated WebP, 100 frames": (animated("WEBP", 100), 201),
        "16-bit grey PNG 4096x4096": (flat_png(N, N, depth=16, color=0, pixel=b"\x9c\x40"), 201),
        "16-bit RGBA PNG 4096x4096": (flat_png(N, N, depth=16, color=6, pixel=b"\x12\x34" * 4), 413),
        "8-bit RGBA PNG 4096x4096 (at the budget)": (flat_png(N, N, depth=8, color=6, pixel=b"\1\2\3\4"), 201),
        "one-colour lossless WebP 4096x4096": (encode(Image.new("RGB", (N, N), (10, 20, 30)), "WEBP", lossless=True), 413),
        "progressive JPEG 4096x4096": (encode(Image.new("RGB", (N, N), (10, 20, 30)), "JPEG", progressive=True), 201),
        "CMYK JPEG": (image_bytes("JPEG", size=(48, 32), mode="CMYK"), 201),
        "palette PNG": (encode(palette, "PNG"), 201),
        "EXIF-rotated JPEG": (rotated_jpeg(), 201),
    }


@pytest.fixture(scope="module")
def corpus() -> dict[str, tuple[bytes, int]]:
    return build_corpus()


def test_the_corpus_is_small_on_disk(corpus):
    sizes = {name: len(data) for name, (data, _) in corpus.items()}
    assert max(sizes.values()) < 200_000, sizes  # every bomb fits the real server's upload cap below
    assert sizes["one-colour lossless WebP 4096x4096"] < 2000


def test_each_hostile_file_gets_its_status(client, corpus):
    for name, (data, status) in corpus.items():
        r = upload(client, data, "x.img", "application/octet-stream")
        assert r.status_code == status, (name, r.text)
        assert isinstance(r.json().get("detail" if status != 201 else "id"), str), name
        f = client.post(FWD, files={"file": ("x.img", data, "application/octet-stream")})
        assert f.status_code == (200 if status == 201 else status), (name, f.text)
        if status == 201:
            assert f.json()["input"]["shape"] == [3, 64, 64], name
        else:
            assert f.json()["detail"] == r.json()["detail"], name


def test_refusals_name_the_size_the_limit_and_the_setting(client, corpus):
    detail = upload(client, corpus["16-bit RGBA PNG 4096x4096"][0]).json()["detail"]
    assert "128.0 MB" in detail and "4096x4096" in detail and "64 MB" in detail and "CNNVIS_MAX_DECODED_BYTES" in detail
    detail = upload(client, corpus["one-colour lossless WebP 4096x4096"][0]).json()["detail"]
    assert "256.0 MB" in detail and "CNNVIS_MAX_DECODED_BYTES" in detail
    detail = upload(client, corpus["PNG header claiming 60000x60000"][0]).json()["detail"]
    assert "large" in detail


def test_odd_formats_keep_their_meaning(client, corpus):
    info = upload(client, corpus["EXIF-rotated JPEG"][0]).json()
    assert (info["width"], info["height"]) == (20, 40)  # the orientation is applied
    info = upload(client, corpus["16-bit grey PNG 4096x4096"][0]).json()
    assert (info["width"], info["height"], info["format"]) == (N, N, "PNG")  # the full size, not the reduced one
    stored = client.post(FWD, json={"image_id": info["id"]}).json()["input"]
    sent = client.post(FWD, files={"file": ("g.png", corpus["16-bit grey PNG 4096x4096"][0], "image/png")}).json()["input"]
    x = decode_tensor(stored)
    assert np.array_equal(x, decode_tensor(sent))  # the same input either way
    assert np.allclose(x, round(40000 / 257) / 255, atol=1e-6)  # 16 bits scaled, not clipped
    assert upload(client, encode(Image.new("RGB", (N, N // 2), (1, 2, 3)), "JPEG")).json()["width"] == N


@pytest.fixture
def bounded_app(data_dir, pretrained_dir):
    def make(**overrides):
        return open_client(make_settings(data_dir, pretrained_dir, **overrides))
    return make


def age(folder: Path, image_id: str, seconds: float) -> None:
    old = time.time() - seconds
    for suffix in (".json", ".bin"):
        os.utime(folder / f"{image_id}{suffix}", (old, old))


def test_the_image_quota_is_a_507(bounded_app, settings):
    png = image_bytes("PNG", size=(8, 8))
    with bounded_app(max_images=2) as c:
        ids = [upload(c, png).json()["id"] for _ in range(2)]
        r = upload(c, png)
        assert r.status_code == 507
        body = r.json()
        assert "CNNVIS_MAX_IMAGES" in body["detail"] and "2" in body["detail"] and "expire" in body["detail"]
        assert (body["limit"], body["used"], body["setting"]) == (2, 2, "CNNVIS_MAX_IMAGES")
        assert c.delete(f"{API}/images/{ids[0]}").status_code == 204
        assert upload(c, png).status_code == 201
        age(settings.images_dir, ids[1], 48 * 3600)  # unused for two days: expired, so it frees its place
        assert upload(c, png).status_code == 201
        assert c.get(f"{API}/images/{ids[1]}").status_code == 404
    with bounded_app(max_images=0) as c:  # 0 turns the quota off
        assert all(upload(c, png).status_code == 201 for _ in range(3))


def test_unused_uploads_expire_and_used_ones_stay(bounded_app, settings):
    png = image_bytes("PNG", size=(8, 8))
    folder = settings.images_dir
    with bounded_app(image_ttl_s=3600) as c:
        a, b, g = (upload(c, png).json()["id"] for _ in range(3))
        for image_id in (a, b, g):
            age(folder, image_id, 7200)
        assert c.post(FWD, json={"image_id": b}).status_code == 200  # a forward pass is a use
        assert c.get(f"{API}/images/{g}").status_code == 200  # so is reading its file
        d = upload(c, png).json()["id"]  # a new upload sweeps the expired ones
        assert c.get(f"{API}/images/{a}").status_code == 404
        assert not list(folder.glob(f"{a}.*"))
        assert all(c.get(f"{API}/images/{i}").status_code == 200 for i in (b, g, d))
        age(folder, d, 7200)
    with bounded_app(image_ttl_s=3600) as c:  # and so does a start
        assert c.get(f"{API}/images/{d}").status_code == 404
        assert c.get(f"{API}/images/{b}").status_code == 200
    (folder / "0123456789abcdef.bin").write_bytes(png)  # a half-written upload: no .json, aged by its .bin
    age_bin = time.time() - 7200
    os.utime(folder / "0123456789abcdef.bin", (age_bin, age_bin))
    with bounded_app(image_ttl_s=3600):
        assert not (folder / "0123456789abcdef.bin").exists()
    with bounded_app(image_ttl_s=0) as c:  # 0 keeps uploads forever
        age(folder, b, 10**9)
        assert upload(c, png).status_code == 201 and c.get(f"{API}/images/{b}").status_code == 200


def reset_peak(srv: Server) -> bool:
    """Reset the server's VmHWM to its current RSS (Linux: ``5 > /proc/PID/clear_refs``); False if not allowed."""
    try:
        Path(f"/proc/{srv.proc.pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def concurrently(srv: Server, data: bytes, n: int) -> list[int]:
    """POST ``data`` to /images from ``n`` threads at once; their statuses."""
    statuses: list[int] = []
    files = {"file": ("x.png", data, "image/png")}

    def post() -> None:
        with httpx.Client(base_url=srv.base, timeout=60) as own:
            statuses.append(own.post(f"{API}/images", files=files).status_code)

    threads = [threading.Thread(target=post) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_real_server_memory_stays_bounded(data_dir, pretrained_dir, corpus):
    srv = Server(data_dir, pretrained_dir)
    srv.start()
    rises: dict[str, float] = {}
    try:
        with httpx.Client(base_url=srv.base, timeout=60) as http:
            def send(data: bytes) -> tuple[int, int]:
                files = {"file": ("x.img", data, "application/octet-stream")}
                up = http.post(f"{API}/images", files=files)
                fwd = http.post(FWD, files=files)
                assert up.headers["content-type"] == fwd.headers["content-type"] == "application/json"
                return up.status_code, fwd.status_code

            for _ in range(2):  # warm up: imports, the model, the first buffers
                send(image_bytes("PNG", size=(64, 64)))
            baseline = srv.memory_mb("VmRSS")
            resettable = reset_peak(srv)
            for name, (data, status) in corpus.items():
                if resettable:
                    reset_peak(srv)
                before = srv.memory_mb("VmRSS") if resettable else baseline
                assert send(data) == (status, 200 if status == 201 else status), name
                rises[name] = srv.memory_mb("VmHWM") - before
            kept = srv.memory_mb("VmRSS") - baseline
            print("\npeak RSS rise per hostile file (MB):")
            for name, rise in rises.items():
                print(f"  {rise:7.1f}  {name} -> {corpus[name][1]}")
            print(f"  RSS after the corpus: {kept:+.1f} MB over the baseline {baseline:.0f} MB")
            assert max(rises.values()) <= MAX_RISE_MB, rises
            assert kept <= MAX_KEPT_MB

            for name in ("16-bit RGBA PNG 4096x4096", "8-bit RGBA PNG 4096x4096 (at the budget)"):
                data, status = corpus[name]
                reset_peak(srv)
                before = srv.memory_mb("VmRSS") if resettable else baseline
                statuses = concurrently(srv, data, 8)
                rise = srv.memory_mb("VmHWM") - before
                print(f"  {rise:7.1f}  eight concurrent uploads of the {name} -> {sorted(set(statuses))}")
                # one decode at the budget at a time (the server's decode ledger); a wait past cpu_wait_s is a 503
                assert status in statuses and set(statuses) <= {status, 503} and rise <= MAX_RISE_MB, (name, rise)
    finally:
        srv.stop()
