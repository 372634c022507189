"""Image uploads: formats, size limits from the header, corrupt files, storage."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import image_bytes, make_settings, open_client, upload

API = "/api/v1"


@pytest.mark.parametrize(
    ("fmt", "mode", "ctype"),
    [("PNG", "RGB", "image/png"), ("PNG", "RGBA", "image/png"), ("PNG", "L", "image/png"), ("JPEG", "RGB", "image/jpeg"),
     ("JPEG", "CMYK", "image/jpeg"), ("GIF", "RGB", "image/gif"), ("BMP", "RGB", "image/bmp"), ("WEBP", "RGB", "image/webp"),
     ("TIFF", "RGB", "image/tiff")],
)
def test_upload_formats(client, fmt, mode, ctype):
    data = image_bytes(fmt, mode=mode)
    r = upload(client, data, f"x.{fmt.lower()}", ctype)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["width"] == 40 and info["height"] == 30 and info["format"] == fmt
    got = client.get(f"{API}/images/{info['id']}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("image/")
    assert Image.open(io.BytesIO(got.content)).size == (40, 30)
    r = client.post(f"{API}/models/tiny-vgg-shapes/forward", json={"image_id": info["id"]})
    assert r.status_code == 200 and r.json()["input"]["shape"] == [3, 64, 64]


def test_delete_an_upload(client, settings):
    info = upload(client, image_bytes("PNG")).json()
    assert client.post(f"{API}/models/tiny-vgg-shapes/forward", json={"image_id": info["id"]}).status_code == 200
    assert client.delete(f"{API}/images/{info['id']}").status_code == 204
    assert not list(Path(settings.images_dir).glob(f"{info['id']}.*"))
    assert client.get(f"{API}/images/{info['id']}").status_code == 404
    r = client.post(f"{API}/models/tiny-vgg-shapes/forward", json={"image_id": info["id"]})
    assert r.status_code == 404  # not served from the preprocessing cache either
    assert client.delete(f"{API}/images/{info['id']}").status_code == 404
    assert client.delete(f"{API}/images/not-an-id").status_code == 404


def test_sixteen_bit_and_palette(client):
    for img in (Image.new("I;16", (20, 20), 40000), Image.new("P", (20, 20), 3)):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        assert upload(client, buf.getvalue()).status_code == 201


def test_unsupported_formats_are_415(client):
    for data in (b"hello, world", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", b"%PDF-1.4\n"):
        r = upload(client, data, "x.svg", "image/svg+xml")
        assert r.status_code == 415, data
        assert "PNG" in r.json()["detail"]


def test_corrupt_and_truncated_are_422(client):
    data = image_bytes("PNG", size=(64, 64))
    r = upload(client, data[: len(data) // 2])
    assert r.status_code == 422 and "truncated" in r.json()["detail"]
    jpeg = image_bytes("JPEG", size=(64, 64))
    assert upload(client, jpeg[:200], "x.jpg", "image/jpeg").status_code == 422
    assert upload(client, b"").status_code == 422


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but holds almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_too_many_pixels_is_413_from_the_header(client):
    r = upload(client, forged_png(20000, 20000))
    assert r.status_code == 413 and "large" in r.json()["detail"]
    r = upload(client, forged_png(6000, 5000))
    assert r.status_code == 413 and "6000x5000" in r.json()["detail"]
    r = upload(client, forged_png(4097, 10))
    assert r.status_code == 413
    r = upload(client, image_bytes("PNG", size=(4097, 1), mode="L"))
    assert r.status_code == 413


def test_upload_over_the_byte_cap_is_413(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_upload_bytes=50_000)) as c:
        big = image_bytes("PNG", size=(300, 300))  # noise: ~270 KB
        r = upload(c, big)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        assert upload(c, image_bytes("PNG", size=(20, 20))).status_code == 201


def test_missing_file_and_unknown_image(client):
    r = client.post(f"{API}/images", files={"other": ("x.png", b"123", "image/png")})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    assert client.get(f"{API}/images/0123456789abcdef").status_code == 404
    assert client.get(f"{API}/images/..%2F..%2Fetc").status_code == 404
    assert client.get(f"{API}/images/..").status_code in (404, 422)


def test_exif_orientation_is_applied(client):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    info = upload(client, buf.getvalue(), "x.jpg", "image/jpeg").json()
    assert (info["width"], info["height"]) == (20, 40)
