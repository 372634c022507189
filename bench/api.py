"""The server's figures, over real HTTP and WebSocket on 127.0.0.1: ``python -m bench api``.

- Forward latency p50 / p95 for TinyVGG at batch 1, every layer's output in the answer, per wire
  form and dtype, with the size on the wire and decoded, next to the engine's own forward time
  (target: binary p50 <= 10 ms and <= 5x the engine). The server runs in its own process, set up as
  `cnnvis serve` sets it up (one BLAS thread, the same allocator settings, uvicorn's defaults), and
  the engine's time is taken in this process with one BLAS thread too, so both sides run the same
  kernels. The client is the standard library's keep-alive ``http.client``, which costs little per
  answer; httpx's p50 (a pure-Python client: about 1.3 ms more to read an 800 KB answer here) is
  shown beside it. "before" is the JSON form through the old stack (GZipMiddleware level 1 around
  the app, asked for by a bench-only header), in the same run, decoded by the client as a browser would.
- A health check (no body, no engine): what the HTTP stack itself costs per request.
- Codecs on the forward answers (float16 and float32, binary and JSON): gzip 1, brotli 1-2, zstd 1-3,
  size and compression time, in-process (app/compression.py's choice rests on these).
- Live-training throughput (steps/s reported by the WebSocket's progress messages over a few
  seconds of play) against the bare `engine.train.Trainer` on the same model, data and batch size
  (target: within 15 %), and with a pinned image's activations as binary frames 10 times a second
  (target: at most 5 % slower than without).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.server import free_port
from bench.timing import percentile

API = "/api/v1"
BATCH = 32
SIZES = {"shapes": (512, 64), "digits": (64, 32)}


ROOT = Path(__file__).resolve().parents[1]


class _Server:
    """The app in its own process on a free port (``python -m bench.api serve PORT DATA_DIR``, see `serve`)."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115  a pipe could fill and block it
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.api", "serve", str(self.port), str(self.data_dir)],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{API}/health", timeout=1).status_code == 200:
                    return f"127.0.0.1:{self.port}"
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the server did not start: {(self.data_dir.parent / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def serve(port: int, data_dir: Path) -> None:
    """The server `_Server` starts: what `cnnvis serve` runs (app/cli.py: one BLAS thread, the
    allocator settings, uvicorn with a single worker at log level info), on the bench's data
    directory and small built-in datasets, with the `_Before` switch around the app."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads, as app/cli.py's main does
    import uvicorn

    from app.config import Settings
    from app.main import create_app
    from engine.runtime import keep_freed_memory

    keep_freed_memory()
    app = create_app(Settings(data_dir=data_dir, pretrained_dir=data_dir / "none", warm_datasets=False, builtin_sizes=SIZES))
    uvicorn.run(_Before(app), host="127.0.0.1", port=port, workers=1, log_level="info")


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


def _request(hc: http.client.HTTPConnection, method: str, path: str, data: bytes | None,
             headers: dict[str, str]) -> tuple[int, bytes]:
    """One request on a keep-alive connection: the bytes on the wire, and the body as a browser
    would have it (gzip or brotli decoded)."""
    hc.request(method, path, body=data, headers=headers)
    r = hc.getresponse()
    raw = r.read()
    if r.status != 200:
        raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
    coding = r.getheader("content-encoding")
    if coding == "gzip":
        return len(raw), gzip.decompress(raw)
    if coding == "br":
        import brotli

        return len(raw), brotli.decompress(raw)
    return len(raw), raw


def _timed(host: str, c: httpx.Client, method: str, path: str, data: bytes | None, headers: dict[str, str],
           n: int) -> dict[str, Any]:
    """p50 / p95 over ``n`` requests with ``http.client`` (after 3 for warm-up), each followed by the
    same request through httpx for its p50; sizes on the wire and decoded."""
    hc = http.client.HTTPConnection(*host.split(":"), timeout=60)
    headers = {**headers, "Content-Type": "application/json"} if data is not None else headers
    lean, full, wire, size = [], [], 0, 0
    try:
        for i in range(n + 3):
            t0 = time.perf_counter()
            wire, body = _request(hc, method, path, data, headers)
            t1 = time.perf_counter()
            size = len(body)
            r = c.request(method, path, content=data, headers=headers)
            r.raise_for_status()
            t2 = time.perf_counter()
            if i >= 3:
                lean.append((t1 - t0) * 1e3)
                full.append((t2 - t1) * 1e3)
    finally:
        hc.close()
    return {"p50_ms": round(percentile(lean, 50), 2), "p95_ms": round(percentile(lean, 95), 2),
            "httpx_p50_ms": round(percentile(full, 50), 2), "wire_kb": round(wire / 1024, 1), "body_kb": round(size / 1024, 1),
            "requests": n}


def _forward_figures(host: str, c: httpx.Client, mid: str, body: dict, dtype: str, n: int, way: str = "JSON") -> dict[str, Any]:
    query, headers = WAYS[way]
    return _timed(host, c, "POST", f"{API}/models/{mid}/forward?dtype={dtype}&{query}", json.dumps(body).encode(), headers, n)


def _engine_forward_ms(c: httpx.Client, mid: str, n: int) -> float:
    """The engine's own forward pass with every activation kept, on the server's weights and a test
    image, with one BLAS thread as in the server (two threads were slower here, and far noisier)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from app.encoding import unpack
    from engine.checkpoint import load_checkpoint
    from bench.timing import median_ms

    model = load_checkpoint(c.get(f"{API}/models/{mid}/checkpoint").content).model
    x = np.array(unpack(c.post(f"{API}/models/{mid}/forward?format=binary", json={"sample": {"split": "test", "index": 0}}).content)["input"])
    with threadpool_limits(1, user_api="blas"):
        return round(median_ms(lambda: model.forward(x[None], keep=True), repeat=n), 3)


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
    """The bare trainer's steps/s with one BLAS thread, as the server's training workers run
    (app/workers/pool.py); with two, this process's figure swung 2-12 steps/s on the shared box."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _bare_steps(data_dir, seconds)


def _bare_steps(data_dir: Path, seconds: float) -> float:
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
            engine_before = _engine_forward_ms(c, mid, rounds)
            fwd = {f"{way}, {dtype}": _forward_figures(host, c, mid, sample, dtype, rounds, way)
                   for dtype in ("float32", "float16") for way in WAYS}
            engine_ms = round((engine_before + _engine_forward_ms(c, mid, rounds)) / 2, 3)  # either side of the forwards
            noise = c.post(f"{API}/images", files={"file": ("noise.png", _noise_png(), "image/png")}).json()["id"]
            fwd["before, float16, noise image"] = _forward_figures(host, c, mid, {"image_id": noise}, "float16", rounds, "before: JSON + gzip 1")
            fwd["binary, float16, noise image"] = _forward_figures(host, c, mid, {"image_id": noise}, "float16", rounds, "binary")
            health = _timed(host, c, "GET", f"{API}/health", None, {}, rounds)
            codecs = _codecs(c, mid, sample)
            bare_before = _bare_steps_per_second(Path(tmp) / "data", seconds)
            live = asyncio.run(_live_steps_per_second(host, mid, seconds))
            pinned = asyncio.run(_live_steps_per_second(host, mid, seconds, pin=True))
            live = (live + asyncio.run(_live_steps_per_second(host, mid, seconds))) / 2  # either side of pinned
            bare = (bare_before + _bare_steps_per_second(Path(tmp) / "data", seconds)) / 2  # either side of live
    report = {
        "model": "tiny-vgg 3x64x64, 8 classes",
        "forward_batch1": fwd,
        "health": health,
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
    lines = [f"API figures ({report['model']}); forward returns every layer's output; a server process on 127.0.0.1"]
    lines.append(f"{'forward, batch 1':<38}{'p50 ms':>9}{'p95 ms':>9}{'x engine':>9}{'httpx p50':>10}{'wire KB':>10}{'body KB':>10}")
    eng = report["engine_forward_ms"]
    rows = [*report["forward_batch1"].items(), ("health check (no engine)", report["health"])]
    for name, f in rows:
        lines.append(f"{name:<38}{f['p50_ms']:>9.2f}{f['p95_ms']:>9.2f}{f['p50_ms'] / eng:>9.1f}{f['httpx_p50_ms']:>10.2f}"
                     f"{f['wire_kb']:>10.1f}{f['body_kb']:>10.1f}")
    lines.append(f"{'engine forward (keep every activation)':<38}{eng:>9.2f}   (one BLAS thread, as in the server)")
    t = report["targets"]
    binary = report["forward_batch1"]["binary, float32"]["p50_ms"]
    lines.append(f"targets: binary float32 p50 <= {t['binary_forward_p50_ms']} ms and <= {t['binary_vs_engine_max']}x the engine: "
                 f"{binary:.2f} ms, {binary / eng:.1f}x ({'met' if binary <= t['binary_forward_p50_ms'] and binary / eng <= t['binary_vs_engine_max'] else 'not met'})")
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
    if sys.argv[1:2] == ["serve"]:  # the server process `_Server` starts
        serve(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(table(run()))
