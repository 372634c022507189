"""Live training over the WebSocket: actions, messages, bad input, refusals, closing, and deleting
the model while it trains. Every wait is on a message or a state, never on the clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.websockets import WebSocketDisconnect

import app.services.live as live_module
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, make_settings, open_client

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


def closed(ws, limit: int = 10_000) -> WebSocketDisconnect:
    """Read messages until the server closes the socket; returns the close (its code and reason)."""
    with pytest.raises(WebSocketDisconnect) as info:
        for _ in range(limit):
            ws.receive_json()
    return info.value


@contextmanager
def playing(client, model_id: str, step: int, **settings) -> Iterator:
    """A live socket on the model, training (batches of 2) until it has reported ``step``."""
    with client.websocket_connect(f"{API}/models/{model_id}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2, **settings})
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= step)
        yield ws


def thread_alive(model_id: str) -> bool:
    return any(t.name == f"cnnvis-live-{model_id}" for t in threading.enumerate())


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


def test_play_pause_throttled_progress_and_evaluations(live, client, small_model, monkeypatch):
    """Progress is throttled (here to one message a day): at most one message while playing, and the
    pause reports every step since, so no step is lost however few messages go out."""
    monkeypatch.setattr(live_module, "PROGRESS_EVERY_S", 86_400.0)
    live.send_json({"action": "play", "batch_size": 2, "eval_every": 5})
    ev, seen = until(live, lambda m: m["type"] == "evaluation" and m["step"] >= 10)
    live.send_json({"action": "pause"})
    state, rest = until(live, stopped)
    seen += rest
    progress = [m for m in seen if m["type"] == "progress"]
    assert len(progress) <= 2 and progress[-1]["step"] == state["step"] >= 10
    assert [s["step"] for p in progress for s in p["steps"]] == list(range(1, state["step"] + 1))
    assert ev["step"] % 5 == 0 and len(ev["confusion_matrix"]) == 10
    live.send_json({"action": "state"})  # answered by the training thread after anything it had queued
    again, _ = until(live, lambda m: m["type"] == "state")
    assert again["playing"] is False and again["step"] == state["step"]  # paused means paused
    assert client.get(f"{API}/models/{small_model['id']}").json()["step"] == state["step"]


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
    assert client.patch(f"{API}/models/{mid}", json={"training": {"learning_rate": 0.02}}).status_code == 200
    live.send_json({"action": "pause"})
    state, _ = until(live, stopped)
    assert state["hyperparameters"]["learning_rate"] == 0.02


def test_closing_the_socket_pauses_and_saves(client, small_model, data_dir):
    mid = small_model["id"]
    with playing(client, mid, 3):
        pass
    state = client.app.state.cnnvis
    assert not state.live.is_playing(mid) and state.live.count() == 0
    assert not thread_alive(mid), "the training thread outlived its socket"
    step = client.get(f"{API}/models/{mid}").json()["step"]
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


def assert_deleted_cleanly(client, mid: str, data_dir) -> None:
    """The session and its thread are gone, and so is every file of the model (temp files included);
    the id is free and a new model can be made."""
    assert not thread_alive(mid), "the training thread outlived the deletion"
    assert client.app.state.cnnvis.live.count() == 0 and client.get(f"{API}/health").json()["live_sessions"] == 0
    assert client.get(f"{API}/models/{mid}").status_code == 404
    models = data_dir / "models"
    assert sorted(p.name for p in models.rglob("*")) == [], "files left behind by the deletion"
    new = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "name": "after"})
    assert new.status_code == 201, new.text
    assert sorted(p.name for p in models.iterdir()) == [new.json()["id"]]
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:  # the deleted id has no live session to join
        assert ws.receive_json()["status"] == 404
        assert closed(ws).code == 4404


def test_delete_while_playing_closes_the_socket_with_4410(client, small_model, data_dir):
    mid = small_model["id"]
    with playing(client, mid, 3, eval_every=2) as ws:
        assert client.delete(f"{API}/models/{mid}").status_code == 204
        info = closed(ws)
        assert (info.code, info.reason) == (live_module.CLOSE_MODEL_DELETED, live_module.REASON_MODEL_DELETED) == (4410, "model deleted")
    assert_deleted_cleanly(client, mid, data_dir)


def test_delete_right_after_pause_with_the_socket_open(client, small_model, data_dir):
    """The pause's save and the deletion race: whichever comes first, nothing is left on disk."""
    mid = small_model["id"]
    with playing(client, mid, 2) as ws:
        ws.send_json({"action": "pause"})
        assert client.delete(f"{API}/models/{mid}").status_code == 204
        assert closed(ws).code == 4410
    assert_deleted_cleanly(client, mid, data_dir)


def test_delete_right_after_pause_and_close(client, small_model, data_dir):
    """What the page does: pause, close the socket, delete at once. The server has not yet let go of
    the socket (its thread is saving), yet the deletion is a 204, not a 409."""
    mid = small_model["id"]
    with playing(client, mid, 2) as ws:
        ws.send_json({"action": "pause"})
        until(ws, stopped)
        ws.close()  # the client's goodbye; the server handles it while the DELETE arrives
        assert client.delete(f"{API}/models/{mid}").status_code == 204
    assert_deleted_cleanly(client, mid, data_dir)


def test_a_save_racing_the_deletion_writes_nothing(client, small_model, data_dir):
    """A save that gets the model's lock after the deletion finds no folder and leaves no file."""
    mid = small_model["id"]
    state = client.app.state.cnnvis
    rec = state.models.get(mid)
    assert client.delete(f"{API}/models/{mid}").status_code == 204
    with rec.lock.hold():
        state.models.save(rec)
    assert not (data_dir / "models" / mid).exists()
    assert sorted(p.name for p in (data_dir / "models").rglob("*")) == []


def test_a_failed_deletion_closes_the_socket_and_keeps_the_model(data_dir, pretrained_dir):
    """The model's lock cannot be had (503): training stopped, so the socket closes with 4503, and the
    model, still there, can be trained live again."""
    with open_client(make_settings(data_dir, pretrained_dir, lock_wait_s=0.2)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}).json()["id"]
        rec = c.app.state.cnnvis.models.get(mid)
        with c.websocket_connect(f"{API}/models/{mid}/live") as ws:
            ws.receive_json()
            with rec.lock.hold():
                assert c.delete(f"{API}/models/{mid}").status_code == 503
            assert closed(ws).code == 4503
        assert c.get(f"{API}/models/{mid}").status_code == 200 and (data_dir / "models" / mid / "checkpoint.npz").is_file()
        with c.websocket_connect(f"{API}/models/{mid}/live") as ws:
            ws.receive_json()
            ws.send_json({"action": "step", "steps": 1})
            assert until(ws, stopped)[0]["step"] == 1


def test_a_shipped_model_still_cannot_be_deleted_while_watched_live(client):
    with client.websocket_connect(f"{API}/models/{SHIPPED_ID}/live") as ws:
        assert ws.receive_json()["type"] == "state"
        r = client.delete(f"{API}/models/{SHIPPED_ID}")
        assert r.status_code == 409 and "read-only" in r.json()["detail"]
        ws.send_json({"action": "state"})
        assert until(ws, lambda m: m["type"] == "state")[0]["read_only"] is True  # the socket stays open
