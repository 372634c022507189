"""Crash safety: a real ``cnnvis serve`` SIGKILLed at random moments while it trains live and receives
uploads (images, a dataset zip over the 1 MB spool size, checkpoint imports, new models) restarts with
every model whole, each one's history ending at its step, and no temporary file left anywhere."""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from websockets.sync.client import connect

from engine.checkpoint import checkpoint_bytes, load_checkpoint
from engine.fileio import TMP_PREFIX
from engine.model import Model
from tests.api.conftest import SMALL_SPEC, image_bytes
from bench.server import Server, still_running

KILLS = 20


def dataset_zip(images_per_class: int = 48, side: int = 64) -> bytes:
    """Two class folders of noise PNGs, stored uncompressed: over 1 MB, so the upload spools to disk."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for cls in ("a", "b"):
            for i in range(images_per_class):
                png = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(png, format="PNG")
                zf.writestr(f"{cls}/{i}.png", png.getvalue())
    return buf.getvalue()


def uploads(api: str, rng: random.Random, stop: threading.Event, payloads: dict[str, bytes], tag: str) -> None:
    """Send uploads one after another until ``stop`` (the server dies under them: errors are expected)."""
    n = 0
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            n += 1
            kind = rng.choice(("image", "dataset", "checkpoint", "model"))
            try:
                if kind == "image":
                    c.post(f"{api}/images", files={"file": ("a.png", payloads["image"], "image/png")})
                elif kind == "dataset":
                    c.post(f"{api}/datasets", files={"file": ("d.zip", payloads["zip"], "application/zip")},
                           data={"name": f"up-{tag}-{n}", "channels": "1", "height": "16", "width": "16"})
                elif kind == "checkpoint":
                    c.post(f"{api}/models/import", files={"file": ("m.npz", payloads["checkpoint"], "application/octet-stream")})
                else:
                    c.post(f"{api}/models", json={"spec": SMALL_SPEC, "dataset": "digits"})
            except httpx.HTTPError:
                return


def train_until_killed(srv: Server, model_id: str, delay: float) -> None:
    """Play live training; after the first progress message wait ``delay`` seconds and SIGKILL the server."""
    with connect(f"ws://127.0.0.1:{srv.port}/api/v1/models/{model_id}/live", open_timeout=10, close_timeout=1) as ws:
        ws.recv(timeout=10)
        ws.send(json.dumps({"action": "play", "batch_size": 2}))
        while json.loads(ws.recv(timeout=30))["type"] != "progress":
            pass
        time.sleep(delay)
        workers = srv.kill()
    assert workers, "live training ran in no worker process"
    assert still_running(workers) == [], "a training worker outlived its killed server"


def leftovers(data_dir: Path) -> list[Path]:
    """Temporary files of any kind: in DATA_DIR/tmp, atomic writes' temps, half-made or half-deleted models."""
    found = [p for p in data_dir.rglob("*") if p.name.startswith((TMP_PREFIX, ".new-", ".deleted-"))]
    found += list((data_dir / "tmp").iterdir()) if (data_dir / "tmp").is_dir() else []
    return found + list(data_dir.glob("tmp*.zip"))


def kind(path: Path) -> str:
    """A leftover's path with its random parts starred: ``models/*/.tmp-*``, ``tmp/*``."""
    parts = [re.sub(r"^(\.tmp-|\.new-|\.deleted-|tmp).+", r"\1*", part) for part in path.parts]
    return "/".join(p if p.startswith((".", "tmp")) or i == 0 else "*" for i, p in enumerate(parts))


@pytest.mark.slow
def test_sigkill_during_training_and_uploads_loses_nothing(data_dir, pretrained_dir):
    rng = random.Random(20261130)
    model = Model.build(SMALL_SPEC, seed=1)
    payloads = {"image": image_bytes(), "zip": dataset_zip(),
                "checkpoint": checkpoint_bytes(model, classes=[str(i) for i in range(10)], step=0, meta={"dataset": "digits"})}
    assert len(payloads["zip"]) > 1024 * 1024
    srv = Server(data_dir, pretrained_dir, env={"CNNVIS_MAX_MODELS": "100000"})  # the uploads make models every round
    api = f"{srv.base}/api/v1"
    found_after_kills: Counter[str] = Counter()  # what the kills left, by kind (printed: the test's evidence)
    try:
        for i in range(KILLS):
            srv.start()
            with httpx.Client(timeout=30) as c:
                ours = [m["id"] for m in c.get(f"{api}/models").json() if not m["read_only"] and m["dataset"] == "digits"]
                if not ours or rng.random() < 0.2:
                    ours.append(c.post(f"{api}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}).json()["id"])
            stop = threading.Event()
            sender = threading.Thread(target=uploads, args=(api, random.Random(rng.random()), stop, payloads, str(i)))
            sender.start()
            try:
                train_until_killed(srv, rng.choice(ours), rng.uniform(0.0, 0.3))
            finally:
                srv.kill()
                stop.set()
                sender.join(30)
            found_after_kills.update(kind(p.relative_to(data_dir)) for p in leftovers(data_dir))
        srv.start()
        with httpx.Client(timeout=30) as c:
            listed = {m["id"]: m for m in c.get(f"{api}/models").json() if not m["read_only"]}
            on_disk = {p.name for p in (data_dir / "models").iterdir()}
            assert set(listed) == on_disk
            for mid, info in listed.items():
                ckpt = load_checkpoint(data_dir / "models" / mid / "checkpoint.npz")
                steps = [s["step"] for s in c.get(f"{api}/models/{mid}/history?from_step=0&limit=50000").json()["steps"]]
                assert ckpt.step == info["step"]
                assert steps == list(range(1, ckpt.step + 1)), f"model {mid}: history {steps[-3:]} at step {ckpt.step}"
            assert c.get(f"{api}/health").status_code == 200 and c.get(f"{api}/datasets").status_code == 200
        assert leftovers(data_dir) == []
    finally:
        srv.stop()
    print(f"{KILLS} kills; left behind before restarts: {dict(found_after_kills)}; after the last restart: none")
