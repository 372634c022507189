"""Workspaces (app.workspaces): private models, images and datasets per browser or bearer token, shipped
models and built-ins shared read-only, a teacher who sees all, read-only share links, per-workspace quotas,
and nothing changed with workspaces off."""

from __future__ import annotations

import secrets
import warnings

import pytest

from app.main import create_app
from app.workspaces import COOKIE
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, image_bytes, make_settings
from tests.api.test_datasets import class_zip, post_zip

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

API = "/api/v1"
TEACHER = "teacher-" + "t" * 40


@pytest.fixture
def ws_client(data_dir, pretrained_dir):
    settings = make_settings(data_dir, pretrained_dir, workspaces=True, teacher_token=TEACHER)
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def as_(client, token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def two(ws_client):
    """Two workspaces (bearer tokens) on one server, the first with a model."""
    a, b = token(), token()
    r = ws_client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits", "name": "mine"}, headers=as_(ws_client, a))
    assert r.status_code == 201, r.text
    return ws_client, a, b, r.json()["id"]


def test_cookie_attributes_and_reuse(ws_client):
    ws_client.cookies.clear()
    r = ws_client.get(f"{API}/models")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    value = cookie.split(";")[0].split("=", 1)[1]
    made = ws_client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"})  # the jar sends it back
    assert made.status_code == 201 and "set-cookie" not in made.headers
    mid = made.json()["id"]
    assert ws_client.get(f"{API}/models/{mid}").status_code == 200
    ws_client.cookies.clear()
    assert ws_client.get(f"{API}/models/{mid}", headers=as_(ws_client, value)).status_code == 200  # the same token as bearer
    ws_client.cookies.clear()
    assert ws_client.get(f"{API}/models/{mid}").status_code == 404  # a fresh workspace


def test_secure_cookie_over_https(ws_client):
    https = TestClient(ws_client.app, base_url="https://testserver")
    assert "Secure" in https.get(f"{API}/health").headers["set-cookie"]


@pytest.mark.parametrize("headers", [{"cookie": f"{COOKIE}=bad"}, {"authorization": "Bearer short"},
                                     {"authorization": "Basic abc"}, {"cookie": f'{COOKIE}="{"!" * 43}"; other'}])
def test_bad_or_missing_token_gets_a_new_workspace(ws_client, headers):
    ws_client.cookies.clear()
    r = ws_client.get(f"{API}/models", headers=headers)
    assert r.status_code == 200 and r.headers["set-cookie"].startswith(f"{COOKIE}=")
    assert [m["id"] for m in r.json()] == [SHIPPED_ID]


def test_cross_site_navigation_keeps_the_browser_cookie(ws_client):
    ws_client.cookies.clear()
    r = ws_client.get(f"{API}/models", headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 200 and "set-cookie" not in r.headers


def test_models_are_private(two):
    c, a, b, mid = two
    A, B = as_(c, a), as_(c, b)
    assert c.get(f"{API}/models/{mid}", headers=A).status_code == 200
    assert [m["id"] for m in c.get(f"{API}/models", headers=B).json()] == [SHIPPED_ID]
    assert mid in [m["id"] for m in c.get(f"{API}/models", headers=A).json()]
    sample = {"sample": {"split": "test", "index": 0}}
    for method, path, body in [("get", "", None), ("patch", "", {"name": "x"}), ("post", "/forward", sample),
                               ("post", "/train", {"steps": 1}), ("post", "/reset", None), ("get", "/history", None),
                               ("get", "/checkpoint", None), ("get", "/layers/0/filters.png", None),
                               ("post", "/share", None), ("delete", "", None)]:
        r = c.request(method, f"{API}/models/{mid}{path}", json=body, headers=B)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["detail"] == c.get(f"{API}/models/nope{mid[4:]}", headers=B).json()["detail"].replace(f"nope{mid[4:]}", mid)
    assert c.post(f"{API}/models", json={"from": mid}, headers=B).status_code == 404  # cannot copy what it cannot see
    assert c.get(f"{API}/models/{mid}", headers=A).json()["name"] == "mine"  # untouched
    assert c.post(f"{API}/models/{mid}/train", json={"steps": 1}, headers=A).status_code == 200


def test_live_socket_checks_the_owner(two):
    c, a, b, mid = two
    with c.websocket_connect(f"{API}/models/{mid}/live", headers=as_(c, b)) as ws:
        assert ws.receive_json()["status"] == 404
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4404
    with c.websocket_connect(f"{API}/models/{mid}/live", headers=as_(c, a)) as ws:
        assert ws.receive_json()["type"] == "state"


def test_images_are_private(two):
    c, a, b, mid = two
    A, B = as_(c, a), as_(c, b)
    r = c.post(f"{API}/images", files={"file": ("x.png", image_bytes(size=(28, 28), mode="L"), "image/png")}, headers=A)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert c.get(f"{API}/images/{iid}", headers=A).status_code == 200
    assert c.post(f"{API}/models/{mid}/forward", json={"image_id": iid}, headers=A).status_code == 200
    mine = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}, headers=B).json()["id"]
    assert c.get(f"{API}/images/{iid}", headers=B).status_code == 404
    assert c.post(f"{API}/models/{mine}/forward", json={"image_id": iid}, headers=B).status_code == 404  # even cached
    assert c.delete(f"{API}/images/{iid}", headers=B).status_code == 404
    assert c.delete(f"{API}/images/{iid}", headers=A).status_code == 204


