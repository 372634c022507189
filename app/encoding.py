"""The one wire format for arrays, in two forms a client chooses between.

**JSON** (the default, for tools that want plain JSON): each tensor is
``T = {"shape": [...], "dtype": "float32" | "float16", "data": base64}``, ``data`` being the base64 of
the array's little-endian bytes in C order; Python decodes it with `decode_tensor`.

**Binary** (``Accept: application/vnd.cnnvis.tensors`` or ``?format=binary``; what the page uses)::

    bytes 0-3   magic b"CNV1"
    bytes 4-7   n, the header's length, uint32 little-endian (8 + n is a multiple of 8)
    bytes 8-    the header: UTF-8 JSON, the same object as the JSON form with each tensor replaced by
                {"shape": [...], "dtype": ..., "offset": o, "length": bytes}, padded with spaces
    then        the arrays, little-endian, C order, each starting at its ``offset`` from the first
                byte of the body, a multiple of 8 (zero bytes between them)

so a page makes ``new Float32Array(buffer, offset, length / 4)`` without copying, and float16 is
expanded through a table. No base64 (a third larger) and no text parsing of numbers; `unpack`
is the Python decoder. Both forms carry the same bits.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any, Literal

import numpy as np
from starlette.responses import Response

WireDtype = Literal["float32", "float16"]
WIRE_DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
BINARY = "application/vnd.cnnvis.tensors"
MAGIC = b"CNV1"
ALIGN = 8
_DESCRIPTOR = {"shape", "dtype", "offset", "length"}
_MARK = 2**53  # `pack` marks the i-th array's offset as -(2**53 + i): no answer's own integers reach 2**53
_OFFSET = re.compile(r'"offset":-(\d{16,})')

# The 200 answer of a tensor-heavy route in the OpenAPI schema: both media types.
TENSOR_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "JSON with base64 tensors (default), or the binary form when asked for by "
                   f"`Accept: {BINARY}` or `?format=binary`: magic `CNV1`, a uint32 LE header length, a JSON "
                   "header in which each tensor is `{shape, dtype, offset, length}`, then the raw little-endian "
                   "arrays, each at an offset that is a multiple of 8",
    "content": {"application/json": {"schema": {"type": "object"}},
                BINARY: {"schema": {"type": "string", "format": "binary"}}},
}}  # fmt: skip


def _wire(x: np.ndarray, dtype: str) -> np.ndarray:
    wire = WIRE_DTYPES.get(dtype)
    if wire is None:
        raise ValueError(f"dtype must be one of {sorted(WIRE_DTYPES)}, got {dtype!r}")
    if x.dtype == wire and x.flags.c_contiguous:
        return x  # as most arrays already are; errstate alone costs more than the rest of packing them
    with np.errstate(over="ignore"):  # float16 overflow is documented: it gives +-inf
        return np.ascontiguousarray(x, dtype=wire)


def encode_tensor(x: np.ndarray, dtype: WireDtype = "float32") -> dict[str, Any]:
    """``x`` (any shape, any real dtype) -> T. float16 halves the size; values beyond +-65504 become +-inf."""
    arr = _wire(x, dtype)
    return {"shape": list(arr.shape), "dtype": dtype, "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_tensor(t: dict[str, Any]) -> np.ndarray:
    """T -> a float32 array of ``t["shape"]``; raises ValueError when the parts do not agree."""
    dtype = WIRE_DTYPES.get(t.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise ValueError(f"dtype must be one of {sorted(WIRE_DTYPES)}")
    shape = tuple(int(s) for s in t["shape"])
    raw = base64.b64decode(t["data"], validate=True)
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"data holds {len(raw)} bytes, shape {list(shape)} needs {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)


def _replace(body: Any, fn) -> Any:
    """``body`` with every ndarray inside dicts and lists replaced by ``fn(array)``."""
    if isinstance(body, np.ndarray):
        return fn(body)
    if isinstance(body, dict):
        return {k: _replace(v, fn) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [_replace(v, fn) for v in body]
    return body


def to_json(body: Any, dtype: WireDtype = "float32") -> Any:
    """A body holding ndarrays -> the JSON form (each array a T)."""
    return _replace(body, lambda a: encode_tensor(a, dtype))


def pack(body: Any, dtype: WireDtype = "float32") -> bytes:
    """A body holding ndarrays -> the binary form (see the module docstring).

    One walk of ``body`` puts a descriptor in place of each array, and one ``json.dumps`` writes the
    header with a marker in place of each offset. The offsets move with the header's length and
    their digits lengthen it, so that fixed point is found on integers, then the markers are
    replaced. The arrays are joined from their own buffers (one copy). The bytes are those of the
    plain way, dumping the header again at each try (tests/api/test_wire.py).
    """
    arrays: list[np.ndarray] = []

    def describe(a: np.ndarray) -> dict[str, Any]:
        arrays.append(w := _wire(a, dtype))
        return {"shape": list(w.shape), "dtype": dtype, "offset": -(_MARK + len(arrays)), "length": w.nbytes}

    text = json.dumps(_replace(body, describe), separators=(",", ":"), allow_nan=False)
    pieces = _OFFSET.split(text)  # text, marker, text, marker, ..., text
    if [int(m) - _MARK for m in pieces[1::2]] != list(range(1, len(arrays) + 1)):
        raise ValueError("the body holds an integer beyond 2**53 under an 'offset' key")
    spans = [-(-a.nbytes // ALIGN) * ALIGN for a in arrays]
    fixed = sum(len(p) for p in pieces[::2]) + len('"offset":') * len(arrays)
    start = ALIGN
    while True:  # the least start that holds the header, as when dumping it again at each try
        offsets = np.cumsum([start, *spans[:-1]]).tolist() if arrays else []
        need = -(-(8 + fixed + sum(len(str(o)) for o in offsets)) // ALIGN) * ALIGN
        if need <= start:
            break
        start = need
    header = "".join(f'{p}"offset":{o}' for p, o in zip(pieces[::2], offsets, strict=False)) + pieces[-1]
    parts: list[Any] = [MAGIC, struct.pack("<I", start - 8), header.encode(), b" " * (start - 8 - len(header))]
    for a in arrays:
        parts += [a.reshape(-1).view(np.uint8), b"\0" * (-a.nbytes % ALIGN)]  # C-contiguous (`_wire`): a view
    return b"".join(parts)


def unpack(data: bytes) -> Any:
    """The binary form -> the header with each tensor replaced by a read-only array in its wire dtype
    (float16 stays float16, so its bits can be compared); ValueError when the parts do not agree."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not a cnnvis tensor body (the magic bytes are wrong)")
    (n,) = struct.unpack_from("<I", data, 4)
    if 8 + n > len(data):
        raise ValueError("the header runs past the end of the body")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = memoryview(data)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == _DESCRIPTOR:
                dtype = WIRE_DTYPES.get(node["dtype"])
                shape, offset, length = tuple(int(s) for s in node["shape"]), int(node["offset"]), int(node["length"])
                if dtype is None or offset % ALIGN or offset < 8 + n or offset + length > len(data) or \
                        length != int(np.prod(shape)) * dtype.itemsize:
                    raise ValueError(f"tensor {node} does not fit the body")
                return np.frombuffer(buf[offset:offset + length], dtype=dtype).reshape(shape)
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(header)


def wants_binary(accept: str | None, fmt: str | None = None) -> bool:
    """``?format=`` decides when given; otherwise the binary form when ``Accept`` names it (q > 0)."""
    if fmt:
        return fmt == "binary"
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() == BINARY:
            q = next((p.split("=", 1)[1] for p in params if p.replace(" ", "").lower().startswith("q=")), "1")
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def tensor_response(body: Any, dtype: WireDtype, binary: bool) -> Response:
    """A body holding ndarrays as an HTTP answer in the form asked for (``Vary: Accept`` either way)."""
    headers = {"Vary": "Accept"}
    if binary:
        return Response(pack(body, dtype), media_type=BINARY, headers=headers)
    text = json.dumps(to_json(body, dtype), separators=(",", ":"), allow_nan=False)
    return Response(text.encode(), media_type="application/json", headers=headers)
