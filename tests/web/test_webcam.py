"""Webcam input (issue 13, item 9) with Chromium's fake camera: frames run through the model one
request at a time and the maps follow them; Freeze stops sending; hiding the tab stops the camera;
a refused permission shows a plain message."""

from __future__ import annotations

import contextlib

import pytest

from .conftest import CHROMIUM_ARGS, _chromium, expect, record_requests, shot, wait_until

pytestmark = pytest.mark.browser

FAKE_CAMERA = "--use-fake-device-for-media-stream"
ALLOW_CAMERA = "--use-fake-ui-for-media-stream"  # answers the permission prompt with "allow"


@contextlib.contextmanager
def launched(browser, args):
    """Another Chromium with extra flags, from the session's Playwright (conftest's `browser`: one
    Playwright per process; it skips when Chromium is missing)."""
    b = browser.browser_type.launch(executable_path=_chromium(), args=CHROMIUM_ARGS + args)
    try:
        yield b
    finally:
        b.close()


@contextlib.contextmanager
def opened(browser, server):
    """The page at 1280x800, failing the test on any console error (as conftest's `page`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        pg.goto(server + "/")
        pg.wait_for_selector(".ov-col canvas.map", state="visible", timeout=30_000)
        expect(pg.locator(".input-name")).not_to_be_empty()
        yield pg
    finally:
        context.close()
    assert not errors, "console errors:\n" + "\n".join(errors)


def frames(pg) -> int:
    return int(pg.text_content("[data-webcam-frames]") or 0)


def test_webcam_frames_run_through_the_model_and_freeze_stops_them(browser, server):
    with launched(browser, [FAKE_CAMERA, ALLOW_CAMERA]) as cam, opened(cam, server) as pg:
        sample = pg.evaluate("() => window.cnnvis.store.get().forward.input.data.slice(0, 64).join(',')")
        pg.click('[data-webcam="toggle"]')
        expect(pg.locator('[data-webcam="toggle"]')).to_have_attribute("aria-pressed", "true")
        expect(pg.locator(".webcam-video")).to_be_visible()
        wait_until(lambda: frames(pg) >= 3, "three webcam frames through the model")
        # the maps show the camera, not the sample any more
        assert pg.evaluate("() => window.cnnvis.store.get().forward.input.data.slice(0, 64).join(',')") != sample
        shot(pg, "webcam-running")

        pg.click('[data-webcam="freeze"]')
        expect(pg.locator('[data-webcam="freeze"]')).to_have_attribute("aria-pressed", "true")
        # idle: no frame in flight and none scheduled, so nothing more can be sent while frozen
        expect(pg.locator('[data-webcam-state="idle"]')).to_have_count(1)
        frozen = frames(pg)
        seen = record_requests(pg)
        shot(pg, "webcam-frozen")
        assert frames(pg) == frozen and not [r for r in seen if "/forward" in r], seen

        pg.click('[data-webcam="freeze"]')  # resume
        wait_until(lambda: frames(pg) > frozen, "frames after resume")

        # hiding the tab stops the camera
        pg.evaluate("""() => { Object.defineProperty(document, 'hidden', { value: true, configurable: true });
                              document.dispatchEvent(new Event('visibilitychange')); }""")
        expect(pg.locator('[data-webcam="toggle"]')).to_have_attribute("aria-pressed", "false")
        expect(pg.locator(".webcam")).to_be_hidden()
        assert pg.evaluate("() => document.querySelector('.webcam-video').srcObject") is None


def test_a_refused_camera_gives_a_plain_message(browser, server):
    with launched(browser, [FAKE_CAMERA]) as cam, opened(cam, server) as pg:  # no one allows the camera
        pg.click('[data-webcam="toggle"]')
        message = pg.locator("[data-webcam-message]")
        expect(message).to_be_visible()
        expect(message).to_contain_text("camera")
        expect(pg.locator('[data-webcam="toggle"]')).to_have_attribute("aria-pressed", "false")
        assert frames(pg) == 0
        shot(pg, "webcam-refused")
