"""Issue 13, items 6-8 over the API: an import's shape from its images, crop or pad, the next batch
with its transforms, and the examples of each confusion cell."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.encoding import decode_tensor
from tests.api.test_datasets import make_zip, post_zip

API = "/api/v1"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def digits_zip(sizes: list[tuple[int, int]], grey: bool = True) -> bytes:
    """Two classes, one image per size per class: grey (L) or RGB noise."""
    rng = np.random.default_rng(0)
    files = {}
    for cls in ("zero", "one"):
        for i, (h, w) in enumerate(sizes):
            shape = (h, w) if grey else (h, w, 3)
            files[f"{cls}/{i}.png"] = png(rng.integers(0, 255, shape, dtype=np.uint8))
    return make_zip(files)


def test_an_upload_without_a_size_takes_it_from_its_images(client):
    r = post_zip(client, digits_zip([(28, 28), (28, 28), (30, 20)]), name="mnistish")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["input_shape"] == [1, 28, 28]
    assert body["chosen"]["channels"] == 1 and (body["chosen"]["height"], body["chosen"]["width"]) == (28, 28)
    assert "grey" in body["chosen"]["why"] and "most common" in body["chosen"]["why"]
    # One colour image makes it RGB; a large size is scaled down to the cap, the aspect ratio kept.
    colour = post_zip(client, digits_zip([(300, 600), (300, 600)], grey=False), name="big")
    assert colour.status_code == 201, colour.text
    assert colour.json()["input_shape"] == [3, 128, 256] and "scaled" in colour.json()["chosen"]["why"]
    # Explicit fields still override, alone or together.
    given = post_zip(client, digits_zip([(28, 28), (28, 28)]), name="given", channels="3", height="16")
    assert given.json()["input_shape"] == [3, 16, 16]
    assert post_zip(client, digits_zip([(28, 28)] * 2), name="all", channels="1", height="12", width="20").json()["chosen"] == {
        "channels": 1, "height": 12, "width": 20, "why": "as given"}


def test_fit_pad_and_crop_against_numpy(client):
    """A 12x36 grey image into a 1x28x28 model: crop keeps its centre, pad letterboxes it on black."""
    spec = {"input_shape": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}
    mid = client.post(f"{API}/models", json={"spec": spec, "dataset": "digits"}).json()["id"]
    img = np.tile(np.arange(36, dtype=np.uint8) * 7, (12, 1))  # a horizontal ramp
    image_id = client.post(f"{API}/images", files={"file": ("r.png", png(img), "image/png")}).json()["id"]

    def seen(fit: str | None) -> np.ndarray:
        body = {"image_id": image_id, **({"fit": fit} if fit else {})}
        r = client.post(f"{API}/models/{mid}/forward?layers=", json=body)
        assert r.status_code == 200, r.text
        return decode_tensor(r.json()["input"])[0]

    crop, pad = seen("crop"), seen("pad")
    assert np.array_equal(seen(None), crop)
    ref = Image.fromarray(img)
    cover = np.asarray(ref.resize((84, 28), Image.Resampling.BILINEAR), np.float32)[:, 28:56] / 255
    assert np.allclose(crop, cover, atol=1e-6)
    inside = np.asarray(ref.resize((28, 9), Image.Resampling.BILINEAR), np.float32) / 255  # 12*28/36 = 9.33 -> 9
    want = np.zeros((28, 28), np.float32)
    want[9:18] = inside  # (28 - 9) // 2 = 9 rows of black above
    assert np.allclose(pad, want, atol=1e-6)
    assert client.post(f"{API}/models/{mid}/forward", json={"image_id": image_id, "fit": "stretch"}).status_code == 422


def test_the_preview_is_the_batch_the_next_step_trains_on(client, small_model):
    mid = small_model["id"]
    client.patch(f"{API}/models/{mid}", json={"training": {"batch_size": 4, "augment": True}})
    client.post(f"{API}/models/{mid}/train", json={"steps": 1})
    r = client.get(f"{API}/models/{mid}/train/batch?count=4")
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["step"] == 1 and preview["augment"] is True and len(preview["indices"]) == 4
    names = {t["name"] for ts in preview["transforms"] for t in ts}
    assert names and names <= {"flip", "rotate", "shift", "brightness", "contrast", "noise"}
    rotate = next(t for ts in preview["transforms"] for t in ts if t["name"] == "rotate")
    assert abs(rotate["degrees"]) <= 10
    # The step runs in a worker process: the batch it trained on shows in its loss, that of the weights before it.
    rec = client.app.state.cnnvis.models.get(mid)
    x, y = rec.trainer.next_batch()
    want = rec.model.loss_and_grads(x, y, loss=rec.hp.loss, train=True, rng=np.random.default_rng(0)).loss  # no dropout
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 1})
    assert r.status_code == 200 and np.isclose(r.json()["loss"][0], want, rtol=1e-5)
    assert np.allclose(decode_tensor(preview["images"]), x, atol=1e-6) and preview["labels"] == y.tolist()
    after = client.get(f"{API}/models/{mid}/train/batch?count=4").json()
    assert after["step"] == 2 and after["indices"] != preview["indices"]
    client.patch(f"{API}/models/{mid}", json={"training": {"augment": False}})
    plain = client.get(f"{API}/models/{mid}/train/batch?count=4").json()
    assert plain["transforms"] == [[], [], [], []] and plain["augment"] is False


def test_each_confusion_cell_lists_its_examples(client, small_model):
    mid = small_model["id"]
    ev = client.post(f"{API}/models/{mid}/evaluate", json={"split": "test"}).json()
    cells, matrix = ev["cell_examples"], ev["confusion_matrix"]
    assert len(cells) == len(matrix) == 10
    seen = []
    for t, row in enumerate(cells):
        for p, idx in enumerate(row):
            assert len(idx) == min(matrix[t][p], 24) and idx == sorted(idx)
            seen += idx
            for i in idx:
                r = client.post(f"{API}/models/{mid}/forward?layers=", json={"sample": {"split": "test", "index": i}}).json()
                assert r["label"] == t and r["prediction"]["index"] == p
    assert sorted(seen) == list(range(32))
