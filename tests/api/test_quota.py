"""Quotas: too many models or too many bytes under DATA_DIR is a 507 naming the limit, the usage and
the setting; 0 turns a quota off; saving a model that already exists (training) never fails on them."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.errors import QuotaExceeded
from app.quota import Quota, folder_bytes
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, make_settings, open_client

API = "/api/v1"


def test_model_count_quota(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_models=2)) as c:
        first = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        assert c.post(f"{API}/models", json={"from": SHIPPED_ID}).status_code == 201  # shipped models do not count
        ckpt = c.get(f"{API}/models/{first}/checkpoint").content
        refused = [c.post(f"{API}/models", json={"spec": SMALL_SPEC}), c.post(f"{API}/models", json={"from": first}),
                   c.post(f"{API}/models/import", files={"file": ("m.npz", ckpt, "application/octet-stream")})]
        for r in refused:
            assert r.status_code == 507, r.text
            body = r.json()
            assert "CNNVIS_MAX_MODELS" in body["detail"] and "2" in body["detail"]
            assert (body["limit"], body["used"], body["setting"]) == (2, 2, "CNNVIS_MAX_MODELS")
        assert len(c.get(f"{API}/models").json()) == 3
        assert c.delete(f"{API}/models/{first}").status_code == 204
        assert c.post(f"{API}/models/import", files={"file": ("m.npz", ckpt, "application/octet-stream")}).status_code == 201


def test_byte_quota_refuses_new_models_but_not_training(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}).json()["id"]
    full = make_settings(data_dir, pretrained_dir, max_data_bytes=folder_bytes(data_dir) + 100)
    with open_client(full) as c:
        r = c.post(f"{API}/models", json={"spec": SMALL_SPEC})
        assert r.status_code == 507 and "CNNVIS_MAX_DATA_BYTES" in r.json()["detail"]
        assert r.json()["setting"] == "CNNVIS_MAX_DATA_BYTES"
        assert not [p for p in (data_dir / "models").iterdir() if p.name != mid]  # nothing half-written stays
        # an existing model trains and saves however full the directory is (adam adds optimizer state)
        trained = c.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 4, "optimizer": "adam"})
        assert trained.status_code == 200 and trained.json()["step"] == 2
        with c.websocket_connect(f"{API}/models/{mid}/live") as ws:
            ws.receive_json()
            ws.send_json({"action": "step", "steps": 2})
            while not ((m := ws.receive_json())["type"] == "state" and not m["playing"]):
                pass
            assert m["step"] == 4
    with open_client(make_settings(data_dir, pretrained_dir)) as c:
        assert c.get(f"{API}/models/{mid}").json()["step"] == 4


def test_zero_turns_quotas_off(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_models=0, max_data_bytes=0)) as c:
        for _ in range(2):
            assert c.post(f"{API}/models", json={"spec": SMALL_SPEC}).status_code == 201


def test_byte_accounting_between_measurements(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 600)
    (tmp_path / "link").symlink_to(tmp_path / "a")  # not followed, not counted twice
    now = [0.0]
    quota = Quota(Settings(data_dir=tmp_path, max_data_bytes=1000), ttl_s=10, clock=lambda: now[0])
    assert quota.used_bytes() == 600
    quota.check_bytes(300)  # passes and is counted: 900
    with pytest.raises(QuotaExceeded) as info:
        quota.check_bytes(200)
    assert info.value.status == 507 and info.value.extra["used"] == 900
    now[0] = 11.0  # the 300 bytes were never written: a new measurement finds room again
    quota.check_bytes(200)
    assert quota.used_bytes() == 800
    quota.check_models(199)  # the 200th model fits
    with pytest.raises(QuotaExceeded):
        quota.check_models(200)


def test_byte_quota_refuses_images_and_dataset_imports(data_dir, pretrained_dir):
    from tests.api.conftest import image_bytes
    from tests.api.test_datasets import class_zip, post_zip

    full = make_settings(data_dir, pretrained_dir, max_data_bytes=folder_bytes(data_dir) + 100)
    with open_client(full) as c:
        r = c.post(f"{API}/images", files={"file": ("a.png", image_bytes(size=(64, 64)), "image/png")})
        assert r.status_code == 507 and "CNNVIS_MAX_DATA_BYTES" in r.json()["detail"]
        r = post_zip(c, class_zip(), channels="1", height="16", width="16")
        assert r.status_code == 507 and "CNNVIS_MAX_DATA_BYTES" in r.json()["detail"]
        assert "pets" not in [d["name"] for d in c.get(f"{API}/datasets").json()]
        assert not (full.datasets_dir / "pets").exists()  # what the import wrote is gone
