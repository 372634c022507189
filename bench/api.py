"""The server's figures, over real HTTP and WebSocket on 127.0.0.1: ``python -m bench api``.

- Forward latency p50 / p95 for TinyVGG at batch 1, every layer's output in the answer, as float32
  and float16 (targets: p50 <= 30 ms, float16 <= 300 KB on the wire), with the size on the wire
  (gzip, as any browser asks for) and decoded.
- Live-training throughput (steps/s reported by the WebSocket's progress messages over a few
  seconds of play) against the bare `engine.train.Trainer` on the same model, data and batch size
  (target: within 15 %).
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
        app = create_app(Settings(data_dir=data_dir, pretrained_dir=data_dir / "none", warm_datasets=False, builtin_sizes=SIZES))
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


def _forward_figures(c: httpx.Client, mid: str, body: dict, dtype: str, n: int) -> dict[str, Any]:
    times, wire, size = [], 0, 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        r = c.post(f"{API}/models/{mid}/forward?dtype={dtype}", json=body)
        r.raise_for_status()
        dt = (time.perf_counter() - t0) * 1e3
        if i >= 3:  # warm-up
            times.append(dt)
        wire, size = r.num_bytes_downloaded, len(r.content)
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
            "wire_kb": round(wire / 1024, 1), "json_kb": round(size / 1024, 1), "requests": n}


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


async def _live_steps_per_second(host: str, mid: str, seconds: float) -> float:
    from websockets.asyncio.client import connect

    async with connect(f"ws://{host}{API}/models/{mid}/live") as ws:
        await ws.recv()
        await ws.send(json.dumps({"action": "step", "steps": 3, "batch_size": BATCH}))  # warm-up
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "state" and not m["playing"] and m["step"] >= 3:
                break
        await ws.send(json.dumps({"action": "play"}))
        first = None
        while True:
            m = json.loads(await ws.recv())
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
            fwd = {dtype: _forward_figures(c, mid, sample, dtype, rounds) for dtype in ("float32", "float16")}
            noise = c.post(f"{API}/images", files={"file": ("noise.png", _noise_png(), "image/png")}).json()["id"]
            fwd["float16, noise image"] = _forward_figures(c, mid, {"image_id": noise}, "float16", rounds)  # worst case for gzip
            bare_before = _bare_steps_per_second(Path(tmp) / "data", seconds)
            live = asyncio.run(_live_steps_per_second(host, mid, seconds))
            bare = (bare_before + _bare_steps_per_second(Path(tmp) / "data", seconds)) / 2  # either side of live
    report = {
        "model": "tiny-vgg 3x64x64, 8 classes",
        "forward_batch1": fwd,
        "training": {"batch_size": BATCH, "bare_steps_per_s": round(bare, 2), "live_steps_per_s": round(live, 2),
                     "live_vs_bare": round(live / bare, 3)},
        "targets": {"forward_p50_ms": 30, "float16_wire_kb": 300, "live_vs_bare_min": 0.85},
    }
    if json_out:
        print(json.dumps(report, indent=2))
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"API figures ({report['model']}); forward returns every layer's output"]
    lines.append(f"{'forward, batch 1':<24}{'p50 ms':>9}{'p95 ms':>9}{'wire KB':>10}{'JSON KB':>10}")
    for dtype, f in report["forward_batch1"].items():
        lines.append(f"{dtype:<24}{f['p50_ms']:>9.2f}{f['p95_ms']:>9.2f}{f['wire_kb']:>10.1f}{f['json_kb']:>10.1f}")
    t = report["training"]
    lines.append(f"training, batch {t['batch_size']}: bare trainer {t['bare_steps_per_s']:.2f} steps/s, live over "
                 f"WebSocket {t['live_steps_per_s']:.2f} steps/s ({t['live_vs_bare']:.1%} of bare)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(table(run()))
