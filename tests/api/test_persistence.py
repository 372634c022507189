"""A restart loses nothing: weights, history, optimizer state, images; broken files do not stop the server;
temporary files a killed server left are gone after the next start."""

from __future__ import annotations

import shutil
import tempfile

from engine.fileio import TMP_PREFIX
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, image_bytes, open_client, upload

API = "/api/v1"


def _weights(c, mid):
    return [c.get(f"{API}/models/{mid}/layers/{i}/filters").json()["data"] for i in (0, 3)]


def test_restart_keeps_everything(settings):
    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "name": "kept"}).json()["id"]
        c.post(f"{API}/models/{mid}/train", json={"steps": 3, "batch_size": 8, "optimizer": "adam", "learning_rate": 0.01})
        c.patch(f"{API}/models/{mid}", json={"frozen": [3]})
        c.post(f"{API}/models/{mid}/evaluate", json={})
        image_id = upload(c, image_bytes()).json()["id"]
        before = (c.get(f"{API}/models/{mid}").json(), c.get(f"{API}/models/{mid}/history").json(), _weights(c, mid))
        fwd = c.post(f"{API}/models/{mid}/forward", json={"image_id": image_id}).json()
    with open_client(settings) as c:
        after = (c.get(f"{API}/models/{mid}").json(), c.get(f"{API}/models/{mid}/history").json(), _weights(c, mid))
        assert after == before
        assert c.post(f"{API}/models/{mid}/forward", json={"image_id": image_id}).json() == fwd


def test_resumed_training_matches_uninterrupted(settings, tmp_path):
    """Optimizer buffers, step and data order survive a restart: 2 + restart + 2 steps == 4 steps."""
    body = {"spec": SMALL_SPEC, "seed": 7}
    hp = {"batch_size": 8, "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.05}
    with open_client(settings) as c:
        a = c.post(f"{API}/models", json=body).json()["id"]
        b = c.post(f"{API}/models", json=body).json()["id"]
        c.post(f"{API}/models/{a}/train", json={"steps": 4, **hp})
        c.post(f"{API}/models/{b}/train", json={"steps": 2, **hp})
    with open_client(settings) as c:
        c.post(f"{API}/models/{b}/train", json={"steps": 2})
        assert _weights(c, a) == _weights(c, b)
        ha, hb = (c.get(f"{API}/models/{m}/history").json()["steps"] for m in (a, b))
        assert [s["loss"] for s in ha] == [s["loss"] for s in hb]


def test_broken_files_do_not_stop_the_server(settings):
    with open_client(settings) as c:
        good = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        c.post(f"{API}/models/{good}/train", json={"steps": 2, "batch_size": 4})
        bad = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        stale = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        c.post(f"{API}/models/{stale}/train", json={"steps": 1, "batch_size": 4})
    models = settings.models_dir
    (models / bad / "checkpoint.npz").write_bytes(b"garbage")
    (models / ".new-abc").mkdir()  # a creation interrupted before its rename
    (models / "emptydir").mkdir()
    # the history and optimizer of a later step written, the checkpoint not (killed in between)
    shutil.copy(models / good / "history.sqlite", models / stale / "history.sqlite")
    shutil.copy(models / good / "optimizer.npz", models / stale / "optimizer.npz")
    (models / good / "history.sqlite").write_text("not a database")
    with open_client(settings) as c:
        ids = {m["id"] for m in c.get(f"{API}/models").json()}
        assert good in ids and stale in ids and bad not in ids and "emptydir" not in ids and SHIPPED_ID in ids
        assert c.get(f"{API}/models/{good}/history").json()["steps"] == []  # the broken file is set aside
        assert (models / good / "history.sqlite.broken").read_text() == "not a database"
        hist = c.get(f"{API}/models/{stale}/history").json()
        assert [s["step"] for s in hist["steps"]] == [1]  # history past the checkpoint's step is dropped
        assert c.post(f"{API}/models/{stale}/train", json={"steps": 1}).status_code == 200


def test_deleted_model_stays_deleted(settings):
    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        assert c.delete(f"{API}/models/{mid}").status_code == 204
    with open_client(settings) as c:
        assert c.get(f"{API}/models/{mid}").status_code == 404


def test_start_removes_what_a_killed_server_left(settings, tmp_path):
    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        assert tempfile.gettempdir() == str(settings.tmp_dir)  # where Starlette spools uploads over 1 MB
    assert tempfile.gettempdir() != str(settings.tmp_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{TMP_PREFIX}keep").write_bytes(b"not ours")
    (settings.import_dir / "linked").symlink_to(outside)  # a symlinked folder is not walked into
    left = [settings.tmp_dir / "tmpab12cd.zip", settings.tmp_dir / "part" / "x.bin",
            settings.models_dir / mid / f"{TMP_PREFIX}checkpoint.npz.k2j3.tmp",
            settings.datasets_dir / f"{TMP_PREFIX}digits.npz.a1.tmp", settings.images_dir / f"{TMP_PREFIX}0123.bin.zz.tmp",
            settings.models_dir / ".new-abc" / "checkpoint.npz", settings.models_dir / ".deleted-abc-123456" / "history.json",
            settings.datasets_dir / f"{TMP_PREFIX}mine.x1" / "images.npy"]  # a dataset import's folder
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    with open_client(settings) as c:
        assert c.get(f"{API}/models/{mid}").status_code == 200
    assert not [p for p in left if p.exists()]
    assert list(settings.tmp_dir.iterdir()) == []
    assert not (settings.models_dir / ".new-abc").exists() and not (settings.models_dir / ".deleted-abc-123456").exists()
    assert not (settings.datasets_dir / f"{TMP_PREFIX}mine.x1").exists()
    assert (outside / f"{TMP_PREFIX}keep").exists()
