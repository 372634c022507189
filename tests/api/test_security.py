"""Headers, same-origin checks, the body cap, error shapes, the docs and the page; and a fuzzer: no 500s."""

from __future__ import annotations

import json
import re
import socket

import warnings

import anyio
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from app.cli import main
from app.config import get_settings
from app.main import create_app
from app.security import CSP
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, make_settings, open_client
from bench.server import Server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's import-time note about httpx2 (see conftest)
    from starlette.testclient import WebSocketDenialResponse

API = "/api/v1"


def test_csp_and_headers_everywhere(client):
    for r in (client.get(f"{API}/health"), client.get("/"), client.get(f"{API}/models/nope"),
              client.post(f"{API}/models", json={"bad": 1}), client.get("/static/nope.js")):
        assert r.headers["content-security-policy"] == CSP, r.url
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in client.get(f"{API}/health", headers={"origin": "http://evil.example"}).headers


def test_docs_work_offline(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "unsafe-inline" in docs.headers["content-security-policy"]  # only here, for Swagger's inline script
    urls = re.findall(r'(?:src|href)=["\']([^"\']+)', docs.text) + re.findall(r"url: '([^']+)'", docs.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
    for u in urls:
        assert client.get(u).status_code == 200, u
    spec = client.get("/openapi.json").json()
    body = spec["paths"][f"{API}/models/{{model_id}}/forward"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"Sample", "CreateModel", "TrainRequest"} <= set(spec["components"]["schemas"])


def test_origin_check(client):
    evil = {"origin": "http://evil.example"}
    r = client.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers=evil)
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    assert client.delete(f"{API}/models/{SHIPPED_ID}", headers={"origin": "null"}).status_code == 403
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers={"origin": "http://testserver"}).status_code == 201
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers={"origin": "http://testserver:8000"}).status_code == 403
    assert client.get(f"{API}/models", headers=evil).status_code == 200  # reads are not state-changing


def test_allowed_origins_for_a_reverse_proxy(data_dir, pretrained_dir):
    """Behind a proxy the browser's Origin is the public URL while Host is the backend's: origins
    listed in CNNVIS_ALLOWED_ORIGINS pass (scheme, host and port, default ports filled in)."""
    settings = make_settings(data_dir, pretrained_dir, allowed_origins=("https://cnn.example.org", "http://localhost:5000"))
    with open_client(settings) as c:
        def post(origin: str) -> int:
            return c.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers={"origin": origin}).status_code

        assert post("https://cnn.example.org") == 201
        assert post("https://CNN.example.org:443") == 201
        assert post("http://localhost:5000") == 201
        assert post("http://testserver") == 201  # the server's own origin still passes
        assert post("http://cnn.example.org") == 403  # another scheme is another origin
        assert post("https://cnn.example.org:8443") == 403
        r = c.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "CNNVIS_ALLOWED_ORIGINS" in r.json()["detail"]
        with c.websocket_connect(f"{API}/models/{SHIPPED_ID}/live", headers={"origin": "https://cnn.example.org"}) as ws:
            assert ws.receive_json()["type"] == "state"


