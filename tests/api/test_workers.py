"""Live training in worker processes: the frames between server and worker, where the steps run, that
they are the same steps as in the server, exact hyperparameter changes, a worker killed mid-training,
and workers reused or stopped. Every wait is on a message or a process state, never on the clock."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from app.workers import frames
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SMALL_SPEC
from tests.api.test_live import stopped, until

API = "/api/v1"


def roundtrip(header: dict, arrays: dict) -> tuple[dict, dict]:
    buf = io.BytesIO()
    frames.write(buf, header, arrays)
    buf.seek(0)
    return frames.read(buf)


def test_frames_carry_json_and_arrays_exactly():
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "t": np.array(7, dtype=np.int64),
              "empty": np.zeros((0, 3), dtype=np.float32), "mask": np.array([True, False]),
              "strided": np.arange(20, dtype=np.float64)[::3], "pixels": np.full((2, 2), 255, dtype=np.uint8)}
    header, got = roundtrip({"op": "state", "loss": float("nan"), "records": [{"step": 1}]}, arrays)
    assert header["op"] == "state" and np.isnan(header["loss"]) and header["records"] == [{"step": 1}]
    assert set(got) == set(arrays)
    for name, arr in arrays.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape, name  # 0-d stays 0-d
        np.testing.assert_array_equal(got[name], arr)


def test_frames_refuse_what_is_not_a_frame():
    with pytest.raises(frames.FrameError):
        frames.read(io.BytesIO(b"hello world, not a frame at all"))
    with pytest.raises(EOFError):
        frames.read(io.BytesIO(b""))
    buf = io.BytesIO()
    frames.write(buf, {"op": "x"}, {"a": np.ones(100, dtype=np.float32)})
    with pytest.raises(EOFError):
        frames.read(io.BytesIO(buf.getvalue()[:-10]))  # a write cut short by a kill
    with pytest.raises(frames.FrameError):
        frames.write(io.BytesIO(), {}, {"c": np.ones(2, dtype=np.complex64)})


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_pids(client) -> list[int]:
    return client.app.state.cnnvis.live.pool.pids()


def test_live_steps_run_in_a_worker_process_that_is_reused(client, small_model):
    other = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "name": "other"}).json()
    with client.websocket_connect(f"{API}/models/{small_model['id']}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2})
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= 2)
        pids = worker_pids(client)
        assert len(pids) == 1 and pids[0] != os.getpid() and "app.workers.train_worker" in cmdline(pids[0])
        assert client.app.state.cnnvis.models.get(small_model["id"]).trainer is None  # the server holds no trainer meanwhile
        ws.send_json({"action": "pause"})
        until(ws, stopped)
    assert worker_pids(client) == pids and running(pids[0])  # kept warm for the next session
    with client.websocket_connect(f"{API}/models/{other['id']}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "step", "steps": 2, "batch_size": 2})
        assert until(ws, stopped)[0]["step"] == 2
        assert worker_pids(client) == pids  # the same process trained the second model


def test_live_training_takes_the_same_steps_as_the_server(client, data_dir):
    """Live steps in a worker and POST /train steps in the server give the same weights, step for step."""
    ids = [client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "seed": 5}).json()["id"] for _ in range(2)]
    hp = {"batch_size": 4, "learning_rate": 0.05, "optimizer": "adam"}
    with client.websocket_connect(f"{API}/models/{ids[0]}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "step", "steps": 3, **hp})
        until(ws, stopped)
        ws.send_json({"action": "step", "steps": 4})  # a second run from the state the first brought back
        assert until(ws, stopped)[0]["step"] == 7
    assert client.post(f"{API}/models/{ids[1]}/train", json={"steps": 3, **hp}).status_code == 200
    assert client.post(f"{API}/models/{ids[1]}/train", json={"steps": 4}).json()["step"] == 7
    live, served = (load_checkpoint(data_dir / "models" / i / "checkpoint.npz").model.state() for i in ids)
    for name in served:
        np.testing.assert_allclose(live[name], served[name], rtol=1e-6, atol=1e-7, err_msg=name)
    losses = [[s["loss"] for s in client.get(f"{API}/models/{i}/history").json()["steps"]] for i in ids]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_a_change_while_playing_is_recorded_at_the_step_it_takes_effect(client, small_model):
    mid = small_model["id"]
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2, "learning_rate": 0.01})
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= 3)
        ws.send_json({"action": "play", "learning_rate": 0.03})
        until(ws, lambda m: m["type"] == "state" and m["hyperparameters"]["learning_rate"] == 0.03)
        assert client.patch(f"{API}/models/{mid}", json={"training": {"learning_rate": 0.02}}).status_code == 200
        until(ws, lambda m: m["type"] == "state" and m["hyperparameters"]["learning_rate"] == 0.02)
        first = until(ws, lambda m: m["type"] == "progress")[0]["step"]
        until(ws, lambda m: m["type"] == "progress" and m["step"] > first + 2)
        ws.send_json({"action": "pause"})
        until(ws, stopped)
    hist = client.get(f"{API}/models/{mid}/history").json()
    change = next(e for e in hist["events"] if e["changes"].get("learning_rate") == 0.03)["step"]
    rates = {s["step"]: s["learning_rate"] for s in hist["steps"]}
    assert change >= 3 and all(rates[s] == 0.01 for s in rates if s <= change)
    assert rates[change + 1] == 0.03  # the step right after the recorded one trained with the new rate
    assert rates[max(rates)] == 0.02  # the PATCH from elsewhere reached the worker too


def test_a_worker_killed_mid_training_is_replaced_and_nothing_recorded_is_lost(client, small_model):
    mid = small_model["id"]
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2})
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= 3)
        [pid] = worker_pids(client)
        os.kill(pid, signal.SIGKILL)
        notice, _ = until(ws, lambda m: m["type"] == "error")
        assert notice["status"] == 503 and "worker stopped" in notice["detail"] and "goes on from step" in notice["detail"]
        resumed = int(notice["detail"].split("goes on from step ")[1].split()[0])
        until(ws, lambda m: m["type"] == "progress" and m["step"] >= resumed + 3)
        assert worker_pids(client) and pid not in worker_pids(client)
        ws.send_json({"action": "pause"})
        state, _ = until(ws, stopped)
    steps = [s["step"] for s in client.get(f"{API}/models/{mid}/history").json()["steps"]]
    assert steps == list(range(1, state["step"] + 1))  # the lost steps were taken again, once each
    assert client.get(f"{API}/models/{mid}").json()["step"] == state["step"]


def test_deleting_a_training_model_stops_its_worker(client, small_model):
    mid = small_model["id"]
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 2})
        until(ws, lambda m: m["type"] == "progress")
        [pid] = worker_pids(client)
        assert client.delete(f"{API}/models/{mid}").status_code == 204
    assert pid not in worker_pids(client) and not running(pid)
