"""The page works offline: no template or static file loads anything from another origin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = [
    re.compile(r"""\b(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.I),
    re.compile(r"""\bimport\b[^;]*?["'](?:https?:)?//""", re.I),
    re.compile(r"""\bimport\s*\(\s*["'](?:https?:)?//""", re.I),
    re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I),
    re.compile(r"""@import\s+["'](?:https?:)?//""", re.I),
    re.compile(r"""\b(?:fetch|WebSocket|EventSource)\s*\(\s*["'`](?:https?|wss?):""", re.I),
]


def files():
    for folder in ("templates", "static"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".html", ".js", ".css", ".svg", ".json"}:
                yield path


def test_there_are_page_files():
    names = {p.name for p in files()}
    assert {"index.html", "base.html", "main.js", "api.js", "state.js"} <= names


def test_no_external_urls():
    found = []
    for path in files():
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            for m in pattern.finditer(text):
                found.append(f"{path.relative_to(ROOT)}: {m.group(0)!r}")
    assert not found, "external references:\n" + "\n".join(found)


def test_one_module_script_and_no_inline_code():
    html = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "templates").glob("*.html"))
    scripts = re.findall(r"<script\b[^>]*>", html)
    modules = [s for s in scripts if 'type="module"' in s]
    assert len(modules) == 1 and 'src="/static/js/main.js"' in modules[0]
    assert all('type="application/json"' in s or 'src=' in s for s in scripts), scripts
    assert not re.search(r"\sstyle\s*=", html), "inline style attributes are refused by the CSP"
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers are refused by the CSP"


def test_js_modules_are_small_and_checked():
    for path in sorted((ROOT / "static" / "js").rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("// @ts-check"), f"{path.name} lacks // @ts-check"
        assert len(text.splitlines()) <= 320, f"{path.name} has {len(text.splitlines())} lines"
        for spec in re.findall(r"""\bfrom\s+["']([^"']+)["']""", text):
            assert spec.startswith(".") and spec.endswith(".js"), f"{path.name}: import {spec!r} must be relative with .js"
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, f"{path.name} writes HTML"
