"""Load shedding: with every CPU slot taken and the queue full, a request gets 503 at once (with
``Retry-After``) instead of waiting; a freed slot admits the next; live trainers keep a core each.

Every check reads the limiter's state (running, waiting, counts); nothing sleeps or times itself.
"""

from __future__ import annotations

import threading

import pytest

from app.concurrency import CpuLimiter
from app.errors import Busy
from tests.api.conftest import SMALL_SPEC, make_settings, open_client
from tests.api.test_concurrency import DEADLINE_S, wait_until
from tests.api.test_live import stopped, until

API = "/api/v1"
SAMPLE = {"sample": {"index": 0}}


@pytest.fixture
def busy_client(data_dir, pretrained_dir):
    """One CPU slot; a queued job would wait `DEADLINE_S`, so a shed 503 is told apart by the counts."""
    with open_client(make_settings(data_dir, pretrained_dir, max_cpu_jobs=1, cpu_wait_s=DEADLINE_S)) as c:
        yield c


def test_full_queue_answers_503_at_once_and_a_freed_slot_admits(busy_client):
    c = busy_client
    mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}).json()["id"]
    cpu = c.app.state.cnnvis.cpu
    queued: list = []
    with cpu.slot():  # the test holds the only slot
        waiter = threading.Thread(target=lambda: queued.append(c.post(f"{API}/models/{mid}/forward", json=SAMPLE)))
        waiter.start()
        wait_until(lambda: cpu.waiting == 1, "a forward request queued for the slot")
        r = c.post(f"{API}/models/{mid}/forward", json=SAMPLE)  # the queue is as long as the slots: shed
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        assert int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["detail"]
        assert cpu.counts["shed"] == 1 and cpu.counts["timed_out"] == 0 and cpu.waiting == 1  # answered without queueing
        assert c.get(f"{API}/health").status_code == 200  # cheap requests still answer
    waiter.join(DEADLINE_S)
    assert queued[0].status_code == 200  # the freed slot went to the queued request
    assert c.post(f"{API}/models/{mid}/forward", json=SAMPLE).status_code == 200
    assert cpu.counts["timed_out"] == 0 and cpu.running == 0


def test_every_cpu_bound_route_sheds_with_retry_after(busy_client):
    c = busy_client
    mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}).json()["id"]
    cpu = c.app.state.cnnvis.cpu
    cpu.max_queue_s = 0.0  # no queue at all once a job has been timed: every busy request is shed
    with cpu.slot():
        for method, url, kw in [("POST", f"{API}/models/{mid}/forward", {"json": SAMPLE}),
                                ("POST", f"{API}/models/{mid}/train", {"json": {"steps": 1}}),
                                ("POST", f"{API}/models", {"json": {"spec": SMALL_SPEC}})]:
            r = c.request(method, url, **kw)
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and r.json()["detail"], url
    assert cpu.counts["shed"] == 3 and cpu.counts["queued"] == 0 and cpu.running == 0


def test_slots_leave_each_live_trainer_a_core(client, small_model):
    cpu = client.app.state.cnnvis.cpu
    cpu.cores, cpu.max_slots = 3, 4
    assert cpu.slots == 3
    with client.websocket_connect(f"{API}/models/{small_model['id']}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "play", "batch_size": 4})
        until(ws, lambda m: m["type"] == "state" and m["playing"])
        assert cpu.trainers == 1 and cpu.slots == 2
        ws.send_json({"action": "pause"})
        until(ws, stopped)
        assert cpu.trainers == 0 and cpu.slots == 3


def test_slot_rule_keeps_one_slot_and_never_counts_below_zero():
    cpu = CpuLimiter(4, 1.0, cores=2)
    assert cpu.slots == 2
    cpu.training(True)
    cpu.training(True)
    cpu.training(True)
    assert cpu.trainers == 3 and cpu.slots == 1  # one request can always run
    for _ in range(4):
        cpu.training(False)
    assert cpu.trainers == 0 and cpu.slots == 2


def test_limiter_sheds_when_the_expected_wait_is_too_long():
    cpu = CpuLimiter(1, DEADLINE_S, cores=1, max_queue_s=0.0)
    with cpu.slot():
        pass  # one timed job: the expected wait is now above zero
    with cpu.slot():
        with pytest.raises(Busy) as info:
            with cpu.slot():
                pass
    assert int(info.value.headers["Retry-After"]) >= 1
    assert cpu.counts == {"admitted": 2, "queued": 0, "shed": 1, "timed_out": 0}


def test_admission_limit_turns_the_surplus_away_before_reading_it():
    """With ``limit`` API requests inside, one more gets 503 at once (JSON, Retry-After) without its body
    being read; the page's own files are not counted; a finished request lets the next one in."""
    import asyncio

    import httpx
    from starlette.responses import JSONResponse

    from app.concurrency import AdmissionLimit

    release, inside, bodies_read = asyncio.Event(), [], []

    async def app(scope, receive, send):
        if scope["path"].startswith("/api/"):
            bodies_read.append(await receive())
            inside.append(scope["path"])
            await release.wait()
        await JSONResponse({"ok": scope["path"]})(scope, receive, send)

    limited = AdmissionLimit(app, limit=2)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://testserver") as c:
            held = [asyncio.create_task(c.post(f"/api/v1/x{i}", content=b"body")) for i in range(2)]
            while len(inside) < 2:
                await asyncio.sleep(0)  # let the two requests reach the app (no clock involved)
            refused = await c.post("/api/v1/extra", content=b"never read")
            page = await c.get("/static/app.js")  # static files pass while the API is full
            release.set()
            done = [await t for t in held]
            after = await c.post("/api/v1/after", content=b"body")
            return refused, page, done, after

    refused, page, done, after = asyncio.run(scenario())
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "2 requests already" in refused.json()["detail"]
    assert page.status_code == 200 and [r.status_code for r in done] == [200, 200] and after.status_code == 200
    assert len(bodies_read) == 3 and limited.shed == 1 and limited.in_flight == 0
