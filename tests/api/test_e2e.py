"""End to end against a real ``python -m app serve`` on 127.0.0.1: upload -> forward -> train -> live ->
restart -> checkpoint, over HTTP and WebSocket; deleting a model while it trains live."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, image_bytes
from bench.server import Server


@pytest.fixture
def server(data_dir, pretrained_dir):
    srv = Server(data_dir, pretrained_dir)
    srv.start()
    yield srv
    srv.stop()


def until_progress(ws, step: int) -> None:
    """Read messages until a progress message reports ``step`` or more."""
    while True:
        msg = json.loads(ws.recv(timeout=30))
        if msg["type"] == "progress" and msg["step"] >= step:
            return


def live_steps(ws_url: str, steps: int) -> dict:
    with connect(ws_url, open_timeout=10, close_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "state"
        ws.send(json.dumps({"action": "play", "eval_every": 3}))
        got = []
        while True:
            msg = json.loads(ws.recv(timeout=30))
            got.append(msg["type"])
            if msg["type"] == "progress" and msg["step"] >= steps:
                break
        ws.send(json.dumps({"action": "pause"}))
        while True:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "state" and not msg["playing"]:
                assert "evaluation" in got or msg["step"] < 3
                return msg


def test_end_to_end(server):
    api = f"{server.base}/api/v1"
    with httpx.Client(timeout=30) as c:
        assert c.get(f"{server.base}/docs").status_code == 200
        assert "bootstrap" in c.get(f"{server.base}/").text
        image = c.post(f"{api}/images", files={"file": ("a.png", image_bytes("PNG", size=(50, 40)), "image/png")})
        assert image.status_code == 201
        image_id = image.json()["id"]
        fwd = c.post(f"{api}/models/{SHIPPED_ID}/forward?dtype=float16", json={"image_id": image_id})
        assert fwd.status_code == 200 and fwd.json()["input"]["shape"] == [3, 64, 64]
        mid = c.post(f"{api}/models", json={"spec": SMALL_SPEC, "name": "e2e"}).json()["id"]
        r = c.post(f"{api}/models/{mid}/train", json={"steps": 3, "batch_size": 8, "learning_rate": 0.05})
        assert r.status_code == 200 and r.json()["step"] == 3
        ws_url = f"ws://127.0.0.1:{server.port}/api/v1/models/{mid}/live"
        state = live_steps(ws_url, 8)
        step = state["step"]
        assert step >= 8
        assert c.post(f"{api}/models", json={"preset": "tiny-vgg"}, headers={"origin": "http://evil.example"}).status_code == 403
        too_big = c.post(f"{api}/images", content=b"\0" * 300_000, headers={"content-type": "application/octet-stream"})
        assert too_big.status_code == 413
        before = (c.get(f"{api}/models/{mid}").json(), c.get(f"{api}/models/{mid}/history").json(),
                  c.get(f"{api}/models/{mid}/layers/0/filters").json())
    server.stop()
    server.start()
    with httpx.Client(timeout=30) as c:
        after = (c.get(f"{api}/models/{mid}").json(), c.get(f"{api}/models/{mid}/history").json(),
                 c.get(f"{api}/models/{mid}/layers/0/filters").json())
        assert after == before and after[0]["step"] == step
        assert c.get(f"{api}/images/{image_id}").status_code == 200
        ckpt = c.get(f"{api}/models/{mid}/checkpoint")
        assert ckpt.status_code == 200
        new = c.post(f"{api}/models/import", files={"file": ("e2e.npz", ckpt.content, "application/octet-stream")})
        assert new.status_code == 201 and new.json()["step"] == step
        assert c.get(f"{api}/models/{new.json()['id']}/layers/0/filters").json()["data"] == before[2]["data"]
        assert live_steps(ws_url, step + 2)["step"] >= step + 2  # training resumes where it stopped


def test_killed_server_restarts_with_every_model(server):
    api = f"{server.base}/api/v1"
    with httpx.Client(timeout=30) as c:
        ids = [c.post(f"{api}/models", json={"spec": SMALL_SPEC}).json()["id"] for _ in range(2)]
        ws_url = f"ws://127.0.0.1:{server.port}/api/v1/models/{ids[0]}/live"
        with connect(ws_url) as ws:
            ws.recv(timeout=10)
            ws.send(json.dumps({"action": "play", "batch_size": 2}))
            until_progress(ws, 10)
            server.proc.kill()  # no goodbye: SIGKILL mid-training
            server.proc.wait(10)
    server.start()
    with httpx.Client(timeout=30) as c:
        listed = {m["id"]: m for m in c.get(f"{api}/models").json()}
        assert set(ids) <= set(listed)
        for mid in ids:
            assert c.post(f"{api}/models/{mid}/forward", json={"sample": {"index": 0}}).status_code == 200
            assert c.post(f"{api}/models/{mid}/train", json={"steps": 1, "batch_size": 2}).status_code == 200


def test_delete_while_live_closes_the_socket_with_4410(server):
    """Over a real socket: the close frame carries the documented code and reason, the DELETE is a 204."""
    api = f"{server.base}/api/v1"
    with httpx.Client(timeout=30) as c:
        mid = c.post(f"{api}/models", json={"spec": SMALL_SPEC}).json()["id"]
        with connect(f"ws://127.0.0.1:{server.port}/api/v1/models/{mid}/live", open_timeout=10, close_timeout=5) as ws:
            ws.recv(timeout=10)
            ws.send(json.dumps({"action": "play", "batch_size": 2}))
            until_progress(ws, 3)
            assert c.delete(f"{api}/models/{mid}").status_code == 204
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.recv(timeout=30)
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4410, "model deleted")
        assert c.get(f"{api}/models/{mid}").status_code == 404
        assert c.get(f"{api}/health").json()["live_sessions"] == 0
        assert not (server.data_dir / "models" / mid).exists()
