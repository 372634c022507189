"""JSON files the way the server keeps them: strict (no NaN or infinity), compact, written atomically.

JSON has no NaN or infinity; Python's `json` writes them anyway (as ``NaN``), which browsers then
refuse to parse. Callers turn non-finite numbers into None first; `dumps` raises ``ValueError`` on
any that slipped through instead of writing a document nobody else can read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.fileio import atomic_write


def dumps(obj: Any) -> str:
    """Strict, compact JSON text: ``{"a":1}``; raises ValueError on NaN or infinity."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` as strict UTF-8 JSON, atomically (see `engine.fileio.atomic_write`)."""
    atomic_write(path, dumps(obj).encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """The document in ``path``, or None when the file is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
