"""Live training over the WebSocket: actions, messages, bad input, refusals, and closing."""

from __future__ import annotations

import time

import pytest
from starlette.websockets import WebSocketDisconnect

from engine.checkpoint import load_checkpoint
from tests.api.conftest import SHIPPED_ID

API = "/api/v1"


def until(ws, pred, limit: int = 400) -> tuple[dict, list[dict]]:
    """Read messages until ``pred(msg)``; returns that message and everything read."""
    seen = []
    for _ in range(limit):
        msg = ws.receive_json()
        seen.append(msg)
        if pred(msg):
            return msg, seen
    raise AssertionError(f"no matching message in {[m['type'] for m in seen]}")


def stopped(msg: dict) -> bool:
    return msg["type"] == "state" and not msg["playing"]


@pytest.fixture
def live(client, small_model):
    with client.websocket_connect(f"{API}/models/{small_model['id']}/live") as ws:
        first = ws.receive_json()
        assert first["type"] == "state" and first["playing"] is False and first["step"] == 0
        yield ws


def test_step_and_state(live, client, small_model):
    live.send_json({"action": "step", "steps": 3, "batch_size": 4, "learning_rate": 0.02})
    state, seen = until(live, stopped)
    assert state["step"] == 3 and state["hyperparameters"]["batch_size"] == 4
    progress = [m for m in seen if m["type"] == "progress"]
    assert progress and progress[-1]["step"] == 3 and progress[-1]["learning_rate"] == 0.02
    assert [s["step"] for p in progress for s in p["steps"]] == [1, 2, 3]
    assert {"loss", "accuracy", "steps_per_second", "epoch", "examples_seen"} <= set(progress[-1])
    hist = client.get(f"{API}/models/{small_model['id']}/history").json()
    assert [s["step"] for s in hist["steps"]] == [1, 2, 3]
    assert hist["events"][-1]["changes"] == {"batch_size": 4, "learning_rate": 0.02}


def test_play_pause_rate_and_evaluations(live, client, small_model):
    live.send_json({"action": "play", "batch_size": 2, "eval_every": 5})
    t0 = time.monotonic()
    _, seen = until(live, lambda m: time.monotonic() - t0 > 1.0)
    live.send_json({"action": "pause"})
    state, rest = until(live, stopped)
    seen += rest
    progress = [m for m in seen if m["type"] == "progress"]
    elapsed = time.monotonic() - t0
    assert len(progress) <= 12 * elapsed + 2  # at most about ten a second
    assert state["step"] > 5 and any(m["type"] == "evaluation" for m in seen)
    ev = next(m for m in seen if m["type"] == "evaluation")
    assert ev["step"] % 5 == 0 and len(ev["confusion_matrix"]) == 10
    time.sleep(0.2)
    assert client.get(f"{API}/models/{small_model['id']}").json()["step"] == state["step"]  # paused means paused


def test_pin_sends_activations(live, client, small_model):
    live.send_json({"action": "state", "pin": {"sample": {"split": "test", "index": 2}}, "activations_every_ms": 100,
                    "dtype": "float16", "layers": [0, 7]})
    msg, _ = until(live, lambda m: m["type"] == "activations")
    assert [layer["index"] for layer in msg["layers"]] == [0, 7] and msg["label"] is not None
    assert msg["layers"][0]["output"]["dtype"] == "float16" and len(msg["probabilities"]) == 10
    live.send_json({"action": "step", "steps": 2})
    msg, _ = until(live, lambda m: m["type"] == "activations" and m["step"] == 2)
    fwd = client.post(f"{API}/models/{small_model['id']}/forward?dtype=float16&layers=0,7", json={"sample": {"index": 2}}).json()
    assert fwd["probabilities"] == msg["probabilities"]
    until(live, stopped)
    live.send_json({"action": "state", "pin": None})
    assert until(live, lambda m: m["type"] == "state")[0]["pinned"] is False


def test_bad_messages_keep_the_socket_open(live):
    for raw in ("not json", "[]", '{"action": "dance"}', '{"action": "play", "learning_rate": 50}',
                '{"action": "play", "learning_rate": NaN}', '{"action": "play", "batch_size": 0}', '{"action": "step", "steps": 0}',
                '{"action": "play", "pin": {"image_id": "0123456789abcdef"}}', '{"action": "state", "layers": [99]}'):
        live.send_text(raw)
        msg, _ = until(live, lambda m: m["type"] == "error")
        assert isinstance(msg["detail"], str) and msg["detail"], raw
    live.send_bytes(b'{"action": "state"}')
    live.send_json({"action": "state"})
    state, _ = until(live, lambda m: m["type"] == "state" and m["step"] == 0)
    assert state["playing"] is False and state["hyperparameters"]["learning_rate"] != 50


