"""The one wire format for arrays: ``T = {"shape": [...], "dtype": "float32" | "float16", "data": base64}``.

``data`` is the base64 of the array's little-endian bytes in C order, so a browser decodes it with
``new Float32Array(bytes.buffer)`` (every browser is little-endian) and Python with `decode_tensor`.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np

WireDtype = Literal["float32", "float16"]
WIRE_DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}


def encode_tensor(x: np.ndarray, dtype: WireDtype = "float32") -> dict[str, Any]:
    """``x`` (any shape, any real dtype) -> T. float16 halves the size; values beyond +-65504 become +-inf."""
    if dtype not in WIRE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(WIRE_DTYPES)}, got {dtype!r}")
    with np.errstate(over="ignore"):  # float16 overflow is documented: it gives +-inf
        arr = np.ascontiguousarray(x, dtype=WIRE_DTYPES[dtype])
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
