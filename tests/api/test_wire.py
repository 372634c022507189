"""The wire (issue 16): the binary tensor form against the JSON form (same bits), its header and
alignment, content negotiation, compression (skipped on loopback, for small and already-compressed
bodies; the fastest accepted codec otherwise), and binary activation frames on the live socket."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import warnings

import numpy as np
import pytest
from starlette.responses import Response

from app.compression import MIN_BYTES, Compression, choose
from app.encoding import BINARY, decode_tensor, pack, unpack, wants_binary
from app.main import create_app
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

API = "/api/v1"
FWD = f"{API}/models/{SHIPPED_ID}/forward"
SAMPLE = {"sample": {"split": "test", "index": 1}}
LAN = ("192.0.2.7", 50000)  # a documentation address: not loopback


def descriptors(header: dict) -> list[dict]:
    return [header["input"]] + [layer["output"] for layer in header["layers"]]


def header_of(data: bytes) -> dict:
    (n,) = struct.unpack_from("<I", data, 4)
    return json.loads(data[8:8 + n])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_binary_and_json_forward_carry_the_same_bits(client, dtype):
    js = client.post(f"{FWD}?dtype={dtype}&format=json", json=SAMPLE)
    bi = client.post(f"{FWD}?dtype={dtype}&format=binary", json=SAMPLE)
    assert js.headers["content-type"] == "application/json" and bi.headers["content-type"] == BINARY
    assert len(bi.content) < 0.8 * len(js.content)  # no base64
    j, b = js.json(), unpack(bi.content)
    assert {k: v for k, v in b.items() if k not in ("input", "layers")} == {k: v for k, v in j.items() if k not in ("input", "layers")}
    pairs = [(j["input"], b["input"])] + [(jl["output"], bl["output"]) for jl, bl in zip(j["layers"], b["layers"], strict=True)]
    wire = np.dtype("<f4" if dtype == "float32" else "<f2")
    for jt, arr in pairs:
        assert arr.dtype == wire and list(arr.shape) == jt["shape"]
        assert arr.tobytes() == base64.b64decode(jt["data"])  # the same bits
        assert np.array_equal(arr.astype(np.float32), decode_tensor(jt), equal_nan=True)
    for jl, bl in zip(j["layers"], b["layers"], strict=True):
        assert {k: v for k, v in jl.items() if k != "output"} == {k: v for k, v in bl.items() if k != "output"}


def plain_pack(body, dtype: str) -> bytes:
    """The binary form written the plain way (walk the body again for every try at the header's
    length, copy each array with tobytes): the oracle for `pack`'s faster writing."""
    wire = np.dtype("<f4" if dtype == "float32" else "<f2")

    def walk(node, fn):
        if isinstance(node, np.ndarray):
            return fn(node)
        if isinstance(node, dict):
            return {k: walk(v, fn) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v, fn) for v in node]
        return node

    arrays = []
    with np.errstate(over="ignore"):  # float16 overflow gives +-inf, as documented
        walk(body, lambda a: arrays.append(np.ascontiguousarray(a, dtype=wire)))
    start = 8
    while True:
        offsets, at = [], start
        for a in arrays:
            offsets.append(at)
            at += -(-a.nbytes // 8) * 8
        it = iter(zip(arrays, offsets))
        header = json.dumps(walk(body, lambda _: (lambda a, o: {"shape": list(a.shape), "dtype": dtype, "offset": o,
                                                                 "length": a.nbytes})(*next(it))),
                            separators=(",", ":"), allow_nan=False).encode()
        need = -(-(8 + len(header)) // 8) * 8
        if need <= start:
            break
        start = need
    out = b"CNV1" + struct.pack("<I", start - 8) + header + b" " * (start - 8 - len(header))
    return out + b"".join(a.tobytes() + b"\0" * (-a.nbytes % 8) for a in arrays)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pack_writes_the_same_bytes_as_the_plain_way(dtype):
    rng = np.random.default_rng(1)
    bodies = [
        {"a": rng.normal(size=(3, 5)).astype(np.float32), "b": [{"t": np.arange(7, dtype=np.float32)}, 1], "c": "x"},
        {"empty": np.zeros((0, 3), np.float32), "scalar": np.ones(()), "f64": rng.normal(size=(2, 2)), "t": (np.ones(3), "y")},
        {"strided": rng.normal(size=(8, 8)).astype(np.float32)[::2, 1::3], "fortran": np.asfortranarray(rng.normal(size=(4, 6))),
         "odd": np.arange(3, dtype=np.float32), "special": np.array([np.nan, np.inf, -np.inf, 7e4], np.float32)},
        {"many": [rng.normal(size=(10, 62, 62)).astype(np.float32) for _ in range(12)], "none": None, "s": "\u00e9\"{"},
        {"nothing": [1, 2.5, {"x": None}]},
        # offsets whose digits grow as the header grows, and the body's own "offset" keys left alone
        {"small": [np.ones(k, np.float32) for k in range(1, 400)], "big": np.ones(2_000_000, np.float32),
         "own": {"offset": -3, "text": '"offset":-9007199254740993'}},
    ]
    for body in bodies:
        assert pack(body, dtype) == plain_pack(body, dtype)
    for n in range(40):  # every remainder of the header's length modulo the alignment
        body = {"pad": "x" * n, "a": np.ones(5, np.float32), "b": np.ones(12_345, np.float32)}
        assert pack(body, dtype) == plain_pack(body, dtype)


def test_binary_header_and_alignment(client):
    data = client.post(f"{FWD}?format=binary&dtype=float16", json=SAMPLE).content
    assert data[:4] == b"CNV1"
    (n,) = struct.unpack_from("<I", data, 4)
    assert (8 + n) % 8 == 0
    header = header_of(data)
    assert {"step", "probabilities", "classes", "prediction", "label"} <= set(header)
    assert {"index", "type", "min", "max", "mean", "output"} <= set(header["layers"][0])
    end = 8 + n
    for d in descriptors(header):
        assert set(d) == {"shape", "dtype", "offset", "length"} and d["dtype"] == "float16"
        assert d["offset"] % 8 == 0 and d["offset"] >= end  # in order, after the header, no overlap
        assert d["length"] == int(np.prod(d["shape"])) * 2
        end = d["offset"] + d["length"]
    assert len(data) - end < 8


def test_pack_round_trips_and_refuses_a_bad_body():
    rng = np.random.default_rng(0)
    body = {"a": rng.normal(size=(3, 5)).astype(np.float32), "b": [{"t": np.arange(7, dtype=np.float32)}, 1], "c": "x"}
    out = unpack(pack(body))
    assert np.array_equal(out["a"], body["a"]) and np.array_equal(out["b"][0]["t"], body["b"][0]["t"]) and out["c"] == "x"
    assert len(pack(body)) % 8 == 0  # every array padded to the next multiple of 8
    with pytest.raises(ValueError, match="magic"):
        unpack(b"JSON" + bytes(8))
    short = pack(body)[:-16]
    with pytest.raises(ValueError, match="does not fit"):
        unpack(short)


def test_negotiation_by_accept_and_by_query(client):
    def kind(url: str, accept: str | None) -> str:
        r = client.post(url, json=SAMPLE, headers={"Accept": accept} if accept else {})
        assert r.status_code == 200 and "Accept" in r.headers.get("vary", "")
        return r.headers["content-type"]

    assert kind(FWD, None) == "application/json"
    assert kind(FWD, "application/json") == "application/json"
    assert kind(FWD, f"{BINARY}, application/json;q=0.9") == BINARY
    assert kind(FWD, f"{BINARY};q=0, application/json") == "application/json"
    assert kind(f"{FWD}?format=binary", "application/json") == BINARY
    assert kind(f"{FWD}?format=json", BINARY) == "application/json"
    assert client.post(f"{FWD}?format=xml", json=SAMPLE).status_code == 422
    assert wants_binary("*/*") is False and wants_binary(f"{BINARY};q=0.5") is True


def test_forward_looks_the_model_up_as_every_route_does(client):
    """The forward and explain routes look their model up on the event loop (no thread hop): the
    same answers, in the same order (an unknown model before a bad query or body), and the same
    documented parameter as the other model routes."""
    sample = {"sample": {"split": "test", "index": 0}}
    for url, body, status, words in (
            (f"{API}/models/nope/forward?dtype=bogus", sample, 404, "no model with id 'nope'"),
            (f"{API}/models/nope/forward", {"bad": 1}, 404, "no model with id 'nope'"),
            (f"{API}/models/{'x' * 65}/forward?dtype=bogus", sample, 422, "model_id: String should have at most 64"),
            (f"{API}/models/nope/explain", {"bad": 1}, 404, "no model with id 'nope'"),
            (f"{FWD}?dtype=bogus", {"bad": 1}, 422, "dtype: Input should be")):
        r = client.post(url, json=body)
        assert r.status_code == status and words in r.json()["detail"], (url, r.text)
    paths = client.get("/openapi.json").json()["paths"]
    param = lambda path, method: next(p for p in paths[path][method]["parameters"] if p["name"] == "model_id")  # noqa: E731
    for path in ("forward", "explain", "explain/stream"):
        assert param(f"{API}/models/{{model_id}}/{path}", "post") == param(f"{API}/models/{{model_id}}", "get")
    assert client.get(f"{API}/health").json()["status"] == "ok"


def test_binary_and_json_explanations_carry_the_same_bits(client):
    """The map, its channels and a sanity check's randomized map: arrays in the binary form, base64 in JSON."""
    body = {**SAMPLE, "method": "saliency", "checks": ["randomization"], "seed": 3}
    url = f"{API}/models/{SHIPPED_ID}/explain"
    js = client.post(url, json=body)
    bi = client.post(url, json=body, headers={"Accept": BINARY})
    assert js.headers["content-type"] == "application/json" and bi.headers["content-type"] == BINARY
    j, b = js.json(), unpack(bi.content)
    pairs = [(j["map"], b["map"]), (j["checks"]["randomization"]["map"], b["checks"]["randomization"]["map"])]
    if j["channels"] is not None:
        pairs.append((j["channels"], b["channels"]))
    for jt, arr in pairs:
        assert arr.dtype == np.dtype("<f4") and list(arr.shape) == jt["shape"]
        assert arr.tobytes() == base64.b64decode(jt["data"])
    rest = ("map", "channels", "checks")
    assert {k: v for k, v in b.items() if k not in rest} == {k: v for k, v in j.items() if k not in rest}
    assert b["checks"]["randomization"]["rank_correlation"] == j["checks"]["randomization"]["rank_correlation"]


@pytest.mark.parametrize("route", ["forward", "explain"])
def test_both_media_types_are_documented(client, route):
    op = client.get("/openapi.json").json()["paths"][f"{API}/models/{{model_id}}/{route}"]["post"]
    assert set(op["responses"]["200"]["content"]) == {"application/json", BINARY}
    assert any(p["name"] == "format" for p in op["parameters"])


# ---- compression ------------------------------------------------------------------------------
def _app(body: bytes, media_type: str):
    async def app(scope, receive, send):
        await Response(body, media_type=media_type)(scope, receive, send)

    return Compression(app)


def _raw(app, client: tuple[str, int], accept_encoding: str) -> tuple[dict, bytes]:
    c = TestClient(app, base_url="http://testserver", client=client)  # sets scope["client"]
    with c.stream("GET", "/", headers={"Accept-Encoding": accept_encoding}) as r:
        return r.headers, b"".join(r.iter_raw())


def _decompress(codec: str | None, data: bytes) -> bytes:
    if codec is None:
        return data
    if codec == "gzip":
        return gzip.decompress(data)
    if codec == "br":
        import brotli

        return brotli.decompress(data)
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 26)


BIG = json.dumps([float(v) for v in np.random.default_rng(0).normal(size=20_000)]).encode()


def test_compression_skipped_on_loopback_and_for_small_or_compressed_bodies():
    for host in ("127.0.0.1", "::1"):
        headers, raw = _raw(_app(BIG, "application/json"), (host, 1), "gzip, br, zstd")
        assert "content-encoding" not in headers and raw == BIG
    small = BIG[: MIN_BYTES - 1]
    headers, raw = _raw(_app(small, "application/json"), LAN, "gzip, br")
    assert "content-encoding" not in headers and raw == small
    headers, raw = _raw(_app(BIG, "image/png"), LAN, "gzip, br")
    assert "content-encoding" not in headers and raw == BIG
    headers, raw = _raw(_app(BIG, "application/json"), LAN, "identity")
    assert "content-encoding" not in headers and raw == BIG


def test_compression_decides_per_client_address():
    """The loopback test is remembered for the last address (a speed-up): requests alternating
    between a LAN and a loopback client still get compressed and plain answers in turn."""
    app = _app(BIG, "application/json")
    for _ in range(3):
        for client, compressed in ((LAN, True), (("127.0.0.1", 1), False), (("::1", 2), False), (("192.0.2.8", 3), True)):
            headers, raw = _raw(app, client, "gzip, br")
            assert ("content-encoding" in headers) is compressed, client
            assert _decompress(headers.get("content-encoding"), raw) == BIG


def test_compression_uses_the_fastest_accepted_codec():
    app = _app(BIG, "application/json")
    fastest = next(iter(app.codecs))
    assert list(app.codecs)[-2:] == ["br", "gzip"]  # brotli is a dependency; zstd is used when installed
    for accept, want in (("gzip, deflate, br, zstd", fastest), ("gzip, deflate, br", "br"), ("gzip", "gzip"),
                         ("br;q=0, gzip", "gzip"), ("*", fastest)):
        headers, raw = _raw(app, LAN, accept)
        assert headers["content-encoding"] == want, accept
        assert int(headers["content-length"]) == len(raw) < len(BIG) and "Accept-Encoding" in headers["vary"]
        assert _decompress(want, raw) == BIG
    assert choose("compress", app.codecs) is None


def test_forward_compressed_for_a_lan_client(settings):
    with TestClient(create_app(settings), base_url="http://testserver", client=LAN) as c:
        with c.stream("POST", f"{FWD}?format=binary", json=SAMPLE, headers={"Accept-Encoding": "gzip, br"}) as r:
            raw = b"".join(r.iter_raw())
            assert r.headers["content-encoding"] == "br" and r.headers["content-type"] == BINARY
        plain = c.post(f"{FWD}?format=binary", json=SAMPLE, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and _decompress("br", raw) == plain.content
    with TestClient(create_app(settings), base_url="http://testserver", client=("127.0.0.1", 5)) as c:
        r = c.post(f"{FWD}?format=binary", json=SAMPLE, headers={"Accept-Encoding": "gzip, br, zstd"})
        assert "content-encoding" not in r.headers


# ---- the live socket -----------------------------------------------------------------------------
def frames(ws, want, limit: int = 400):
    """Read frames until ``want(kind, msg)``; ``kind`` is "bytes" or "text", msg decoded either way."""
    for _ in range(limit):
        m = ws.receive()
        kind, msg = ("bytes", unpack(m["bytes"])) if m.get("bytes") is not None else ("text", json.loads(m["text"]))
        if want(kind, msg):
            return kind, msg
    raise AssertionError("no matching frame")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_live_activations_arrive_as_binary_frames(client, dtype):
    mid = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "seed": 4}).json()["id"]
    pin = {"sample": {"split": "test", "index": 2}}
    with client.websocket_connect(f"{API}/models/{mid}/live?format=binary") as ws:
        assert json.loads(ws.receive_text())["type"] == "state"  # other messages stay JSON text
        ws.send_json({"action": "state", "pin": pin, "dtype": dtype})
        kind, msg = frames(ws, lambda k, m: m["type"] == "activations")
        assert kind == "bytes"
        frames(ws, lambda k, m: m["type"] == "state" and k == "text")
        fwd = unpack(client.post(f"{API}/models/{mid}/forward?format=binary&dtype={dtype}", json=pin).content)
        assert msg["step"] == fwd["step"] == 0 and msg["probabilities"] == fwd["probabilities"]
        assert msg["input"].tobytes() == fwd["input"].tobytes()
        for a, b in zip(msg["layers"], fwd["layers"], strict=True):
            assert a["output"].dtype == b["output"].dtype and a["output"].tobytes() == b["output"].tobytes()
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:  # without asking: JSON text, as before
        ws.receive_text()
        ws.send_json({"action": "state", "pin": pin, "dtype": dtype})
        kind, msg = frames(ws, lambda k, m: m["type"] == "activations")
        assert kind == "text" and msg["input"]["dtype"] == dtype
