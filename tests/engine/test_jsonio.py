"""engine.jsonio: strict compact JSON, written atomically, read back or None."""

from __future__ import annotations

import math

import pytest

from engine.jsonio import dumps, read_json, write_json


def test_dumps_is_compact_and_refuses_nan_and_infinity():
    assert dumps({"a": [1, 2.5, None], "b": "é"}) == '{"a":[1,2.5,null],"b":"\\u00e9"}'
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            dumps({"loss": bad})


def test_write_then_read_round_trips(tmp_path):
    doc = {"steps": [{"step": 1, "loss": 0.5}], "name": "naïve"}
    write_json(tmp_path / "sub" / "h.json", doc)
    assert read_json(tmp_path / "sub" / "h.json") == doc
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["h.json"]  # no temp file left behind


def test_write_with_nan_leaves_the_old_file(tmp_path):
    write_json(tmp_path / "h.json", {"ok": 1})
    with pytest.raises(ValueError):
        write_json(tmp_path / "h.json", {"loss": math.nan})
    assert read_json(tmp_path / "h.json") == {"ok": 1}


@pytest.mark.parametrize("content", [None, b"", b"{not json", b"\xff\xfe\x00garbage"])
def test_read_json_is_none_for_missing_or_broken_files(tmp_path, content):
    path = tmp_path / "h.json"
    if content is not None:
        path.write_bytes(content)
    assert read_json(path) is None
