"""Live training on Ray (`app.workers.ray_pool`): on a small local cluster (a head without CPUs and two
nodes of one CPU each, the least object-store memory Ray allows), through the real app and its live
sessions: the same steps as the server's, trainings spread over the nodes, one node lost mid-training
and every recorded step kept, once. One cluster for the module; every wait is on a message or a state.
Without Ray, only the tests of the missing-extra message run."""

from __future__ import annotations

import importlib.util
import sys
from contextlib import ExitStack

import numpy as np
import pytest

from app.config import get_settings
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SMALL_SPEC, make_settings, open_client
from tests.api.test_live import stopped, until

API = "/api/v1"
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed (pip install "cnn-visualizer[ray]")')


def test_without_ray_the_setting_names_the_extra(monkeypatch, tmp_path, capsys):
    from app import cli
    from app.workers.ray_pool import RayMissing, RayPool

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    with pytest.raises(RayMissing, match=r'pip install "cnn-visualizer\[ray\]"'):
        RayPool("auto")
    for var in ("CNNVIS_RAY", "CNNVIS_DATA_DIR", "CNNVIS_HOST"):
        monkeypatch.setenv(var, "")  # restored after the test: `serve` sets them
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--ray", "auto", "--data-dir", str(tmp_path)])
    assert info.value.code == 2 and 'pip install "cnn-visualizer[ray]"' in capsys.readouterr().err


def test_the_ray_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("CNNVIS_RAY", raising=False)
    assert get_settings().ray is None
    monkeypatch.setenv("CNNVIS_RAY", "10.0.0.5:6379")
    assert get_settings().ray == "10.0.0.5:6379"


def test_the_actor_runs_commands_in_the_order_they_were_sent(data_dir):
    """A threaded actor may start two calls out of order; the sequence numbers put them back. No Ray needed:
    the actor's class is plain Python (here its dataset comes from the folder, not the object store)."""
    import io

    from app.workers import frames
    from app.workers.ray_pool import TrainActor
    from engine.model import Model

    actor = TrainActor()
    actor.command(1, {"op": "sync"}, {})  # arrives first, sent second: held until the load
    assert actor.answers(timeout=0.05) == []
    model = Model.build(SMALL_SPEC, seed=1)  # sent as the server sends it (app.services.jobs.model_payload)
    actor.command(0, {"op": "load", "model": {"spec": SMALL_SPEC, "frozen": []}, "hp": {"batch_size": 2}, "seed": 0, "step": 0,
                      "examples_seen": 0, "dataset_folder": str(data_dir / "datasets" / "digits")},
                  {f"m/{k}": v for k, v in model.state().items()})
    [raw] = actor.answers(timeout=30)
    header, arrays = frames.read(io.BytesIO(raw))
    assert header["op"] == "state" and header["reason"] == "sync" and header["step"] == 0  # not "sync before any load"
    assert {"w/layers.0.weight", "w/layers.0.bias"} <= set(arrays)
    actor.command(2, {"op": "quit"}, {})


@pytest.fixture(scope="module")
def cluster():
    from ray._private.ray_constants import OBJECT_STORE_MINIMUM_MEMORY_BYTES as least
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no report to Ray's makers from a test run
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": least})
        c.workers = [c.add_node(num_cpus=1, object_store_memory=least) for _ in range(2)]  # the nodes trainings run on
        c.wait_for_nodes()
        try:
            yield c
        finally:
            import ray

            ray.shutdown()
            c.shutdown()


@pytest.fixture
def ray_client(cluster, data_dir, pretrained_dir):
    from app.workers.ray_pool import RayPool

    with open_client(make_settings(data_dir, pretrained_dir, ray=cluster.address)) as c:
        pool = c.app.state.cnnvis.live.pool
        assert isinstance(pool, RayPool), "app.main.make_state must build LiveRegistry(state, RayPool(settings.ray))"
        yield c


def models(client, n: int, seed: int = 3) -> list[str]:
    return [client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "seed": seed}).json()["id"]
            for _ in range(n)]


def every_step(client, model_id: str) -> list[int]:
    """The step numbers of the whole history, page by page (not the downsampled series)."""
    steps, start = [], 0
    while start is not None:
        page = client.get(f"{API}/models/{model_id}/history", params={"from_step": start}).json()
        steps += [s["step"] for s in page["steps"]]
        start = page.get("next_from_step")
    return steps


