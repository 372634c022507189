"""The page's static files from memory (app/routes/pages.py `PageFiles`): the same answers as
Starlette's `StaticFiles` (bytes, headers, 304s, ranges, refusals), plus ``Cache-Control: no-cache``,
and an edited file is served at once."""

from __future__ import annotations

import os
import warnings

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from app.routes.pages import PageFiles
from tests.api.conftest import open_client

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's import-time note about httpx2 (see conftest)
    from starlette.testclient import TestClient

SAME = ("content-type", "content-length", "etag", "last-modified", "accept-ranges")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("export const a = 1;\n")
    (tmp_path / "js" / "b.js").write_text("export const b = 'é';\n" * 50)
    (tmp_path / "site.css").write_text("body { margin: 0; }\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(5000))
    (tmp_path.parent / "secret.txt").write_text("outside the folder")
    return tmp_path


def clients(folder, **limits):
    """The files under test, and clients for them and for plain `StaticFiles` (each mounted in an
    app, which turns their HTTPExceptions into answers)."""
    fast = PageFiles(directory=str(folder), **limits)
    app = lambda files: Starlette(routes=[Mount("/", app=files)])  # noqa: E731
    return fast, TestClient(app(fast)), TestClient(app(StaticFiles(directory=str(folder))))


def test_answers_match_staticfiles_and_say_revalidate(folder):
    files, fast, plain = clients(folder, max_file_bytes=4096)
    for path in ("/js/a.js", "/js/b.js", "/site.css", "/big.bin", "/js/a.js"):  # big.bin: over the cap, StaticFiles answers
        got, want = fast.get(path), plain.get(path)
        assert got.status_code == want.status_code == 200 and got.content == want.content, path
        assert {k: got.headers.get(k) for k in SAME} == {k: want.headers.get(k) for k in SAME}, path
        assert got.headers["cache-control"] == "no-cache", path
    assert set(files.kept) == {str(folder / "js" / "a.js"), str(folder / "js" / "b.js"), str(folder / "site.css")}
    assert files.kept_bytes == sum((folder / p).stat().st_size for p in ("js/a.js", "js/b.js", "site.css"))


def test_conditional_range_head_and_refusals_match(folder):
    _, fast, plain = clients(folder)
    first = fast.get("/js/b.js")
    for headers in ({"If-None-Match": first.headers["etag"]}, {"If-None-Match": f'W/{first.headers["etag"]}, "x"'},
                    {"If-Modified-Since": first.headers["last-modified"]}, {"Range": "bytes=2-9"},
                    {"Range": "bytes=0-1,4-5"}, {"Range": "bytes=999999-"}, {"If-None-Match": '"other"'}):
        got, want = fast.get("/js/b.js", headers=headers), plain.get("/js/b.js", headers=headers)
        boundary = lambda r: r.headers.get("content-type", "").partition("boundary=")[2].encode()  # noqa: E731  random per answer
        assert got.status_code == want.status_code, headers
        assert got.content.replace(boundary(got), b"") == want.content.replace(boundary(want), b""), headers
        assert got.headers.get("etag") == want.headers.get("etag"), headers
        assert got.headers.get("cache-control") == ("no-cache" if got.status_code in (200, 206, 304) else None), headers
    got, want = fast.head("/js/b.js"), plain.head("/js/b.js")
    assert got.status_code == want.status_code == 200 and got.content == b""
    assert {k: got.headers.get(k) for k in SAME} == {k: want.headers.get(k) for k in SAME}
    for path in ("/js/nope.js", "/js", "/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/js/a.js%00"):
        assert fast.get(path).status_code == plain.get(path).status_code == 404, path
    assert fast.post("/js/a.js").status_code == plain.post("/js/a.js").status_code == 405


def test_an_edited_file_is_served_at_once(folder):
    files, fast, _ = clients(folder)
    path = folder / "js" / "a.js"
    old = fast.get("/js/a.js")
    path.write_text("export const a = 22222;\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # a later mtime, as an editor leaves
    new = fast.get("/js/a.js")
    assert new.content == path.read_bytes() and new.headers["etag"] != old.headers["etag"]
    assert fast.get("/js/a.js", headers={"If-None-Match": old.headers["etag"]}).status_code == 200
    assert files.kept_bytes == sum(len(v[1]) for v in files.kept.values())


def test_memory_is_capped(folder):
    files, fast, plain = clients(folder, max_total_bytes=100)
    for path in ("/js/a.js", "/js/b.js", "/site.css"):
        assert fast.get(path).content == plain.get(path).content
    assert files.kept_bytes <= 100 and str(folder / "js" / "b.js") not in files.kept


def test_the_page_files_carry_the_page_headers(settings):
    with open_client(settings) as c:
        r = c.get("/static/js/main.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers["cache-control"] == "no-cache" and "script-src 'self'" in r.headers["content-security-policy"]
        assert c.get("/static/js/main.js", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        assert c.get("/static/../app/main.py").status_code == 404