def test_bad_allowed_origins_are_refused_at_start(data_dir, pretrained_dir, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="example.org"):
        create_app(make_settings(data_dir, pretrained_dir, allowed_origins=("example.org",)))
    monkeypatch.setenv("CNNVIS_ALLOWED_ORIGINS", "https://ok.example, ftp://files.example")
    monkeypatch.setenv("CNNVIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)  # `serve` sets it: restored afterwards
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--data-dir", str(tmp_path), "--port", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "ftp://files.example" in err and "Traceback" not in err


EVIL = "evil.example:8000"  # a name an attacker points at 127.0.0.1 (DNS rebinding)
LIVE = f"{API}/models/{SHIPPED_ID}/live"


def host_status(c, host: str, path: str = f"{API}/health") -> int:
    return c.get(path, headers={"host": host}).status_code


def test_host_allowlist_refuses_dns_rebinding(data_dir, pretrained_dir):
    """Another name for this machine, with a matching Origin, is refused on reads, writes and the
    WebSocket (400 with a JSON detail naming the host and CNNVIS_ALLOWED_HOSTS); nothing is created."""
    local, evil = {"host": "localhost:8000"}, {"host": EVIL, "origin": f"http://{EVIL}"}
    with open_client(make_settings(data_dir, pretrained_dir, allowed_hosts=())) as c:
        before = c.get(f"{API}/models", headers=local).json()
        r = c.get(f"{API}/models", headers=evil)
        assert r.status_code == 400 and r.headers["content-security-policy"] == CSP
        assert "evil.example" in r.json()["detail"] and "CNNVIS_ALLOWED_HOSTS" in r.json()["detail"]
        assert c.post(f"{API}/models", json={"preset": "tiny-vgg"}, headers=evil).status_code == 400
        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect(LIVE, headers=evil):
            pass
        assert denied.value.status_code == 400 and "CNNVIS_ALLOWED_HOSTS" in denied.value.json()["detail"]
        assert host_status(c, "testserver") == 400  # the default allows loopback names only
        assert c.get(f"{API}/models", headers=local).json() == before


def test_host_and_origin_verdicts_are_per_value(data_dir, pretrained_dir):
    """The Host and Origin checks remember the verdict for the last value they saw (a speed-up):
    requests alternating between allowed and refused values each get their own answer."""
    with open_client(make_settings(data_dir, pretrained_dir, allowed_hosts=())) as c:
        for _ in range(3):
            assert host_status(c, "localhost:8000") == 200
            assert host_status(c, EVIL) == 400
            assert host_status(c, "127.0.0.1:8000") == 200
            assert c.get(f"{API}/health", headers={"host": ""}).status_code == 400
        for _ in range(3):
            for origin, status in (("http://localhost:8000", 200), ("http://evil.example", 403), ("https://localhost:8000", 403),
                                   ("http://localhost:8000", 200)):
                r = c.post(f"{API}/specs/validate", json={"spec": SMALL_SPEC}, headers={"host": "localhost:8000", "origin": origin})
                assert r.status_code == status, (origin, r.text)


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST.:8000", "127.0.0.1:8000", "127.9.8.7",
                                  "[::1]:8000", "[::1]"])
def test_loopback_hosts_pass(data_dir, pretrained_dir, host):
    with open_client(make_settings(data_dir, pretrained_dir, allowed_hosts=())) as c:
        assert host_status(c, host) == 200
        r = c.post(f"{API}/models", json={"spec": SMALL_SPEC}, headers={"host": host, "origin": f"http://{host}"})
        assert r.status_code == 201, r.text
        with c.websocket_connect(LIVE, headers={"host": host, "origin": f"http://{host}"}) as ws:
            assert ws.receive_json()["type"] == "state"


def test_allowed_hosts_setting_bound_address_and_star(data_dir, pretrained_dir, monkeypatch):
    """CNNVIS_ALLOWED_HOSTS adds names, the hosts of CNNVIS_ALLOWED_ORIGINS and a specific bound address
    are allowed; bound to every address, the refusal says to list the LAN name; "*" allows any host."""
    monkeypatch.setenv("CNNVIS_ALLOWED_HOSTS", " cnn.lan, 192.168.1.5:8000 ,")
    monkeypatch.setenv("CNNVIS_HOST", "10.0.0.7")
    env = get_settings()
    assert env.allowed_hosts == ("cnn.lan", "192.168.1.5:8000") and env.bind_host == "10.0.0.7"
    settings = make_settings(data_dir, pretrained_dir, allowed_hosts=env.allowed_hosts, bind_host=env.bind_host,
                             allowed_origins=("https://cnn.example.org",))
    with open_client(settings) as c:
        for host in ("cnn.lan", "CNN.lan:9000", "192.168.1.5", "10.0.0.7:8000", "cnn.example.org"):
            assert host_status(c, host) == 200, host
        for host in ("other.lan", "cnn.lan.evil.example", "192.168.1.6", "cnn.lan@evil.example", "[cnn.lan]"):
            assert host_status(c, host) == 400, host
    with open_client(make_settings(data_dir, pretrained_dir, allowed_hosts=(), bind_host="0.0.0.0")) as c:
        r = c.get(f"{API}/health", headers={"host": "192.168.1.5:8000"})
        assert r.status_code == 400 and "every address" in r.json()["detail"]
    with open_client(make_settings(data_dir, pretrained_dir, allowed_hosts=("*",))) as c:  # unsafe: no check
        assert host_status(c, EVIL) == 200
        assert c.post(f"{API}/models", json={"spec": SMALL_SPEC}, headers={"host": EVIL, "origin": f"http://{EVIL}"}).status_code == 201


