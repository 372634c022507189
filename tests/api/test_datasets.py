"""Datasets: built-ins (listed before they exist), samples, and zip uploads with their safety checks."""

from __future__ import annotations

import io
import shutil
import stat
import zipfile

import numpy as np
from PIL import Image

from tests.api.conftest import image_bytes, make_settings, open_client

API = "/api/v1"


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_zip() -> bytes:
    """cat/link.png is a symbolic link to /etc/passwd."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("cat/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("dog/b.png", image_bytes())
    return buf.getvalue()


def class_zip(prefix: str = "") -> bytes:
    return make_zip({f"{prefix}{cls}/{i}.png": image_bytes("PNG", size=(20 + i, 20)) for cls in ("cat", "dog") for i in range(5)})


def post_zip(c, data: bytes, name: str = "pets", **fields):
    return c.post(f"{API}/datasets", files={"file": ("pets.zip", data, "application/zip")}, data={"name": name, **fields})


def test_builtins_listed_before_generation(data_dir, pretrained_dir):
    shutil.rmtree(data_dir / "datasets" / "digits")
    with open_client(make_settings(data_dir, pretrained_dir)) as c:
        listed = {d["name"]: d for d in c.get(f"{API}/datasets").json()}
        assert listed["digits"]["ready"] is False and listed["digits"]["input_shape"] == [1, 28, 28]
        assert listed["digits"]["num_classes"] == 10 and listed["digits"]["counts"] is None
        assert listed["shapes"]["ready"] is True and listed["shapes"]["sizes"] == {"train": 64, "test": 32}
        one = c.get(f"{API}/datasets/digits").json()  # generated on first use
        assert one["ready"] is True and sum(one["counts"]["train"]) == 64 and one["classes"][0] == "0"


def test_warm_up_generates_builtins(data_dir, pretrained_dir):
    for name in ("digits", "shapes"):
        shutil.rmtree(data_dir / "datasets" / name)
    with open_client(make_settings(data_dir, pretrained_dir, warm_datasets=True)) as c:
        c.get(f"{API}/datasets/shapes")
        c.get(f"{API}/datasets/digits")
    assert data_dir.joinpath("datasets", "digits", "x_train.npy").is_file()


def test_samples(client):
    r = client.get(f"{API}/datasets/shapes/samples/test/3.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (64, 64)
    assert client.get(f"{API}/datasets/digits/samples/train/0.png").status_code == 200
    assert client.get(f"{API}/datasets/shapes/samples/test/32.png").status_code == 404
    assert client.get(f"{API}/datasets/shapes/samples/dev/0.png").status_code == 422
    assert client.get(f"{API}/datasets/shapes/samples/test/-1.png").status_code in (404, 422)
    assert client.get(f"{API}/datasets/nope").status_code == 404
    assert client.get(f"{API}/datasets/..%2F..%2Fmodels").status_code == 404


def test_upload_zip_and_train_on_it(client):
    r = post_zip(client, class_zip(), channels="1", height="16", width="16", test_fraction="0.4")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "pets" and ds["classes"] == ["cat", "dog"] and ds["input_shape"] == [1, 16, 16]
    assert ds["counts"] == {"train": [3, 3], "test": [2, 2]} and ds["skipped"] == []
    assert "pets" in [d["name"] for d in client.get(f"{API}/datasets").json()]
    spec = {"input_shape": [1, 16, 16], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}, {"type": "softmax"}]}
    m = client.post(f"{API}/models", json={"spec": spec, "dataset": "pets"}).json()
    assert m["classes"] == ["cat", "dog"]
    assert client.post(f"{API}/models/{m['id']}/train", json={"steps": 2, "batch_size": 2}).status_code == 200
    assert post_zip(client, class_zip(), name="pets").status_code == 409
    assert post_zip(client, class_zip(), name="shapes").status_code == 409
    assert post_zip(client, class_zip("pets/"), name="wrapped").status_code == 201  # one top folder is fine


def test_delete_an_imported_dataset(client):
    """Built-ins and datasets a model trains on stay (409, saying why); once free, the dataset goes,
    from the list and from disk, and its name can be used again."""
    assert post_zip(client, class_zip(), channels="1", height="16", width="16").status_code == 201
    spec = {"input_shape": [1, 16, 16], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}, {"type": "softmax"}]}
    m = client.post(f"{API}/models", json={"spec": spec, "dataset": "pets"}).json()
    r = client.delete(f"{API}/datasets/pets")
    assert r.status_code == 409 and m["id"] in r.json()["detail"]
    r = client.delete(f"{API}/datasets/shapes")
    assert r.status_code == 409 and "built-in" in r.json()["detail"]
    assert client.delete(f"{API}/datasets/nope").status_code == 404
    assert client.delete(f"{API}/datasets/..%2Fmodels").status_code == 404

    assert client.delete(f"{API}/models/{m['id']}").status_code == 204
    assert client.delete(f"{API}/datasets/pets").status_code == 204
    assert "pets" not in [d["name"] for d in client.get(f"{API}/datasets").json()]
    assert client.get(f"{API}/datasets/pets").status_code == 404
    assert client.delete(f"{API}/datasets/pets").status_code == 404
    assert post_zip(client, class_zip(), name="pets").status_code == 201
    assert client.get(f"{API}/datasets/shapes").status_code == 200


def test_upload_zip_errors(client):
    cases = {
        "not a zip": (b"hello", 422),
        "traversal": (make_zip({"../cat/a.png": image_bytes(), "dog/b.png": image_bytes()}), 422),
        "absolute": (make_zip({"/cat/a.png": image_bytes(), "dog/b.png": image_bytes()}), 422),
        "one class": (make_zip({"cat/a.png": image_bytes(), "cat/b.png": image_bytes()}), 422),
        "too deep": (make_zip({"a/b/c/d/e.png": image_bytes(), "a/b/c/f/g.png": image_bytes()}), 422),
        "bomb": (make_zip({"cat/a.png": b"\0" * 5_000_000, "dog/b.png": image_bytes()}, zipfile.ZIP_DEFLATED), 413),
    }
    for label, (data, status) in cases.items():
        r = post_zip(client, data, name=label.replace(" ", "-"))
        assert r.status_code == status, (label, r.text)
        assert isinstance(r.json()["detail"], str)
    r = post_zip(client, symlink_zip(), name="links")
    assert r.status_code == 422 and "link" in r.json()["detail"]
    assert post_zip(client, class_zip(), name="Bad Name!").status_code == 422
    assert post_zip(client, class_zip(), name="ok", channels="2").status_code == 422
    assert post_zip(client, class_zip(), name="ok", test_fraction="nan").status_code == 422
    assert client.post(f"{API}/datasets", data={"name": "x"}).status_code == 422


def test_dataset_zip_over_the_cap_is_413(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_archive_bytes=5_000)) as c:
        assert post_zip(c, class_zip()).status_code == 413


def test_import_files_already_on_the_server(client, settings):
    """MNIST-format files under the import folder become a dataset; paths outside it are refused."""
    from engine.data.idx import write_idx

    folder = settings.import_dir / "mini-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    r = client.post(f"{API}/datasets/import", json={"format": "mnist", "path": "mini-mnist", "name": "mini"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "mini" and body["input_shape"] == [1, 28, 28] and body["sizes"] == {"train": 30, "test": 10}
    assert "mini" in [d["name"] for d in client.get(f"{API}/datasets").json()]

    again = client.post(f"{API}/datasets/import", json={"format": "mnist", "path": "mini-mnist", "name": "mini"})
    assert again.status_code == 409
    escape = client.post(f"{API}/datasets/import", json={"format": "mnist", "path": "../../etc", "name": "x"})
    assert escape.status_code == 422 and "import folder" in escape.json()["detail"]
    missing = client.post(f"{API}/datasets/import", json={"format": "cifar10", "path": "nope", "name": "x"})
    assert missing.status_code == 404
    wrong = client.post(f"{API}/datasets/import", json={"format": "cifar10", "path": "mini-mnist", "name": "y"})
    assert wrong.status_code == 422 and wrong.json()["detail"]
    bad = client.post(f"{API}/datasets/import", json={"format": "pickle", "path": "mini-mnist", "name": "z"})
    assert bad.status_code == 422
