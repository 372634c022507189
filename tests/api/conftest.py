"""Fixtures for the API tests: an app on a temporary data directory with tiny built-in datasets,
a read-only "shipped" TinyVGG, and helpers to make images and small models."""

from __future__ import annotations

import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():
    # Starlette warns at import that it prefers the httpx2 package; the client itself works with httpx.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from app.config import Settings
from app.main import create_app
from engine.checkpoint import save_checkpoint
from engine.model import Model
from engine.presets import preset_spec

SIZES = {"shapes": (64, 32), "digits": (64, 32)}
SHIPPED_ID = "tiny-vgg-shapes"
# A small, fast network for the digits dataset (1x28x28, 10 classes).
SMALL_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
        {"type": "softmax"},
    ],
}


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory) -> Path:
    """The tiny built-ins, generated once per test session."""
    from app.stores import DatasetStore

    folder = tmp_path_factory.mktemp("datasets")
    store = DatasetStore(Settings(data_dir=folder.parent / "unused", builtin_sizes=SIZES))
    store.root = folder
    for name in SIZES:
        store.get(name)
    return folder


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pretrained")
    model = Model.build(preset_spec("tiny-vgg", (3, 64, 64), 8), seed=1)
    from engine.data.shapes import SHAPE_CLASSES

    save_checkpoint(folder / f"{SHIPPED_ID}.npz", model, classes=list(SHAPE_CLASSES), step=500,
                    meta={"name": "TinyVGG (trained)", "dataset": "shapes"})
    return folder


def make_settings(data_dir: Path, pretrained_dir: Path, **overrides) -> Settings:
    values = dict(data_dir=data_dir, pretrained_dir=pretrained_dir, warm_datasets=False, warm_worker=False, builtin_sizes=SIZES,
                  save_every_s=0.2, cpu_wait_s=2.0, lock_wait_s=10.0,
                  allowed_hosts=("testserver",))  # the TestClient's Host; loopback names are allowed anyway
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def data_dir(tmp_path, dataset_cache) -> Path:
    data = tmp_path / "data"
    shutil.copytree(dataset_cache, data / "datasets")
    return data


@pytest.fixture
def settings(data_dir, pretrained_dir) -> Settings:
    return make_settings(data_dir, pretrained_dir)


def open_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), base_url="http://testserver")


@pytest.fixture
def client(settings):
    with open_client(settings) as c:
        yield c


@pytest.fixture
def small_model(client) -> dict:
    r = client.post("/api/v1/models", json={"spec": SMALL_SPEC, "dataset": "digits", "name": "small", "seed": 3})
    assert r.status_code == 201, r.text
    return r.json()


def image_bytes(fmt: str = "PNG", size=(40, 30), mode: str = "RGB", **save) -> bytes:
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 3}[mode]
    arr = rng.integers(0, 255, size=(size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr)
    if mode == "CMYK":
        img = img.convert("CMYK")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "x.png", ctype: str = "image/png"):
    return client.post("/api/v1/images", files={"file": (name, data, ctype)})
