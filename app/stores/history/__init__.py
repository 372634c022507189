"""One model's training history in an embedded SQLite database, appended to and never rewritten.

`schema`: the tables, the connection and a row's encoding (and the older ``history.json`` form);
`buckets`: the downsampling, ranges of steps that keep each range's minima and maxima; `store`: the
writer, `History`; `reader`: `HistoryReader`, downsampled series, pages and CSV for one request.
"""

from __future__ import annotations

from app.stores.history.buckets import PICKS, WIDTHS
from app.stores.history.reader import CSV_HEADER, HistoryReader
from app.stores.history.schema import (
    DB_NAME,
    KINDS,
    LAYER_FIELDS,
    LEGACY_NAME,
    SCHEMA,
    STEP_COLUMNS,
    STEP_FIELDS,
    VERSION,
    read_json_history,
)
from app.stores.history.store import History

__all__ = [
    "CSV_HEADER",
    "DB_NAME",
    "KINDS",
    "LAYER_FIELDS",
    "LEGACY_NAME",
    "PICKS",
    "SCHEMA",
    "STEP_COLUMNS",
    "STEP_FIELDS",
    "VERSION",
    "WIDTHS",
    "History",
    "HistoryReader",
    "read_json_history",
]