def test_datasets_are_private_and_builtins_shared(two):
    c, a, b, _ = two
    A, B = as_(c, a), as_(c, b)
    r = post_zip(c.__class__(c.app, base_url="http://testserver", headers=A), class_zip(), channels="1", height="16", width="16")
    assert r.status_code == 201, r.text
    assert "pets" in [d["name"] for d in c.get(f"{API}/datasets", headers=A).json()]
    names = [d["name"] for d in c.get(f"{API}/datasets", headers=B).json()]
    assert "pets" not in names and {"shapes", "digits"} <= set(names)
    for method, path in [("get", "/datasets/pets"), ("get", "/datasets/pets/samples/train/0.png"), ("delete", "/datasets/pets")]:
        assert c.request(method, f"{API}{path}", headers=B).status_code == 404, path
    spec = {**SMALL_SPEC, "input_shape": [1, 16, 16], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}]}
    assert c.post(f"{API}/models", json={"spec": spec, "dataset": "pets"}, headers=B).status_code == 422
    assert c.post(f"{API}/models", json={"spec": spec, "dataset": "pets"}, headers=A).status_code == 201
    assert c.get(f"{API}/datasets/digits", headers=B).status_code == 200
    assert c.delete(f"{API}/datasets/digits", headers=B).status_code == 409  # built-in


def test_shipped_models_shared_read_only_and_copies_belong_to_the_copier(two):
    c, a, b, _ = two
    A, B = as_(c, a), as_(c, b)
    for who in (A, B):
        assert c.get(f"{API}/models/{SHIPPED_ID}", headers=who).json()["read_only"] is True
        assert c.patch(f"{API}/models/{SHIPPED_ID}", json={"name": "x"}, headers=who).status_code == 409
    copy = c.post(f"{API}/models", json={"from": SHIPPED_ID}, headers=B).json()["id"]
    assert c.patch(f"{API}/models/{copy}", json={"name": "b's"}, headers=B).status_code == 200
    assert c.get(f"{API}/models/{copy}", headers=A).status_code == 404


def test_teacher_sees_and_manages_every_workspace(two):
    c, a, b, mid = two
    theirs = c.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "digits"}, headers=as_(c, b)).json()["id"]
    for teacher in ({"authorization": f"Bearer {TEACHER}"}, {"cookie": f"{COOKIE}={TEACHER}"}):
        listed = {m["id"] for m in c.get(f"{API}/models", headers=teacher).json()}
        assert {mid, theirs, SHIPPED_ID} <= listed
    T = {"authorization": f"Bearer {TEACHER}"}
    assert c.patch(f"{API}/models/{theirs}", json={"name": "renamed"}, headers=T).status_code == 200
    assert c.delete(f"{API}/models/{mid}", headers=T).status_code == 204
    assert c.get(f"{API}/models/{mid}", headers=as_(c, a)).status_code == 404


def test_share_link_reads_but_cannot_write(two):
    c, a, b, mid = two
    A, B = as_(c, a), as_(c, b)
    r = c.post(f"{API}/models/{mid}/share", headers=A)
    assert r.status_code == 200, r.text
    share = r.json()["token"]
    got = c.get(f"{API}/models/{mid}?share={share}", headers=B)
    assert got.status_code == 200 and got.json()["read_only"] is True
    header = {**B, "x-share-token": share}
    assert c.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 0}}, headers=header).status_code == 200
    assert c.get(f"{API}/models/{mid}/layers/0/filters.png", headers=header).status_code == 200
    for method, path, body in [("patch", "", {"name": "x"}), ("post", "/train", {"steps": 1}), ("post", "/reset", None),
                               ("post", "/share", None), ("delete", "", None)]:
        r = c.request(method, f"{API}/models/{mid}{path}", json=body, headers=header)
        assert r.status_code == 409 and "read-only" in r.json()["detail"], (method, path, r.text)
    with c.websocket_connect(f"{API}/models/{mid}/live?share={share}", headers=B) as ws:
        assert ws.receive_json()["status"] == 404
    assert {m["id"] for m in c.get(f"{API}/models", headers=header).json()} == {SHIPPED_ID}  # not listed
    assert c.get(f"{API}/models/{mid}?share=wrong", headers=B).status_code == 404
    # a new share token replaces the old one, and survives a restart
    new = c.post(f"{API}/models/{mid}/share", headers=A).json()["token"]
    assert c.get(f"{API}/models/{mid}?share={share}", headers=B).status_code == 404
    c.app.state.cnnvis.models.load()
    assert c.get(f"{API}/models/{mid}?share={new}", headers=B).status_code == 200
    assert c.get(f"{API}/models/{mid}", headers=B).status_code == 404 and c.get(f"{API}/models/{mid}", headers=A).status_code == 200
    # a download carries neither the workspace nor the share hash
    assert b"owner" not in c.get(f"{API}/models/{mid}/checkpoint", headers=A).content


