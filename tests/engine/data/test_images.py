"""Safe decoding: formats, size limits before decoding, damaged files, modes, preprocessing."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.data.images import (
    ALLOWED_FORMATS,
    ImageError,
    array_to_png,
    decoding_cost,
    open_image,
    preprocess,
    to_mode,
    to_uint8_chw,
)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header (8-bit RGB, any size) followed by 16 bytes of garbage pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", bytes(range(16)))
            + png_chunk(b"IEND", b""))


def test_allowed_formats():
    assert ALLOWED_FORMATS == {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"}


@pytest.mark.parametrize("fmt", sorted(ALLOWED_FORMATS))
def test_every_allowed_format_decodes(fmt):
    img = Image.new("RGB", (7, 5), (200, 10, 10))
    out = open_image(encode(img, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert out.size == (7, 5) and out.format == fmt
    r, g, b = to_mode(out, 3).getpixel((3, 2))
    assert abs(r - 200) < 12 and g < 40 and b < 40


def test_text_and_unlisted_formats_are_unsupported():
    for data in (b"hello, this is text\n" * 10, b"", encode(Image.new("RGB", (16, 16)), "ICO"),
                 encode(Image.new("RGB", (4, 4)), "PPM")):
        with pytest.raises(ImageError) as err:
            open_image(data)
        assert err.value.kind == "unsupported"
        assert "PNG" in err.value.message and "JPEG" in err.value.message


@pytest.mark.parametrize(("size", "limit_hit"), [
    ((10000, 10000), "Pillow's bomb warning"),   # 100 MP: Pillow warns before our check
    ((20000, 20000), "Pillow's bomb error"),     # 400 MP: Pillow raises before our check
    ((5000, 3000), "our pixel limit"),           # 15 MP but a side over 4096
    ((4000, 4096), "our pixel limit"),           # sides fine, 16.4 MP < 16.8 MP: passes the size check
])
def test_huge_headers_are_rejected_without_decoding(size, limit_hit):
    data = png_header_only(*size)  # no pixel data: decoding would fail as "corrupt"
    with pytest.raises(ImageError) as err:
        open_image(data)
    if size == (4000, 4096):
        assert err.value.kind == "corrupt"  # it got past the size check and failed to decode
    else:
        assert err.value.kind == "too_large", limit_hit
    if size == (5000, 3000):
        assert "5000x3000" in err.value.message and "4096" in err.value.message


def test_custom_limits():
    data = encode(Image.new("L", (40, 30)), "PNG")
    with pytest.raises(ImageError) as err:
        open_image(data, max_pixels=1000)
    assert err.value.kind == "too_large"
    with pytest.raises(ImageError):
        open_image(data, max_side=32)
    assert open_image(data, max_pixels=1200, max_side=40).size == (40, 30)


def test_truncated_png_is_corrupt():
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(ImageError) as err:
        open_image(data[: len(data) // 2])
    assert err.value.kind == "corrupt"


def test_known_signature_with_a_cut_header_is_corrupt_not_unsupported():
    data = encode(Image.new("RGB", (8, 8)), "PNG")
    with pytest.raises(ImageError) as err:
        open_image(data[:30])
    assert err.value.kind == "corrupt"


def test_truncated_jpeg_is_corrupt():
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError) as err:
        open_image(data[: len(data) // 3])
    assert err.value.kind == "corrupt"


def test_sixteen_bit_grey_is_scaled_not_clipped():
    values = np.array([[0, 257 * 10, 257 * 128, 65535]], dtype=np.uint16)
    img = open_image(encode(Image.fromarray(values), "PNG"))
    assert img.mode.startswith("I")
    assert np.asarray(to_mode(img, 1)).tolist() == [[0, 10, 128, 255]]
    assert np.asarray(to_mode(img, 3))[0, 2].tolist() == [128, 128, 128]


def test_palette_with_transparency_composites_over_white_for_rgb():
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, index 1 blue
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    decoded = open_image(encode(img, "PNG", transparency=1))
    assert np.asarray(to_mode(decoded, 3)).tolist() == [[[255, 0, 0], [255, 255, 255]]]
    gif = open_image(encode(img, "GIF", transparency=1))
    assert np.asarray(to_mode(gif, 3)).tolist() == [[[255, 0, 0], [255, 255, 255]]]


def test_cmyk_converts_to_rgb():
    img = Image.new("CMYK", (2, 1))
    img.putpixel((0, 0), (255, 0, 0, 0))  # pure cyan ink
    img.putpixel((1, 0), (0, 0, 0, 255))  # pure black ink
    decoded = open_image(encode(img, "TIFF"))
    assert decoded.mode == "CMYK"
    assert np.asarray(to_mode(decoded, 3)).tolist() == [[[0, 255, 255], [0, 0, 0]]]
    assert np.asarray(to_mode(decoded, 1)).tolist()[0][1] == 0


def test_rgba_and_la_alpha_compositing():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(0, 0, 0, 255), (0, 0, 0, 0), (0, 0, 0, 128)])
    out = np.asarray(to_mode(open_image(encode(rgba, "PNG")), 3))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]
    assert 125 <= out[0, 2, 0] <= 129  # half-transparent black over white
    assert np.asarray(to_mode(rgba, 3, background=0))[0, 1].tolist() == [0, 0, 0]
    # Grey: a dark digit on a transparent background lands on white, a bright one on black.
    dark = Image.new("LA", (2, 1))
    dark.putdata([(0, 255), (0, 0)])
    assert np.asarray(to_mode(dark, 1)).tolist() == [[0, 255]]
    bright = Image.new("LA", (2, 1))
    bright.putdata([(255, 255), (255, 0)])
    assert np.asarray(to_mode(bright, 1)).tolist() == [[255, 0]]


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, 20:] = 255  # stored: left half black, right half white, 40 wide x 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img = open_image(encode(Image.fromarray(arr), "JPEG", exif=exif, quality=95))
    assert img.size == (20, 40)  # now portrait
    g = np.asarray(to_mode(img, 1)).astype(int)
    assert g[:18].mean() < 30 and g[22:].mean() > 225  # the left half went to the top


def test_gif_uses_the_first_frame():
    frames = [Image.new("L", (4, 4), v) for v in (10, 200, 90)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = open_image(buf.getvalue())
    assert abs(int(np.asarray(to_mode(img, 1)).mean()) - 10) <= 2


def test_preprocess_resizes_the_short_side_and_centre_crops():
    arr = np.zeros((100, 200, 3), dtype=np.uint8)
    arr[:, :40] = (255, 0, 0)      # red left of the centre square
    arr[:, 160:] = (255, 0, 0)     # red right of it
    arr[:, 40:160] = (0, 0, 255)   # blue, wider than the centre 100x100 square
    x = preprocess(Image.fromarray(arr), (3, 20, 20))
    assert x.shape == (3, 20, 20) and x.dtype == np.float32
    # 200x100 -> 40x20, then the middle 20 columns (source columns 50-150): all blue, no red.
    np.testing.assert_allclose(x[2], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[0], 0.0, atol=1e-6)
    wide = to_uint8_chw(Image.fromarray(arr), (3, 10, 40))  # same aspect as the source: nothing cropped
    assert wide.shape == (3, 10, 40) and wide.dtype == np.uint8
    assert wide[0, :, 0].min() == 255 and wide[2, :, 20].min() == 255  # red edge, blue middle kept
    tall = to_uint8_chw(Image.fromarray(arr), (1, 30, 10))  # 200x100 -> 60x30, middle 10 columns
    assert tall.shape == (1, 30, 10)


def test_preprocess_values_are_pixels_over_255():
    arr = np.full((8, 8), 51, dtype=np.uint8)
    x = preprocess(Image.fromarray(arr), (1, 8, 8))
    np.testing.assert_allclose(x, 0.2, rtol=1e-6)
    assert preprocess(Image.fromarray(arr), (3, 4, 4)).shape == (3, 4, 4)


def test_array_to_png_round_trip():
    x = np.array([[[0.0, 0.5], [1.0, 2.0]]], dtype=np.float32)  # 2.0 is clipped
    back = np.asarray(Image.open(io.BytesIO(array_to_png(x))))
    assert back.tolist() == [[0, 128], [255, 255]]
    rgb = np.zeros((3, 2, 2), dtype=np.uint8)
    rgb[1] = 200
    back = np.asarray(Image.open(io.BytesIO(array_to_png(rgb))))
    assert back.shape == (2, 2, 3) and back[..., 1].tolist() == [[200, 200], [200, 200]]
    nan = np.full((1, 1, 1), np.nan, dtype=np.float32)
    assert np.asarray(Image.open(io.BytesIO(array_to_png(nan)))).tolist() == [[0]]
    with pytest.raises(ValueError):
        array_to_png(np.zeros((2, 4, 4)))


def test_to_mode_rejects_other_channel_counts():
    with pytest.raises(ValueError):
        to_mode(Image.new("RGB", (2, 2)), 4)


def flat_png_16(width: int, height: int, channels: int) -> bytes:
    """A 16-bit grey (1) or RGBA (4) PNG of one colour, compressed row by row (tiny on disk)."""
    color = {1: 0, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color, 0, 0, 0)
    packer, row = zlib.compressobj(9), b"\0" + b"\x9c\x40" * channels * width
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_decoding_cost_from_the_header():
    def cost(data: bytes) -> int:
        return decoding_cost(Image.open(io.BytesIO(data)))

    assert cost(encode(Image.new("L", (100, 10)), "PNG")) == 1000
    assert cost(encode(Image.new("RGB", (100, 10)), "PNG")) == 4000  # Pillow keeps RGB in 4 bytes
    assert cost(encode(Image.new("P", (100, 10)), "GIF")) == 1000
    assert cost(flat_png_16(100, 10, 1)) == 2000
    assert cost(flat_png_16(100, 10, 4)) == 8000  # the file's 16 bits, though Pillow keeps 8
    assert cost(encode(Image.new("RGB", (100, 10)), "WEBP", lossless=True)) == 16000  # libwebp's canvases
    plain = cost(encode(Image.new("RGB", (160, 80)), "JPEG"))
    assert plain == 160 * 80 * 4
    progressive = cost(encode(Image.new("RGB", (160, 80)), "JPEG", progressive=True))
    assert progressive == plain + 160 * 80 * 2 * 1.5  # + coefficients: Y in full, Cb and Cr at 4:2:0


def test_decoded_bytes_over_the_budget_are_refused_before_decoding():
    data = flat_png_16(1024, 1024, 4)  # 8 MB decoded, a few KB on disk
    with pytest.raises(ImageError) as err:
        open_image(data, max_decoded_bytes=4 * 1024 * 1024)
    assert err.value.kind == "too_large" and err.value.limit == "decoded_bytes"
    assert "8.0 MB" in err.value.message and "1024x1024" in err.value.message and "4 MB" in err.value.message
    assert open_image(data, max_decoded_bytes=8 * 1024 * 1024).size == (1024, 1024)


def test_pillow_bombs_are_errors_not_warnings():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 8192 * 8192
    with pytest.raises(ImageError) as err:
        open_image(png_header_only(60000, 60000), max_side=100000, max_pixels=10**10)
    assert err.value.kind == "too_large" and err.value.limit == "pillow"


def test_fit_reduces_while_decoding_and_keeps_the_full_size():
    arr = np.zeros((800, 1200, 3), dtype=np.uint8)
    arr[:, 600:] = 255
    jpeg = encode(Image.fromarray(arr), "JPEG", quality=95)
    img = open_image(jpeg, fit=(64, 64))
    assert img.size == (300, 200) and img.info["full_size"] == (1200, 800)  # draft: 1/4 scale, still >= 128
    assert np.abs(preprocess(img, (3, 64, 64)) - preprocess(open_image(jpeg), (3, 64, 64))).max() < 0.1
    png = encode(Image.fromarray(arr), "PNG")
    small = open_image(png, fit=(64, 64))
    assert small.size == (200, 134) and small.info["full_size"] == (1200, 800)  # reduce(6)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = open_image(encode(Image.fromarray(arr), "JPEG", exif=exif), fit=(16, 16))
    assert rotated.info["full_size"] == (800, 1200) and rotated.width < rotated.height


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(np.tile(np.repeat(np.arange(0, 65536, 257, dtype=np.uint16), 2), (256, 1))),  # I;16 ramp
    lambda: Image.fromarray(np.tile(np.repeat(np.arange(256, dtype=np.uint8), 2), (256, 1))).convert("P"),
    lambda: Image.fromarray(np.tile(np.repeat(np.arange(256, dtype=np.uint8), 2), (256, 1))).convert("1"),
    lambda: Image.new("RGBA", (512, 256), (255, 0, 0, 128)),
])
def test_reducing_before_conversion_keeps_the_meaning(make):
    img = make()
    assert img.size == (512, 256)
    # The oracle: the plain path, converting at full size, then the same antialiased resize.
    plain = np.asarray(to_mode(img, 3).resize((16, 8), Image.Resampling.BILINEAR), dtype=int)
    fast = to_uint8_chw(img, (3, 8, 16)).transpose(1, 2, 0).astype(int)  # reduced by 16 first
    assert np.abs(fast - plain).max() <= 3
