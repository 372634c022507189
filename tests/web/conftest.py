"""Fixtures for the browser tests: a real server in a subprocess and Debian's Chromium via Playwright.

The tests skip (with the reason) when Playwright or Chromium is missing, so the suite still passes
on a machine without a browser. Screenshots go to ``test-artifacts/`` (gitignored). Tests wait for
something the page shows (a locator, `expect`, `wait_until`), never for a fixed time, and assert no
durations: a slow machine makes them slower, not red.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_S = 30.0  # the longest any wait here lasts before it fails (it ends as soon as the state shows)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
# A small built-in dataset keeps evaluation and epochs quick; the page does not depend on its size.
SERVER = """
import os, sys, uvicorn
from pathlib import Path
from app.config import Settings
from app.main import create_app
settings = Settings(data_dir=Path(sys.argv[1]), builtin_sizes={"shapes": (800, 200), "digits": (800, 200)},
                    workspaces=os.environ.get("CNNVIS_WORKSPACES") == "1")
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (our own local server)
        return json.loads(r.read())


def _serve(data: Path, workspaces: bool = False):
    """Run a real server on 127.0.0.1 with the data directory ``data``; yield its base URL once it answers."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CNNVIS_WORKSPACES": "1" if workspaces else "0"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(data), str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _get_json(base + "/api/v1/health")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                proc.kill()
                pytest.fail(f"the server did not start:\n{out[-3000:]}")
            time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Base URL of a real server on 127.0.0.1 with a fresh data directory."""
    yield from _serve(tmp_path_factory.mktemp("pagedata"))


@pytest.fixture(scope="session")
def ws_server(tmp_path_factory):
    """Base URL of a second real server, with private workspaces on (`CNNVIS_WORKSPACES=1`): each browser
    context (its own cookie) is another workspace."""
    yield from _serve(tmp_path_factory.mktemp("wsdata"), workspaces=True)


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    exe = _chromium()
    if not exe:
        pytest.skip("no Chromium found (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser, base: str):
    """A page at 1280x800 in a new browser context (its own cookies: its own workspace on a server with
    workspaces) that records console errors and uncaught exceptions; `check_console` then judges them."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.base_url = base  # type: ignore[attr-defined]
    pg.console_errors = errors  # type: ignore[attr-defined]
    pg.expected_http_errors = set()  # type: ignore[attr-defined]  # statuses a test provokes on purpose
    return pg


def check_console(pg) -> None:
    """Fail on any console error but the 4xx answers the test provoked on purpose (Chromium logs every
    4xx answer to fetch(); such a test names its status in ``pg.expected_http_errors``)."""
    allowed = tuple(f"status of {code} " for code in pg.expected_http_errors)
    errors = pg.console_errors  # type: ignore[attr-defined]
    unexpected = [e for e in errors if not (allowed and "Failed to load resource" in e and any(a in e for a in allowed))]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)


@pytest.fixture
def page(browser, server, request):
    """A fresh page at 1280x800 that fails the test on any console error or uncaught exception."""
    pg = new_page(browser, server)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        shot(pg, f"FAILED-{request.node.name}")
    pg.context.close()
    check_console(pg)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def api(pg, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"):
    """Call the server's API directly (as another client would); an error status fails the test."""
    req = urllib.request.Request(pg.base_url + "/api/v1" + path, data=body, method=method,
                                 headers={"Content-Type": ctype} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S) as r:  # noqa: S310 (our own local server)
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None


def expect(actual):
    """Playwright's `expect`, waiting up to `WAIT_S` (its default of 5 s is short on a busy machine)."""
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=WAIT_S * 1000)
    return pw_expect(actual)


def wait_until(check, what: str):
    """Poll ``check()`` (Python reading the page or the API) until it is truthy and return its value;
    fail naming ``what`` after `WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {WAIT_S:.0f} s waiting for {what}")
        time.sleep(0.05)


def record_requests(pg) -> list[str]:
    """Every request the page makes from now on, as "METHOD url"; statuses of 400 and up get their own
    "<status> METHOD url" entry when the answer arrives."""
    seen: list[str] = []
    pg.on("request", lambda r: seen.append(f"{r.method} {r.url}"))
    pg.on("response", lambda r: seen.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
    return seen


def shot(pg, name: str, full_page: bool = False) -> Path:
    """Save a screenshot under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if full_page:
        pg.evaluate("window.scrollTo(0, 0)")
    pg.screenshot(path=str(path), full_page=full_page)
    return path
