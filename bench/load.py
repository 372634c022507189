"""The server under load, over real HTTP and WebSocket on 127.0.0.1: ``python -m bench load``.

A real ``python -m app serve`` in its own process (so its peak memory can be read from /proc) trains
two LeNet-5 models live over their WebSockets while ``clients`` concurrent clients each loop for
``seconds``: upload a small image, forward it through one of three models (the two training ones
and an idle one, every layer's output in the answer), delete the image, and every fourth round
GET a model. A client that gets 503 waits the ``Retry-After`` it was given, as a browser should.

The trainers' speed is read from the step numbers of their progress messages, first for
``bare_seconds`` with no requests (both training, so "bare" is the live speed the load may slow
down), then during the load. Targets: no 5xx but 503 with ``Retry-After``; p99 of the requests the
server admits (not 503) at most 1 s; each trainer keeps at least half its bare speed.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.timing import percentile
from bench.server import Server
from bench.wire import Connection, Response, multipart

API = "/api/v1"
BATCH = 32
TARGETS = {"admitted_p99_ms": 1000.0, "trainer_vs_bare_min": 0.5}


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (this one when ``pid`` is None)."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pngs(n: int) -> list[bytes]:
    """``n`` small grayscale noise images (28x28, the digits' size)."""
    rng, out = np.random.default_rng(0), []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


class Trainer:
    """One model playing over its WebSocket; ``marks`` are (local time, step) of each progress message."""

    def __init__(self, base: str, mid: str):
        self.url, self.marks = f"ws://{base.removeprefix('http://')}{API}/models/{mid}/live", []
        self.playing, self.stop = asyncio.Event(), asyncio.Event()

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"action": "play", "batch_size": BATCH}))
            reader = asyncio.create_task(self._read(ws))
            await self.stop.wait()
            await ws.send(json.dumps({"action": "pause"}))
            reader.cancel()

    async def _read(self, ws) -> None:
        async for raw in ws:
            m = json.loads(raw)
            if m["type"] == "progress":
                self.marks.append((time.perf_counter(), m["step"]))
                self.playing.set()
            elif m["type"] == "error":
                raise RuntimeError(f"live training failed: {m['detail']}")

    def rate(self, t0: float, t1: float) -> float:
        """Steps per second between the last progress at or before ``t0`` and the last at or before ``t1``."""
        a = max((m for m in self.marks if m[0] <= t0), default=self.marks[0])
        b = max((m for m in self.marks if m[0] <= t1), default=a)
        return (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0


async def _client(conn: Connection, i: int, models: list[str], png: bytes, deadline: float, log: list) -> None:
    upload = multipart("file", "x.png", png, "image/png")

    async def call(route: str, method: str, url: str, body: bytes = b"", content_type: str | None = None) -> Response | None:
        if time.perf_counter() >= deadline:
            return None
        t0 = time.perf_counter()
        try:
            r = await conn.request(method, url, body, content_type)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):  # counted as status 0 ("no answer")
            log.append((route, 0, (time.perf_counter() - t0) * 1e3, False))
            return None
        log.append((route, r.status_code, (time.perf_counter() - t0) * 1e3, "retry-after" in r.headers))
        if r.status_code == 503:  # back off as told, never past the end
            await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), max(0.0, deadline - time.perf_counter())))
        return r

    mid, rounds = models[i % len(models)], 0
    while time.perf_counter() < deadline:
        rounds += 1
        r = await call("POST /images", "POST", f"{API}/images", *upload)
        if r is not None and r.status_code == 201:
            image = r.json()["id"]
            await call("POST /models/{id}/forward", "POST", f"{API}/models/{mid}/forward",
                       json.dumps({"image_id": image}).encode(), "application/json")
            await call("DELETE /images/{id}", "DELETE", f"{API}/images/{image}")  # keeps the image quota free
        if rounds % 4 == 0:
            await call("GET /models/{id}", "GET", f"{API}/models/{mid}")
    await conn.close()


async def _lag(deadline: float, lags: list[float], every: float = 0.05) -> None:
    """How late this process's event loop wakes up: when it lags, the clients' own figures are inflated."""
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        await asyncio.sleep(every)
        lags.append((time.perf_counter() - t - every) * 1e3)


async def _measure(base: str, pid: int, models: list[str], clients: int, seconds: float, bare_seconds: float) -> dict[str, Any]:
    trainers = [Trainer(base, mid) for mid in models[:2]]
    tasks = [asyncio.create_task(t.run()) for t in trainers]
    try:
        await asyncio.wait_for(asyncio.gather(*(t.playing.wait() for t in trainers)), 60)
        await asyncio.sleep(1.0)  # past the first steps (trainer set-up, caches)
        b0 = time.perf_counter()
        await asyncio.sleep(bare_seconds)
        b1 = time.perf_counter()
        log: list = []
        pngs = _pngs(clients)
        host, port = base.removeprefix("http://").split(":")
        t0, cpu0 = time.perf_counter(), (_cpu_s(pid), _cpu_s())
        deadline = t0 + seconds
        lags: list[float] = []
        await asyncio.wait_for(asyncio.gather(_lag(deadline, lags), *(_client(Connection(host, int(port)), i, models, pngs[i],
                                                                               deadline, log) for i in range(clients))),
                               seconds + 90)
        t1, cpu1 = time.perf_counter(), (_cpu_s(pid), _cpu_s())
        rates = [{"bare": t.rate(b0, b1), "load": t.rate(t0, min(t1, deadline))} for t in trainers]
    finally:
        for t in trainers:
            t.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    cores = {"server": (cpu1[0] - cpu0[0]) / (t1 - t0), "clients": (cpu1[1] - cpu0[1]) / (t1 - t0)}
    return {"log": log, "elapsed_s": t1 - t0, "trainers": rates, "cores_used": cores,
            "client_lag_p99_ms": round(percentile(lags, 99), 1) if lags else 0.0}


