"""The Training tab's CSV download is the server's whole history (`GET /models/{id}/history?format=csv`),
and on a server with workspaces a model's owner shares it by link: another browser (another workspace)
opens the link and sees the model read-only with its dataset's images, and cannot change it; without
the token the model is not there."""

from __future__ import annotations

import io
import re
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import WAIT_S, api, check_console, expect, new_page, shot, wait_until
from .test_page import OVERVIEW, ensure_trainable, open_page

pytestmark = pytest.mark.browser

MODEL = "() => { const m = window.cnnvis.store.get().model; return m && {id: m.id, read_only: m.read_only, step: m.step}; }"
SAMPLES_SHOWN = """() => { const imgs = Array.from(document.querySelectorAll('.samples img'));
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0); }"""
SPEC = {"input_shape": [3, 16, 16], "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "relu"},
                                              {"type": "maxpool2d", "pool_size": 2}, {"type": "flatten"},
                                              {"type": "dense", "units": 2}]}


def csv_text(base: str, model_id: str) -> str:
    with urllib.request.urlopen(f"{base}/api/v1/models/{model_id}/history?format=csv", timeout=WAIT_S) as r:  # noqa: S310
        return r.read().decode("utf-8")


def test_download_csv_is_the_servers_whole_history(page):
    open_page(page)
    ensure_trainable(page)
    page.click('[data-tab="training"]')
    mid = page.evaluate(MODEL)["id"]
    assert page.is_hidden('[data-action="share-model"]'), "no share links on a server without workspaces"
    # every kind of row: steps, an evaluation and a change, made as another client would
    api(page, "POST", f"/models/{mid}/train", b'{"steps": 3}')
    api(page, "POST", f"/models/{mid}/evaluate", b'{"split": "test", "max_examples": 50}')
    api(page, "PATCH", f"/models/{mid}", b'{"training": {"learning_rate": 0.005}}')
    api(page, "POST", f"/models/{mid}/train", b'{"steps": 2}')
    link = page.locator('[data-action="download-csv"]')
    expect(link).to_have_attribute("href", f"/api/v1/models/{mid}/history?format=csv")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == f"{mid}-history.csv"
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text == csv_text(page.base_url, mid)
    rows = [line.split(",", 2)[0] for line in text.splitlines()]
    assert text.startswith("split,step,epoch,loss,accuracy,learning_rate,time,changes")
    assert rows.count("train") == api(page, "GET", f"/models/{mid}/history")["total_steps"] and "test" in rows and "event" in rows


def pets_zip() -> bytes:
    """A .zip of two class folders of small distinct pictures."""
    from PIL import Image, ImageDraw

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c, cls in enumerate(("cat", "dog")):
            for i in range(5):
                img = Image.new("RGB", (16, 16), (240, 240, 240))
                ImageDraw.Draw(img).rectangle([i, c * 6, i + 6, c * 6 + 6], fill=(200 * c, 60, 200 - 40 * i))
                png = io.BytesIO()
                img.save(png, format="PNG")
                z.writestr(f"{cls}/{i}.png", png.getvalue())
    return buf.getvalue()


def opened(pg, path: str) -> None:
    pg.goto(pg.base_url + path)
    pg.wait_for_selector(OVERVIEW, state="visible", timeout=WAIT_S * 1000)
    wait_until(lambda: not pg.evaluate("() => window.cnnvis.store.get().loading"), "the model to be loaded")


