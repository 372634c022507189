"""Messages between the server and its worker processes: a JSON header plus raw arrays, over a pipe.

A frame is ``b"CNW1"``, a uint32 LE header length, a uint64 LE body length, the UTF-8 JSON header
``{..., "arrays": [[name, dtype, shape, offset, nbytes], ...]}``, then the arrays' C-order bytes.
No pickle: a worker's answer can only ever be numbers and JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"CNW1"
_PREFIX = struct.Struct("<4sIQ")
DTYPES = frozenset({"float32", "float64", "int64", "uint8", "bool"})
MAX_HEADER = 16 * 1024 * 1024


class FrameError(ValueError):
    """A frame that is not one of ours (a worker that printed to its pipe, or a truncated write)."""


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> list[bytes | memoryview]:
    """The frame's parts, to be written in order (no copy of the arrays' bytes)."""
    table, parts, offset = [], [], 0
    for name, arr in (arrays or {}).items():
        arr = np.asarray(arr)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
        if arr.dtype.name not in DTYPES:
            raise FrameError(f"array {name!r} has dtype {arr.dtype}, not one of {sorted(DTYPES)}")
        table.append([name, arr.dtype.name, list(arr.shape), offset, arr.nbytes])
        if arr.nbytes:
            parts.append(memoryview(arr.reshape(-1)).cast("B"))
        offset += arr.nbytes
    head = json.dumps({**header, "arrays": table}, separators=(",", ":")).encode()
    return [_PREFIX.pack(MAGIC, len(head), offset), head, *parts]


def write(stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame and flush (callers serialize writes to one stream)."""
    for part in encode(header, arrays):
        stream.write(part)
    stream.flush()


def _exactly(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise EOFError("the pipe closed mid-frame" if got else "the pipe closed")
        got += k
    return bytes(buf) if n < 4096 else buf


def read(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one frame: ``(header without "arrays", {name: array})``. EOFError when the pipe has closed."""
    magic, head_len, body_len = _PREFIX.unpack(_exactly(stream, _PREFIX.size))
    if magic != MAGIC or head_len > MAX_HEADER:
        raise FrameError(f"not a worker frame (starts {magic!r})")
    header = json.loads(_exactly(stream, head_len))
    body = _exactly(stream, body_len) if body_len else b""
    arrays = {}
    for name, dtype, shape, offset, nbytes in header.pop("arrays", []):
        if dtype not in DTYPES or offset + nbytes > body_len:
            raise FrameError(f"array {name!r} is malformed")
        arrays[name] = np.frombuffer(body, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize, offset=offset).reshape(shape)
    return header, arrays


def split(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """A JSON-like value holding arrays anywhere -> ``(the value with each array replaced by
    {"$array": name}, {name: array})``, to send as one frame's header field and arrays."""
    arrays: dict[str, np.ndarray] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            name = f"r/{len(arrays)}"
            arrays[name] = v
            return {"$array": name}
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(obj), arrays


def join(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of `split`."""
    if isinstance(obj, dict):
        if obj.keys() == {"$array"}:
            return arrays[obj["$array"]]
        return {k: join(x, arrays) for k, x in obj.items()}
    if isinstance(obj, list):
        return [join(x, arrays) for x in obj]
    return obj