def test_share_link_reads_the_models_own_dataset_but_cannot_change_it(two):
    c, a, b, _ = two
    A, B = as_(c, a), as_(c, b)
    assert post_zip(c.__class__(c.app, base_url="http://testserver", headers=A), class_zip(), channels="1", height="16",
                    width="16").status_code == 201
    spec = {**SMALL_SPEC, "input_shape": [1, 16, 16], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}]}
    mid = c.post(f"{API}/models", json={"spec": spec, "dataset": "pets", "name": "on pets"}, headers=A).json()["id"]
    share = c.post(f"{API}/models/{mid}/share", headers=A).json()["token"]
    S = {**B, "x-share-token": share}
    sample = {"sample": {"split": "test", "index": 0}}
    reads = [("get", "/datasets/pets", None), ("get", "/datasets/pets/samples/train/0.png", None),
             ("post", f"/models/{mid}/forward", sample)]
    for method, path, body in reads:
        assert c.request(method, f"{API}{path}", json=body, headers=S).status_code == 200, path
        assert c.request(method, f"{API}{path}?share={share}", json=body, headers=B).status_code == 200, path
        assert c.request(method, f"{API}{path}", json=body, headers=B).status_code == 404, path  # not without it
        assert c.request(method, f"{API}{path}", json=body, headers={**B, "x-share-token": "wrong"}).status_code == 404
    assert c.get(f"{API}/datasets/pets", headers=S).json()["classes"] == ["cat", "dog"]
    assert "pets" not in [d["name"] for d in c.get(f"{API}/datasets", headers=S).json()]  # read, not listed
    # never changed, deleted or built on with the token
    assert c.delete(f"{API}/datasets/pets", headers=S).status_code == 404
    assert post_zip(c.__class__(c.app, base_url="http://testserver", headers=S), class_zip(), channels="1", height="16",
                    width="16").status_code == 409
    assert c.post(f"{API}/models", json={"spec": spec, "dataset": "pets"}, headers=S).status_code == 422
    mine = c.post(f"{API}/models", json={"spec": spec}, headers=B).json()["id"]
    assert c.patch(f"{API}/models/{mine}", json={"dataset": "pets"}, headers=S).status_code == 422
    assert c.get(f"{API}/datasets/pets/samples/train/0.png", headers=A).status_code == 200  # still there, still A's
    # a copy belongs to the copier, and does not keep a dataset that is not theirs
    copy = c.post(f"{API}/models", json={"from": mid}, headers=S)
    assert copy.status_code == 201, copy.text
    assert copy.json()["dataset"] != "pets" and copy.json()["read_only"] is False
    assert c.get(f"{API}/models/{copy.json()['id']}", headers=B).status_code == 200
    assert c.get(f"{API}/models/{copy.json()['id']}", headers=A).status_code == 404
    # a new token ends the old one's access to the dataset too
    c.post(f"{API}/models/{mid}/share", headers=A)
    assert c.get(f"{API}/datasets/pets", headers=S).status_code == 404


def test_quotas_count_each_workspace(data_dir, pretrained_dir):
    settings = make_settings(data_dir, pretrained_dir, workspaces=True, max_models=1, max_images=1)
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        A, B = as_(c, token()), as_(c, token())
        body = {"spec": SMALL_SPEC, "dataset": "digits"}
        assert c.post(f"{API}/models", json=body, headers=A).status_code == 201
        assert c.post(f"{API}/models", json=body, headers=A).status_code == 507
        assert c.post(f"{API}/models", json=body, headers=B).status_code == 201
        img = {"file": ("x.png", image_bytes(), "image/png")}
        assert c.post(f"{API}/images", files=img, headers=A).status_code == 201
        assert c.post(f"{API}/images", files=img, headers=A).status_code == 507
        assert c.post(f"{API}/images", files=img, headers=B).status_code == 201


def test_byte_quota_counts_each_workspace(data_dir, pretrained_dir):
    settings = make_settings(data_dir, pretrained_dir, workspaces=True, max_data_bytes=60_000)
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        A, B = as_(c, token()), as_(c, token())
        img = {"file": ("x.png", image_bytes(size=(100, 100)), "image/png")}
        assert c.post(f"{API}/images", files=img, headers=A).status_code == 201  # 30 KB
        assert c.post(f"{API}/images", files=img, headers=A).status_code == 507
        assert c.post(f"{API}/images", files=img, headers=B).status_code == 201


def test_off_nothing_changes(client, small_model):
    r = client.get(f"{API}/models", headers={"authorization": "Bearer whatever"})
    assert "set-cookie" not in r.headers and small_model["id"] in [m["id"] for m in r.json()]
    assert client.post(f"{API}/models/{small_model['id']}/share").status_code == 409
    assert b"owner" not in client.get(f"{API}/models/{small_model['id']}/checkpoint").content
