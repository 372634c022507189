"""Explanations, evaluations and POST /train's steps as jobs in worker processes (`app.services.jobs`,
`WorkerPool.run_job`): they run outside the server's process, give the server's results, a bad
request is still a 422, and a worker killed mid-job is a clear 503 (or the stream's error line) after
which the next job works. Every wait is on a process state, never on the clock alone."""

from __future__ import annotations

import json
import os
import signal

import numpy as np

from app.encoding import decode_tensor
from app.workers.pool import WorkerProcess
from engine.checkpoint import load_checkpoint
from engine.data.dataset import open_dataset
from engine.train import evaluate_model
from tests.api.conftest import SHIPPED_ID, make_settings, open_client
from tests.api.test_workers import cmdline, running

API = "/api/v1"


def pool(client):
    return client.app.state.cnnvis.live.pool


def kill_next_job(monkeypatch) -> list[int]:
    """From now on, SIGKILL the worker that is sent the next job right after sending it (it dies
    mid-job, before any answer); returns the list the killed pid goes into."""
    killed: list[int] = []
    send = WorkerProcess.send

    def send_then_kill(self, header, arrays=None):
        send(self, header, arrays)
        if header.get("op") == "job" and not killed:
            os.kill(self.pid, signal.SIGKILL)
            killed.append(self.pid)

    monkeypatch.setattr(WorkerProcess, "send", send_then_kill)
    return killed


def test_explain_evaluate_and_train_run_in_a_worker_process(client, small_model):
    mid, p = small_model["id"], pool(client)
    done = p.jobs_done
    assert client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "gradient"}).status_code == 200
    assert client.post(f"{API}/models/{mid}/evaluate", json={"split": "test"}).status_code == 200
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 4}).status_code == 200
    assert p.jobs_done == done + 3 and p.job_workers() == []
    pids = p.pids()  # kept warm for the next job or live session
    assert pids and os.getpid() not in pids and all("app.workers.train_worker" in cmdline(pid) for pid in pids)


def test_a_worker_evaluation_is_the_engine_evaluation(client, small_model, data_dir):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 3, "batch_size": 8})
    got = client.post(f"{API}/models/{mid}/evaluate", json={"split": "test", "max_examples": 40}).json()
    model = load_checkpoint(client.get(f"{API}/models/{mid}/checkpoint").content).model
    ev = evaluate_model(model, open_dataset(data_dir / "datasets" / "digits"), split="test", step=3, max_examples=40)
    assert got["accuracy"] == ev.accuracy and got["loss"] == ev.loss and got["confusion_matrix"] == ev.confusion_matrix


def test_a_bad_request_found_in_the_worker_is_a_422_and_the_worker_is_kept(client, small_model):
    mid, p = small_model["id"], pool(client)
    client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}})
    before = p.pids()
    r = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "grad_cam", "layer": 7})
    assert r.status_code == 422 and "feature maps" in r.json()["detail"]
    assert p.pids() == before  # the job's own error: the worker answered and was kept


def test_a_worker_killed_mid_training_is_a_503_and_the_next_job_works(client, small_model, monkeypatch):
    mid = small_model["id"]
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 1, "batch_size": 4}).status_code == 200
    killed = kill_next_job(monkeypatch)
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 5, "batch_size": 4})
    assert killed and not running(killed[0])
    assert r.status_code == 503 and "exited" in r.json()["detail"], r.text
    assert client.get(f"{API}/models/{mid}").json()["step"] == 1  # nothing of the lost job was applied
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 2})
    assert r.status_code == 200 and r.json()["step"] == 3
    assert killed[0] not in pool(client).pids()


def test_a_worker_killed_mid_stream_ends_it_with_an_error_line(client, small_model, monkeypatch):
    mid = small_model["id"]
    req = {"sample": {"index": 2}, "method": "occlusion", "patch": 1, "stride": 1, "checks": ["randomization", "deletion"]}
    killed = kill_next_job(monkeypatch)
    r = client.post(f"{API}/models/{mid}/explain/stream", json=req)
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert r.status_code == 200 and killed and not running(killed[0])
    assert "exited" in lines[-1]["error"] and all("done" in p for p in lines[:-1])
    r = client.post(f"{API}/models/{mid}/explain/stream", json={**req, "checks": []})  # the slot was given back
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [p["done"] for p in lines[:-1]] == sorted(p["done"] for p in lines[:-1]) and len(lines) > 1
    assert decode_tensor(lines[-1]["result"]["map"]).shape == (28, 28)
    assert np.isfinite(decode_tensor(lines[-1]["result"]["map"])).all()


def test_a_worker_started_at_startup_runs_the_first_job(data_dir, pretrained_dir):
    """With `warm_worker` (on for `cnnvis serve`), one worker starts with the server and is idle by the
    time it is needed: the first explanation runs in it instead of waiting for a new process."""
    with open_client(make_settings(data_dir, pretrained_dir, warm_worker=True)) as c:
        p = pool(c)
        assert p.warmed(60) and p.idle() == 1  # started and handed back idle, before any request
        warm = p.pids()
        assert len(warm) == 1 and "app.workers.train_worker" in cmdline(warm[0])
        r = c.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 0}, "method": "saliency"})
        assert r.status_code == 200 and p.jobs_done == 1
        assert p.pids() == warm, "the first job started another worker instead of using the warm one"