def _summary(log: list, elapsed: float) -> dict[str, Any]:
    by_route: dict[str, list] = defaultdict(list)
    for entry in log:
        by_route[entry[0]].append(entry)
    routes = {}
    for route, rows in sorted(by_route.items()):
        admitted = [ms for _, status, ms, _ in rows if status != 503]
        routes[route] = {
            "count": len(rows), "statuses": dict(sorted(Counter(str(s) for _, s, _, _ in rows).items())),
            **{f"p{q}_ms": round(percentile(admitted, q), 1) if admitted else None for q in (50, 95, 99)},
        }  # fmt: skip
    admitted = [ms for _, status, ms, _ in log if status != 503]
    return {
        "routes": routes,
        "requests": len(log), "per_second": round(len(log) / elapsed, 1),
        "admitted_per_second": round(len(admitted) / elapsed, 1),
        "admitted_p99_ms": round(percentile(admitted, 99), 1) if admitted else None,
        "bad_5xx": sum(1 for _, s, _, ra in log if s >= 500 and not (s == 503 and ra)),
        "no_answer": sum(1 for _, s, _, _ in log if s == 0),
    }  # fmt: skip


def run(seconds: float = 20.0, clients: int = 50, bare_seconds: float = 5.0) -> dict[str, Any]:
    """Start the server on a temporary data directory, train, load it; returns the figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        server = Server(data, Path(tmp) / "none", env={"CNNVIS_WARM_DATASETS": "0"})
        server.start()
        try:
            with httpx.Client(base_url=server.base, timeout=120) as c:
                c.get(f"{API}/datasets/digits").raise_for_status()  # generated once, before any timing
                models = [c.post(f"{API}/models", json={"preset": "lenet5", "dataset": "digits", "seed": s}).json()["id"]
                          for s in range(3)]
            rss_before = server.memory_mb("VmHWM")
            figures = asyncio.run(_measure(server.base, server.proc.pid, models, clients, seconds, bare_seconds))
            peak = server.memory_mb("VmHWM")
        finally:
            server.stop()
    report = _summary(figures["log"], figures["elapsed_s"])
    report.update({
        "setup": f"{clients} clients for {seconds:g} s; 2 LeNet-5 (digits, batch {BATCH}) training live",
        "peak_rss_mb": round(peak, 1), "peak_rss_before_load_mb": round(rss_before, 1),
        "trainers": [{k: round(v, 2) for k, v in t.items()} for t in figures["trainers"]],
        "cores_used": {k: round(v, 2) for k, v in figures["cores_used"].items()},
        "load_average": os.getloadavg()[0], "client_lag_p99_ms": figures["client_lag_p99_ms"],
        "targets": TARGETS,
    })  # fmt: skip
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"Load: {report['setup']}",
             f"{'route':<28}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  statuses (p: admitted only)"]
    for route, r in report["routes"].items():
        ps = "".join(f"{r[k]:>9.1f}" if r[k] is not None else f"{'-':>9}" for k in ("p50_ms", "p95_ms", "p99_ms"))
        lines.append(f"{route:<28}{r['count']:>7}{ps}  " + " ".join(f"{s}:{n}" for s, n in r["statuses"].items()))
    lines.append(f"throughput {report['per_second']} requests/s ({report['admitted_per_second']}/s admitted); "
                 f"admitted p99 {report['admitted_p99_ms']} ms (target <= {TARGETS['admitted_p99_ms']:.0f}); "
                 f"5xx other than 503 + Retry-After: {report['bad_5xx']}; no answer: {report['no_answer']}")
    lines.append(f"cores used during the load: server {report['cores_used']['server']}, clients "
                 f"{report['cores_used']['clients']} (of {os.cpu_count()}; load average {report['load_average']:.1f}); "
                 f"client event-loop lag p99 {report['client_lag_p99_ms']} ms")
    lines.append(f"server peak RSS (VmHWM) {report['peak_rss_mb']} MB ({report['peak_rss_before_load_mb']} MB before the load)")
    for i, t in enumerate(report["trainers"]):
        ratio = t["load"] / t["bare"] if t["bare"] else 0.0
        lines.append(f"trainer {i + 1}: {t['bare']:.2f} steps/s bare, {t['load']:.2f} under load ({ratio:.0%}; "
                     f"target >= {TARGETS['trainer_vs_bare_min']:.0%})")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(table(run()))
