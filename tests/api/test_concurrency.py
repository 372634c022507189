"""Forward passes during live training see whole steps; too much work at once is a 503, not a hang."""

from __future__ import annotations

import threading
import time

import numpy as np

from app.concurrency import FairLock
from engine.data.dataset import load_dataset, to_float
from engine.model import Model
from engine.train import Hyperparameters, Trainer
from tests.api.conftest import SMALL_SPEC, make_settings, open_client
from tests.api.test_live import stopped, until

API = "/api/v1"
DEADLINE_S = 30.0  # generous: these loops wait for a state, and end as soon as they see it


def wait_until(check, what: str) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after `DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {DEADLINE_S:.0f} s waiting for {what}")
        time.sleep(0.005)


def test_forward_during_live_training_sees_consistent_weights(client, small_model, data_dir):
    """Every forward answer equals the model replayed to exactly the step it reports."""
    mid = small_model["id"]
    hp = {"batch_size": 4, "learning_rate": 0.05, "momentum": 0.9}
    seen: dict[int, list] = {}
    with client.websocket_connect(f"{API}/models/{mid}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", **hp})
        until(ws, lambda m: m["type"] == "progress")

        def forward_at_a_new_step() -> bool:
            body = client.post(f"{API}/models/{mid}/forward?layers=", json={"sample": {"index": 5}}).json()
            seen.setdefault(body["step"], body["probabilities"])
            return len(seen) >= 3

        wait_until(forward_at_a_new_step, "forward answers at three different steps of live training")
        ws.send_json({"action": "pause"})
        until(ws, stopped)
    ds = load_dataset(data_dir / "datasets" / "digits.npz")
    model = Model.build(SMALL_SPEC, seed=small_model["seed"])
    trainer = Trainer(model, ds, Hyperparameters(**hp), seed=small_model["seed"])
    x = to_float(ds.x_test[5:6])
    for step in sorted(seen):
        while trainer.step < step:
            trainer.train_step()
        assert np.allclose(model.predict_proba(x)[0], seen[step], atol=1e-6), step


def test_cpu_limit_answers_503_with_retry_after(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_cpu_jobs=1, cpu_wait_s=0.05)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        cpu = c.app.state.cnnvis.cpu
        with cpu.slot():  # another job holds the only slot
            r = c.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 0}})
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "retry" in r.json()["detail"]
            assert c.post(f"{API}/models/{mid}/train", json={"steps": 1}).status_code == 503
            assert c.get(f"{API}/health").status_code == 200  # cheap requests still answer
        assert c.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 0}}).status_code == 200


def test_busy_model_lock_answers_503(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, lock_wait_s=0.05)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        rec = c.app.state.cnnvis.models.get(mid)
        with rec.lock.hold():
            r = c.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 0}})
            assert r.status_code == 503 and "busy" in r.json()["detail"] and "retry-after" in r.headers


def test_fair_lock_serves_waiters_in_order():
    lock, order = FairLock(), []
    lock.acquire()
    threads = [threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release())) for i in range(5)]
    for i, t in enumerate(threads):
        t.start()
        wait_until(lambda i=i: len(lock._waiters) == i + 1, f"thread {i} to queue for the lock")  # a known order
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4] and not lock.locked()
    lock.acquire()
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    assert lock.acquire(timeout=0.01) is True
    lock.release()


def test_parallel_requests_on_many_models(client):
    ids = [client.post(f"{API}/models", json={"spec": SMALL_SPEC, "seed": i}).json()["id"] for i in range(3)]
    results, errors = [], []

    def work(mid):
        try:
            for _ in range(3):
                results.append(client.post(f"{API}/models/{mid}/train", json={"steps": 1, "batch_size": 4}).status_code)
                results.append(client.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 1}}).status_code)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(m,)) for m in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [200] * 18
    assert [client.get(f"{API}/models/{m}").json()["step"] for m in ids] == [3, 3, 3]