@needs_ray
def test_live_steps_on_ray_are_the_steps_of_the_server(ray_client, data_dir):
    """A live run on a Ray actor (the dataset from the object store) and POST /train in the server agree."""
    ids = models(ray_client, 2, seed=5)
    hp = {"batch_size": 4, "learning_rate": 0.05, "optimizer": "adam"}
    with ray_client.websocket_connect(f"{API}/models/{ids[0]}/live") as ws:
        ws.receive_json()
        ws.send_json({"action": "step", "steps": 3, **hp})
        until(ws, stopped)
        ws.send_json({"action": "step", "steps": 2})  # a second run from the state the first brought back
        assert until(ws, stopped)[0]["step"] == 5
    assert ray_client.post(f"{API}/models/{ids[1]}/train", json={"steps": 5, **hp}).json()["step"] == 5
    live, served = (load_checkpoint(data_dir / "models" / i / "checkpoint.npz").model.state() for i in ids)
    for name in served:
        np.testing.assert_allclose(live[name], served[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert ray_client.app.state.cnnvis.live.pool.datasets() == [str(data_dir / "datasets" / "digits")]


@needs_ray
def test_explanations_and_evaluations_run_as_jobs_on_ray_actors(ray_client, data_dir):
    """`WorkerPool.run_job` on a `RayPool`: the same job command in an actor, the dataset from the object store."""
    import os

    from engine.data.dataset import open_dataset
    from engine.train import evaluate_model

    [mid] = models(ray_client, 1, seed=7)
    pool = ray_client.app.state.cnnvis.live.pool
    done = pool.jobs_done
    ev = ray_client.post(f"{API}/models/{mid}/evaluate", json={"split": "test", "max_examples": 30}).json()
    model = load_checkpoint(ray_client.get(f"{API}/models/{mid}/checkpoint").content).model
    want = evaluate_model(model, open_dataset(data_dir / "datasets" / "digits"), split="test", max_examples=30)
    assert ev["accuracy"] == want.accuracy and ev["confusion_matrix"] == want.confusion_matrix
    r = ray_client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "saliency"})
    assert r.status_code == 200 and r.json()["method"] == "saliency"
    assert pool.jobs_done == done + 2 and os.getpid() not in pool.pids()


@needs_ray
def test_trainings_spread_over_the_nodes_and_survive_a_node_lost(ray_client, cluster):
    state = ray_client.app.state.cnnvis
    pool, ids = state.live.pool, models(ray_client, 3)
    with ExitStack() as stack:
        sockets = {}
        for mid in ids:
            ws = sockets[mid] = stack.enter_context(ray_client.websocket_connect(f"{API}/models/{mid}/live"))
            ws.receive_json()
            ws.send_json({"action": "play", "batch_size": 2})
        reached = {mid: until(ws, lambda m: m["type"] == "progress" and m["step"] >= 3)[0]["step"] for mid, ws in sockets.items()}
        workers = {n.node_id for n in cluster.workers}
        assert set(pool.placement()) == workers  # 2 + 1, none on the head (it has no CPU)
        assert len(pool.datasets()) == 1  # put in the object store once for all three

        victim = cluster.workers[0]
        node_of = {mid: state.live._sessions[mid].worker.node() for mid in ids}
        hit = [mid for mid in ids if node_of[mid] == victim.node_id]
        assert hit and len(hit) < len(ids)
        cluster.remove_node(victim)
        for mid, ws in sockets.items():
            if mid in hit:
                notice, _ = until(ws, lambda m: m["type"] == "error")
                assert notice["status"] == 503 and "goes on from step" in notice["detail"]
                reached[mid] = int(notice["detail"].split("goes on from step ")[1].split()[0])
            until(ws, lambda m, s=reached[mid]: m["type"] == "progress" and m["step"] >= s + 3)
        assert set(pool.placement()) == workers - {victim.node_id}  # the replacements run on the live node

        final = {}
        for mid, ws in sockets.items():
            ws.send_json({"action": "pause"})
            final[mid] = until(ws, stopped)[0]["step"]
    for mid in ids:
        assert every_step(ray_client, mid) == list(range(1, final[mid] + 1)), mid  # the lost steps were taken again, once each
        assert ray_client.get(f"{API}/models/{mid}").json()["step"] == final[mid]
