"""The server's figures, over real HTTP and WebSocket on 127.0.0.1: ``python -m bench api``.

- Forward latency p50 / p95 for TinyVGG at batch 1, every layer's output in the answer, per wire
  form and dtype, with the size on the wire and decoded, next to the engine's own forward time
  (target: binary p50 <= 10 ms and <= 5x the engine). "before" is the JSON form through the old
  stack (GZipMiddleware level 1 around the app, asked for by a bench-only header), in the same run.
- Codecs on the forward answers (float16 and float32, binary and JSON): gzip 1, brotli 1-2, zstd 1-3,
  size and compression time, in-process (app/compression.py's choice rests on these).
- Live-training throughput (steps/s reported by the WebSocket's progress messages over a few
  seconds of play) against the bare `engine.train.Trainer` on the same model, data and batch size
  (target: within 15 %), and with a pinned image's activations as binary frames 10 times a second
  (target: at most 5 % slower than without).
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.timing import percentile

API = "/api/v1"
BATCH = 32
SIZES = {"shapes": (512, 64), "digits": (64, 32)}


class _Server:
    """uvicorn in a thread of this process, on a free port."""

    def __init__(self, data_dir: Path):
        from app.config import Settings
        from app.main import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = _Before(create_app(Settings(data_dir=data_dir, pretrained_dir=data_dir / "none", warm_datasets=False, builtin_sizes=SIZES)))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class _Before:
    """The stack as it was before issue 16 for requests carrying ``X-Bench-Before``: Starlette's
    GZipMiddleware at level 1 around the app (the new middleware skips loopback, so it adds nothing)."""

    def __init__(self, app):
        from starlette.middleware.gzip import GZipMiddleware

        self.app, self.gzip = app, GZipMiddleware(app, minimum_size=1024, compresslevel=1)

    async def __call__(self, scope, receive, send):
        before = scope["type"] == "http" and any(k == b"x-bench-before" for k, _ in scope["headers"])
        await (self.gzip if before else self.app)(scope, receive, send)


WAYS = {  # label -> (query, headers)
    "before: JSON + gzip 1": ("format=json", {"X-Bench-Before": "1", "Accept-Encoding": "gzip"}),
    "JSON": ("format=json", {"Accept-Encoding": "gzip, br"}),
    "binary": ("", {"Accept": "application/vnd.cnnvis.tensors", "Accept-Encoding": "gzip, br"}),
}


def _forward_figures(c: httpx.Client, mid: str, body: dict, dtype: str, n: int, way: str = "JSON") -> dict[str, Any]:
    query, headers = WAYS[way]
    times, wire, size = [], 0, 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        r = c.post(f"{API}/models/{mid}/forward?dtype={dtype}&{query}", json=body, headers=headers)
        r.raise_for_status()
        dt = (time.perf_counter() - t0) * 1e3
        if i >= 3:  # warm-up
            times.append(dt)
        wire, size = r.num_bytes_downloaded, len(r.content)
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
            "wire_kb": round(wire / 1024, 1), "body_kb": round(size / 1024, 1), "requests": n}


def _engine_forward_ms(c: httpx.Client, mid: str, n: int) -> float:
    """The engine's own forward pass with every activation kept, on the server's weights and a test image."""
    import numpy as np

    from app.encoding import unpack
    from engine.checkpoint import load_checkpoint
    from bench.timing import median_ms

    model = load_checkpoint(c.get(f"{API}/models/{mid}/checkpoint").content).model
    x = np.array(unpack(c.post(f"{API}/models/{mid}/forward?format=binary", json={"sample": {"split": "test", "index": 0}}).content)["input"])
    return round(median_ms(lambda: model.forward(x[None], keep=True), repeat=n), 2)


def _codecs(c: httpx.Client, mid: str, body: dict, rounds: int = 7) -> dict[str, Any]:
    """Size and compression time of each codec on the forward answer's forms."""
    import gzip

    import brotli

    from bench.timing import median_ms

    codecs = {"gzip 1": lambda b: gzip.compress(b, compresslevel=1, mtime=0), "br 1": lambda b: brotli.compress(b, quality=1),
              "br 2": lambda b: brotli.compress(b, quality=2)}
    try:
        import zstandard

        codecs |= {f"zstd {lv}": (lambda lv: lambda b: zstandard.ZstdCompressor(level=lv).compress(b))(lv) for lv in (1, 2, 3)}
    except ImportError:
        pass
    out: dict[str, Any] = {}
    for dtype in ("float16", "float32"):
        for form in ("binary", "json"):
            raw = c.post(f"{API}/models/{mid}/forward?dtype={dtype}&format={form}", json=body).content
            out[f"{dtype} {form} ({len(raw) / 1024:.0f} KB)"] = {
                name: {"kb": round(len(fn(raw)) / 1024, 1), "ms": round(median_ms(lambda fn=fn: fn(raw), repeat=rounds, warmup=1), 2)}
                for name, fn in codecs.items()}
    return out


def _noise_png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _bare_steps_per_second(data_dir: Path, seconds: float) -> float:
    from engine.data.dataset import load_dataset
    from engine.model import Model
    from engine.presets import preset_spec
    from engine.train import Hyperparameters, Trainer

    ds = load_dataset(data_dir / "datasets" / "shapes.npz")
    model = Model.build(preset_spec("tiny-vgg", ds.input_shape, ds.num_classes), seed=0)
    trainer = Trainer(model, ds, Hyperparameters(batch_size=BATCH, learning_rate=0.05))
    trainer.train(3)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        trainer.train_step()
        steps += 1
    return steps / (time.perf_counter() - t0)


