"""Screenshots of the Learn mode for the docs: ``python -m bench.learn_shots [--out docs/learn]``.

One 1440x900 screenshot per Learn step, each opened by its deep link on the ready-trained TinyVGG
(the shipped ``tiny-vgg-shapes``) in a fresh page on a real server with its own data directory,
saved as ``<out>/<step>.png`` (a 256-colour PNG: the page is flat colours, so it stays small), and
the list of steps with their deep links printed and written to ``<out>/README.md``. Not a test: it
asserts nothing about the numbers (tests/web does), it only waits for what each step shows before
the shot, never for a fixed time.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image

from bench.page import CHROMIUM_ARGS, _chromium
from bench.server import Server

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tiny-vgg-shapes"
INPUT = "sample:test:0"  # a circle: its Grad-CAM box is a clear example
VIEWPORT = {"width": 1440, "height": 900}
PANEL = '[data-view="learn"]'
WAIT_MS = 120_000  # the first page builds the dataset; a busy machine is slow, never stuck

# step id -> (extra link options, what must show before the shot, what to press first, what to scroll to)
STEPS: dict[str, tuple[str, str, str | None, str | None]] = {
    "conv": ("&layer=0&filter=2&row=30&col=30", '[data-learn="match"]', None, None),
    "stride": ("&size=7&kernel=3&stride=2&padding=1", '[data-learn="grid"] svg', None, None),
    "deeper": ("&channel=0", '[data-learn="filters"] canvas', '[data-learn="find-top"]', '[data-learn="top-item"]'),
    "layers": ("", '[data-learn="pool-winners"]', None, None),
    "probabilities": ("", '[data-learn="dense-input"]', None, None),
    "learning": ("&lrsteps=40", '[data-learn="w-after"]', '[data-learn="lr-run"]', '[data-learn="lr-curve"]'),
    "testing": ("", '[data-learn="accuracy"]', None, None),
    "hyperparameters": ("&layer=5&change=filters", '[data-learn="params-after"]', None, None),
    "beyond": ("&threshold=0.5", '[data-learn="box"]', None, None),
}


def link(step: str, base: str = "") -> str:
    """The deep link that opens ``step`` on the ready-trained TinyVGG and the shots' input."""
    return f"{base}/#learn={step}&model={MODEL}&input={INPUT}{STEPS[step][0]}"


def small_png(png: bytes) -> bytes:
    """A screenshot as an optimised 256-colour PNG (no dithering: flat UI colours stay flat)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()


def shoot(page, base: str, step: str, out: Path) -> tuple[Path, str]:
    """Open ``step`` by its deep link, wait for it, save ``<out>/<step>.png``; -> (path, the step's title)."""
    _, ready, press, scroll_to = STEPS[step]
    page.goto(link(step, base))
    panel = page.locator(PANEL)
    panel.locator(f'[data-learn-body="{step}"] {ready}').first.wait_for(state="visible", timeout=WAIT_MS)
    if press:
        panel.locator(press).click(timeout=WAIT_MS)
    if scroll_to:
        target = panel.locator(scroll_to).first
        target.wait_for(state="visible", timeout=WAIT_MS)
        target.scroll_into_view_if_needed()
    else:
        page.evaluate("() => window.scrollTo(0, 0)")
    page.locator(".input-name").wait_for(state="visible", timeout=WAIT_MS)
    path = out / f"{step}.png"
    path.write_bytes(small_png(page.screenshot()))
    return path, panel.locator('[data-learn="title"]').inner_text()


def run(out: Path) -> list[tuple[str, str, str, Path, int]]:
    """Every step's (id, title, deep link, screenshot, its bytes), on a fresh server."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        server = Server(data, ROOT / "engine" / "pretrained")
        server.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
                try:
                    for step in STEPS:
                        context = browser.new_context(viewport=VIEWPORT)
                        try:
                            path, title = shoot(context.new_page(), server.base, step, out)
                        finally:
                            context.close()
                        made.append((step, title, link(step), path, path.stat().st_size))
                finally:
                    browser.close()
        finally:
            server.stop()
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.learn_shots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "learn", help="folder for <step>.png")
    args = parser.parse_args(argv)
    made = run(args.out)
    lines = ["# The Learn mode, step by step", "",
             "Each step opened by its deep link on the ready-trained TinyVGG (append the link to the server's",
             "address, e.g. `http://127.0.0.1:8000/#learn=...`). Made by `python -m bench.learn_shots`.", "",
             "| # | step | deep link | screenshot |", "|---|---|---|---|"]
    for i, (step, title, url, path, size) in enumerate(made, 1):
        print(f"{step:<16} {url:<90} {path.name} ({size // 1024} KB)")
        lines.append(f"| {i} | {title} | `{url}` | [{path.name}]({path.name}) |")
    (args.out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