def test_a_shared_model_opens_read_only_in_another_workspace(browser, ws_server, request):
    owner, viewer, stranger = (new_page(browser, ws_server) for _ in range(3))
    try:
        open_page(owner)
        assert owner.is_hidden('[data-action="share-model"]'), "a shipped model is not the owner's to share"
        # the owner's own dataset and a model on it (through the owner's cookie, as the page's requests go)
        r = owner.request.post(f"{ws_server}/api/v1/datasets", multipart={
            "file": {"name": "pets.zip", "mimeType": "application/zip", "buffer": pets_zip()},
            "name": "pets", "channels": "3", "height": "16", "width": "16"})
        assert r.ok, r.text()
        r = owner.request.post(f"{ws_server}/api/v1/models", data={"spec": SPEC, "dataset": "pets", "name": "Pets net"})
        assert r.ok, r.text()
        mid = r.json()["id"]
        opened(owner, f"/?model={mid}&tab=training")
        owner.context.grant_permissions(["clipboard-read", "clipboard-write"])
        share = owner.locator('[data-action="share-model"]')
        expect(share).to_be_visible()
        expect(share).to_have_attribute("aria-label", re.compile("Share"))
        share.focus()
        owner.keyboard.press("Enter")  # reachable from the keyboard
        field = owner.locator('[data-share="link"]')
        expect(field).to_have_value(re.compile(rf"^{re.escape(ws_server)}/\?model={mid}&share=[A-Za-z0-9_-]+$"))
        assert field.get_attribute("readonly") is not None
        expect(owner.locator('[data-view="share"]')).to_contain_text("Anyone with the link can look at this model but not change it")
        url = field.input_value()
        token = parse_qs(urlsplit(url).query)["share"][0]
        owner.click('[data-action="copy-share-link"]')
        expect(owner.locator('[data-share="status"]')).to_have_text("Link copied.")
        assert owner.evaluate("() => navigator.clipboard.readText()") == url
        owner.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new Error('refused')); }")
        owner.click('[data-action="copy-share-link"]')
        expect(owner.locator('[data-share="status"]')).to_contain_text("copy it with Ctrl+C")
        shot(owner, "share-link")

        # another workspace opens the link: the model, read-only, with its dataset's images
        viewer.goto(url)
        viewer.wait_for_selector(OVERVIEW, state="visible", timeout=WAIT_S * 1000)
        wait_until(lambda: (viewer.evaluate(MODEL) or {}).get("id") == mid, "the shared model in the other workspace")
        assert viewer.evaluate(MODEL)["read_only"] is True
        expect(viewer.locator(".modelbar .badge")).to_have_text("shared read-only")
        viewer.locator(".samples img").first.wait_for()
        wait_until(lambda: viewer.evaluate(SAMPLES_SHOWN), "the shared model's sample images")
        wait_until(lambda: parse_qs(urlsplit(viewer.evaluate("() => location.href")).query).get("share") == [token],
                   "the address to keep the share token")
        viewer.click('[data-tab="training"]')
        assert viewer.is_hidden('[data-action="delete-model"]') and viewer.is_hidden('[data-action="share-model"]')
        step0 = viewer.evaluate(MODEL)["step"]
        viewer.locator('[data-action="step"]:not([disabled])').click()
        ask = viewer.locator('[data-ask="copy"]')
        expect(ask).to_contain_text("shared with you read-only")
        viewer.click('[data-ask="copy"] [data-answer="no"]')
        expect(ask).to_be_hidden()
        shot(viewer, "share-viewer")
        for method, body in (("PATCH", {"name": "renamed"}), ("DELETE", None)):
            r = viewer.request.fetch(f"{ws_server}/api/v1/models/{mid}", method=method, data=body, headers={"X-Share-Token": token})
            assert r.status == 409, (method, r.status)
        r = viewer.request.post(f"{ws_server}/api/v1/models/{mid}/train", data={"steps": 1}, headers={"X-Share-Token": token})
        assert r.status == 409
        got = owner.request.get(f"{ws_server}/api/v1/models/{mid}").json()
        assert got["name"] == "Pets net" and got["step"] == step0

        # without the token, the model is not there
        assert viewer.request.get(f"{ws_server}/api/v1/models/{mid}").status == 404
        stranger.expected_http_errors.add(404)
        open_page(stranger)
        stranger.goto(f"{ws_server}/?model={mid}")
        expect(stranger.locator('[data-view="messages"]')).to_contain_text("no longer on the server")
        assert stranger.evaluate(MODEL)["id"] != mid
    finally:
        for pg in (owner, viewer, stranger):
            if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
                shot(pg, f"FAILED-share-{id(pg)}")
            pg.context.close()
    for pg in (owner, viewer, stranger):
        check_console(pg)