async def _live_steps_per_second(host: str, mid: str, seconds: float, pin: bool = False) -> float:
    """Steps/s while playing; with ``pin``, a test image's activations (float16, every layer) come as
    binary frames every 100 ms, as the page asks for them."""
    from websockets.asyncio.client import connect

    url = f"ws://{host}{API}/models/{mid}/live?format=binary"
    for _ in range(100):  # the previous measurement's socket may still be closing on the server (4409)
        ws = await connect(url, max_size=2**24)
        if json.loads(await ws.recv())["type"] == "state":
            break
        await ws.close()
        await asyncio.sleep(0.2)
    async with ws:
        extra = {"pin": {"sample": {"split": "test", "index": 0}}, "activations_every_ms": 100, "dtype": "float16"} if pin else {"pin": None}
        await ws.send(json.dumps({"action": "step", "steps": 3, "batch_size": BATCH, **extra}))  # warm-up
        while True:
            m = await ws.recv()
            if isinstance(m, str) and (m := json.loads(m))["type"] == "state" and not m["playing"] and m["step"] >= 3:
                break
        await ws.send(json.dumps({"action": "play"}))
        first = None
        while True:
            m = await ws.recv()
            if isinstance(m, bytes):
                continue
            m = json.loads(m)
            if m["type"] != "progress":
                continue
            if first is None:
                first = (time.perf_counter(), m["step"])
            elif time.perf_counter() - first[0] >= seconds:
                rate = (m["step"] - first[1]) / (time.perf_counter() - first[0])
                break
        await ws.send(json.dumps({"action": "pause"}))
        return rate


def run(rounds: int = 100, json_out: bool = False, seconds: float = 5.0) -> dict[str, Any]:
    """Start a server on a temporary data directory and measure; returns the figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp, _Server(Path(tmp) / "data") as host:
        with httpx.Client(base_url=f"http://{host}", timeout=60) as c:
            mid = c.post(f"{API}/models", json={"preset": "tiny-vgg", "seed": 0}).json()["id"]
            c.get(f"{API}/datasets/shapes").raise_for_status()
            sample = {"sample": {"split": "test", "index": 0}}  # a shapes image through a freshly initialised TinyVGG
            fwd = {f"{way}, {dtype}": _forward_figures(c, mid, sample, dtype, rounds, way)
                   for dtype in ("float32", "float16") for way in WAYS}
            engine_ms = _engine_forward_ms(c, mid, rounds)
            noise = c.post(f"{API}/images", files={"file": ("noise.png", _noise_png(), "image/png")}).json()["id"]
            fwd["before, float16, noise image"] = _forward_figures(c, mid, {"image_id": noise}, "float16", rounds, "before: JSON + gzip 1")
            fwd["binary, float16, noise image"] = _forward_figures(c, mid, {"image_id": noise}, "float16", rounds, "binary")
            codecs = _codecs(c, mid, sample)
            bare_before = _bare_steps_per_second(Path(tmp) / "data", seconds)
            live = asyncio.run(_live_steps_per_second(host, mid, seconds))
            pinned = asyncio.run(_live_steps_per_second(host, mid, seconds, pin=True))
            live = (live + asyncio.run(_live_steps_per_second(host, mid, seconds))) / 2  # either side of pinned
            bare = (bare_before + _bare_steps_per_second(Path(tmp) / "data", seconds)) / 2  # either side of live
    report = {
        "model": "tiny-vgg 3x64x64, 8 classes",
        "forward_batch1": fwd,
        "engine_forward_ms": engine_ms,
        "codecs": codecs,
        "training": {"batch_size": BATCH, "bare_steps_per_s": round(bare, 2), "live_steps_per_s": round(live, 2),
                     "live_vs_bare": round(live / bare, 3), "pinned_10_per_s_steps_per_s": round(pinned, 2),
                     "pinned_vs_live": round(pinned / live, 3)},
        "targets": {"binary_forward_p50_ms": 10, "binary_vs_engine_max": 5, "float16_wire_kb": 300, "live_vs_bare_min": 0.85,
                    "pinned_vs_live_min": 0.95},
    }
    if json_out:
        print(json.dumps(report, indent=2))
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"API figures ({report['model']}); forward returns every layer's output; 127.0.0.1"]
    lines.append(f"{'forward, batch 1':<38}{'p50 ms':>9}{'p95 ms':>9}{'x engine':>9}{'wire KB':>10}{'body KB':>10}")
    eng = report["engine_forward_ms"]
    for name, f in report["forward_batch1"].items():
        lines.append(f"{name:<38}{f['p50_ms']:>9.2f}{f['p95_ms']:>9.2f}{f['p50_ms'] / eng:>9.1f}{f['wire_kb']:>10.1f}{f['body_kb']:>10.1f}")
    lines.append(f"{'engine forward (keep every activation)':<38}{eng:>9.2f}")
    codecs = report["codecs"]
    names = list(next(iter(codecs.values())))
    lines.append(f"codecs (KB / ms to compress){'':<10}" + "".join(f"{n:>14}" for n in names))
    for body, row in codecs.items():
        lines.append(f"{body:<38}" + "".join(f"{row[n]['kb']:>7.0f}/{row[n]['ms']:<6.1f}" for n in names))
    t = report["training"]
    lines.append(f"training, batch {t['batch_size']}: bare trainer {t['bare_steps_per_s']:.2f} steps/s, live over "
                 f"WebSocket {t['live_steps_per_s']:.2f} steps/s ({t['live_vs_bare']:.1%} of bare); with activations "
                 f"10/s as binary frames {t['pinned_10_per_s_steps_per_s']:.2f} steps/s ({t['pinned_vs_live']:.1%} of live)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(table(run()))