def test_read_only_model_refuses_to_train(client):
    with client.websocket_connect(f"{API}/models/{SHIPPED_ID}/live") as ws:
        assert ws.receive_json()["type"] == "state"
        ws.send_json({"action": "play"})
        msg, _ = until(ws, lambda m: m["type"] == "error")
        assert msg["status"] == 409 and "copy it" in msg["detail"]
        ws.send_json({"action": "state", "pin": {"sample": {"index": 0}}})
        assert until(ws, lambda m: m["type"] == "activations")[0]["step"] == 500  # looking is allowed


def test_second_trainer_refused_and_train_blocked(live, client, small_model):
    mid = small_model["id"]
    with client.websocket_connect(f"{API}/models/{mid}/live") as second:
        msg = second.receive_json()
        assert msg["type"] == "error" and msg["status"] == 409 and "already" in msg["detail"]
        with pytest.raises(WebSocketDisconnect) as info:
            second.receive_json()
        assert info.value.code == 4409
    live.send_json({"action": "play", "batch_size": 2})
    until(live, lambda m: m["type"] == "progress")
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 1})
    assert r.status_code == 409 and "pause" in r.json()["detail"]
    assert client.post(f"{API}/models/{mid}/reset").status_code == 409
    assert client.delete(f"{API}/models/{mid}").status_code == 409
    assert client.patch(f"{API}/models/{mid}", json={"training": {"learning_rate": 0.02}}).status_code == 200
    live.send_json({"action": "pause"})
    state, _ = until(live, stopped)
    assert state["hyperparameters"]["learning_rate"] == 0.02


def test_closing_the_socket_pauses_and_saves(client, small_model, data_dir):
    mid = small_model["id"]
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2})
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= 3)
    state = client.app.state.cnnvis
    assert not state.live.is_playing(mid) and state.live.count() == 0
    step = client.get(f"{API}/models/{mid}").json()["step"]
    time.sleep(0.2)
    assert client.get(f"{API}/models/{mid}").json()["step"] == step
    assert load_checkpoint(data_dir / "models" / mid / "checkpoint.npz").step == step
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 1}).status_code == 200


def test_unknown_model_and_cross_origin(client):
    with client.websocket_connect(f"{API}/models/nope/live") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["status"] == 404
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4404
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect(f"{API}/models/{SHIPPED_ID}/live", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert info.value.code == 4403


def test_a_failing_step_pauses_and_reports(live, monkeypatch):
    import app.services.live as live_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(live_module, "record_steps", broken)
    live.send_json({"action": "play", "batch_size": 2})
    msg, _ = until(live, lambda m: m["type"] == "error")
    assert msg["status"] == 500 and "internal error" in msg["detail"] and "boom" not in msg["detail"]
    assert until(live, lambda m: m["type"] == "state")[0]["playing"] is False
    monkeypatch.undo()
    live.send_json({"action": "step", "steps": 1})
    assert until(live, stopped)[0]["step"] >= 1  # the session still works


def test_a_bad_message_does_not_pause(live):
    live.send_json({"action": "play", "batch_size": 2})
    until(live, lambda m: m["type"] == "progress")
    live.send_json({"action": "play", "learning_rate": -1})
    until(live, lambda m: m["type"] == "error")
    state, _ = until(live, lambda m: m["type"] == "state")
    assert state["playing"] is True
    live.send_json({"action": "pause"})
    until(live, stopped)


def test_a_patch_from_elsewhere_reaches_the_live_socket(live, client, small_model):
    """Another client changes the hyperparameters over REST: the page watching live hears of it."""
    import threading

    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.append(live.receive_json()), daemon=True)
    reader.start()  # nothing is sent on the socket: only the server's own notice can arrive
    r = client.patch(f"{API}/models/{small_model['id']}", json={"training": {"learning_rate": 0.123}})
    assert r.status_code == 200
    reader.join(timeout=10)
    assert got, "the live socket heard nothing of the PATCH"
    assert got[0]["type"] == "state" and got[0]["hyperparameters"]["learning_rate"] == 0.123