def test_bad_allowed_hosts_are_refused_at_start(data_dir, pretrained_dir, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="http://cnn.lan"):
        create_app(make_settings(data_dir, pretrained_dir, allowed_hosts=("http://cnn.lan",)))
    monkeypatch.setenv("CNNVIS_ALLOWED_HOSTS", "ok.lan, bad/host")
    monkeypatch.delenv("CNNVIS_HOST", raising=False)
    monkeypatch.setenv("CNNVIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--data-dir", str(tmp_path), "--port", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "bad/host" in err and "Traceback" not in err


def test_origin_scheme_must_match(client):
    """https://testserver is another origin than http://testserver (and the other way round)."""
    def post(url: str, origin: str) -> int:
        return client.post(url, json={"spec": SMALL_SPEC}, headers={"origin": origin}).status_code

    r = client.post(f"{API}/models", json={"spec": SMALL_SPEC}, headers={"origin": "https://testserver"})
    assert r.status_code == 403 and "http://testserver" in r.json()["detail"]
    assert post(f"https://testserver{API}/models", "https://testserver") == 201  # scope scheme https (TLS or a proxy)
    assert post(f"https://testserver{API}/models", "http://testserver") == 403
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(LIVE, headers={"origin": "https://testserver"}):
        pass
    assert closed.value.code == 4403
    with client.websocket_connect(f"wss://testserver{LIVE}", headers={"origin": "https://testserver"}) as ws:
        assert ws.receive_json()["type"] == "state"


def run_asgi(app, scope: dict) -> list[dict]:
    sent = []

    async def receive():
        return {"type": "websocket.connect"} if scope["type"] == "websocket" else {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    anyio.run(app, {"asgi": {"version": "3.0"}, "scheme": "http", "root_path": "", "query_string": b"",
                    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {}, **scope}, receive, send)
    return sent


def test_missing_host_is_refused(client):
    """An HTTP/1.0 request without Host gets 400; a WebSocket handshake on a server without the
    ``websocket.http.response`` extension is closed before accept (the server answers 403)."""
    sent = run_asgi(client.app, {"type": "http", "http_version": "1.0", "method": "GET", "path": f"{API}/health",
                                 "raw_path": f"{API}/health".encode(), "headers": []})
    assert sent[0]["status"] == 400 and b"no Host header" in sent[1]["body"]
    sent = run_asgi(client.app, {"type": "websocket", "path": LIVE, "raw_path": LIVE.encode(), "subprotocols": [],
                                 "headers": [(b"host", EVIL.encode())]})
    assert [m["type"] for m in sent] == ["websocket.close"]


def raw_status(port: int, request: str) -> str:
    """The status line a real server answers ``request`` (raw bytes, Host as written) with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        return s.makefile("rb").readline().decode().strip()


def test_real_server_checks_the_host(data_dir, pretrained_dir):
    srv = Server(data_dir, pretrained_dir)
    srv.start()
    try:
        get = "GET /api/v1/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n"
        upgrade = ("GET /api/v1/models/{}/live HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert raw_status(srv.port, get.format(f"localhost:{srv.port}")).endswith("200 OK")
        assert " 400 " in raw_status(srv.port, get.format(f"evil.example:{srv.port}"))
        assert " 400 " in raw_status(srv.port, "GET /api/v1/health HTTP/1.0\r\n\r\n")
        assert " 400 " in raw_status(srv.port, upgrade.format(SHIPPED_ID, f"evil.example:{srv.port}"))
        assert " 101 " in raw_status(srv.port, upgrade.format(SHIPPED_ID, f"127.0.0.1:{srv.port}"))
    finally:
        srv.stop()


def test_error_shapes(client):
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and "/docs" in r.json()["detail"]
    r = client.put(f"{API}/models")
    assert r.status_code == 405 and "PUT" in r.json()["detail"]
    r = client.post(f"{API}/models", content=b'{"preset": "tiny-vgg", "seed": NaN}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and set(r.json()) == {"detail"}


def test_body_cap_declared_and_streamed(data_dir, pretrained_dir):
    limit = 100_000
    with open_client(make_settings(data_dir, pretrained_dir, max_upload_bytes=limit)) as c:
        r = c.post(f"{API}/images", content=b"x" * (limit + 1), headers={"content-type": "application/octet-stream"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        app = c.app
        pulled = 0

        head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'

        async def receive():  # a multipart upload that never ends (16 MB offered)
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": head if pulled == 1 else b"\0" * 16_384, "more_body": pulled < 1000}

        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": f"{API}/images", "raw_path": f"{API}/images".encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver"), (b"content-type", b"multipart/form-data; boundary=xyz")],
                 "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {}}
        anyio.run(app, scope, receive, send)
        assert sent[0]["status"] == 413
        assert pulled <= limit // 16_384 + 2  # stopped reading right after the cap


def test_page_bootstrap_is_safe_json(client):
    r = client.get("/")
    assert r.status_code == 200
    m = re.search(r'<script type="application/json" id="bootstrap">(.*?)</script>', r.text, re.S)
    assert m, r.text[:500]
    data = json.loads(m.group(1))
    assert data["api_base"] == "/api/v1" and data["default_model_id"] == SHIPPED_ID
    assert {d["name"] for d in data["datasets"]} >= {"shapes", "digits"} and data["limits"]["max_image_side"] == 4096
    assert any(t["type"] == "conv2d" for t in data["layer_types"]) and data["presets"][0]["name"] == "tiny-vgg"


def test_bootstrap_escapes_markup(client):
    from app.routes.pages import bootstrap_json

    state = client.app.state.cnnvis
    mid = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "name": "</script><b>&"}).json()["id"]
    text = bootstrap_json(state)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["default_model_id"] == SHIPPED_ID and mid


def test_page_without_template(data_dir, pretrained_dir, tmp_path):
    with open_client(make_settings(data_dir, pretrained_dir, web_dir=tmp_path / "web")) as c:
        r = c.get("/")
        assert r.status_code == 200 and "/docs" in r.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["steps", "batch_size", "learning_rate", "optimizer", "momentum", "spec", "preset", "from", "seed",
                         "name", "image_id", "sample", "split", "index", "method", "target", "layer", "layers", "input_shape",
                         "type", "filters", "kernel_size", "frozen", "training", "dataset", "loss", "max_examples", "x"]),
        kids, max_size=5),
    max_leaves=12,
)


def test_fuzzed_json_never_500(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_train_steps=2, max_batch_values=60_000)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        paths = [("POST", f"{API}/models"), ("POST", f"{API}/models/{mid}/train"), ("POST", f"{API}/models/{mid}/forward"),
                 ("POST", f"{API}/models/{mid}/explain"), ("POST", f"{API}/models/{mid}/evaluate"), ("PATCH", f"{API}/models/{mid}"),
                 ("POST", f"{API}/specs/validate"), ("POST", f"{API}/models/{mid}/reset"), ("POST", f"{API}/models/{SHIPPED_ID}/explain")]

        @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(body=JSON, where=st.sampled_from(paths))
        def run(body, where):
            method, path = where
            r = c.request(method, path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
            assert r.status_code < 500, (method, path, body, r.text)
            assert isinstance(r.json()["detail"] if r.status_code >= 400 else r.json(), (str, dict, list))

        run()
