"""The ``cnnvis`` command line: import a dataset, train on it, evaluate the checkpoint."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from engine.checkpoint import load_checkpoint
from engine.data.idx import write_idx


def _mnist_files(folder, n_train=60, n_test=20, seed=0):
    """A tiny MNIST in the official IDX layout: class k is a bright square at column 2k."""
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 10:16, 2 * label + 2 : 2 * label + 6] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))


def test_import_train_evaluate(tmp_path, capsys):
    src, data = tmp_path / "mnist", tmp_path / "data"
    src.mkdir()
    _mnist_files(src)
    main(["datasets", "import", "--format", "mnist", "--path", str(src), "--name", "tiny", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert "imported tiny: 1x28x28, 60 train / 20 test" in out

    main(["datasets", "list", "--data-dir", str(data)])
    assert "tiny" in capsys.readouterr().out

    ckpt_path = tmp_path / "m.npz"
    main(["train", "--preset", "lenet5", "--dataset", "tiny", "--steps", "4", "--batch-size", "8",
          "--out", str(ckpt_path), "--data-dir", str(data)])  # fmt: skip
    captured = capsys.readouterr()
    assert "confusion matrix" in captured.out and "4/4" in captured.err  # the progress bar reached the end
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt.step == 4 and ckpt.meta["dataset"] == "tiny" and ckpt.meta["examples_seen"] == 32
    assert ckpt.classes == [str(i) for i in range(10)]

    main(["evaluate", str(ckpt_path), "--data-dir", str(data)])
    report = capsys.readouterr().out
    assert report.startswith("test accuracy") and "(20 examples)" in report

    before = ckpt_path.read_bytes()
    with pytest.raises(SystemExit):  # an existing checkpoint is kept unless --force says otherwise
        main(["train", "--preset", "lenet5", "--dataset", "tiny", "--steps", "1", "--out", str(ckpt_path), "--data-dir", str(data)])
    assert "--force" in capsys.readouterr().err and ckpt_path.read_bytes() == before
    main(["train", "--preset", "lenet5", "--dataset", "tiny", "--steps", "1", "--batch-size", "8", "--out", str(ckpt_path),
          "--force", "--data-dir", str(data)])  # fmt: skip
    assert load_checkpoint(ckpt_path).step == 1


def test_import_a_folder_zip_reports_counts_and_skipped_files(tmp_path, capsys):
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            for i in range(5):
                buf = io.BytesIO()
                Image.new("RGB", (40, 30), colour).save(buf, "PNG")
                zf.writestr(f"{cls}/{i}.png", buf.getvalue())
        zf.writestr("dog/broken.png", b"\x89PNG\r\n\x1a\n not really")
    main(["datasets", "import", "--format", "folder", "--path", str(archive), "--name", "pets",
          "--size", "16", "16", "--data-dir", str(tmp_path / "data")])  # fmt: skip
    captured = capsys.readouterr()
    assert "imported pets: 3x16x16, 8 train / 2 test" in captured.out
    assert "broken.png" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "missing.npz"], "missing.npz"),
        (["train", "--dataset", "nope", "--steps", "1"], "no dataset named 'nope'"),
        (["datasets", "import", "--format", "mnist", "--path", "/nonexistent", "--name", "x"], "error"),
        (["datasets", "import", "--format", "folder", "--path", ".", "--name", "Bad Name"], "name must be"),
        (["train", "--steps", "0"], "--steps: must be at least 1"),
        (["train", "--steps", "-5"], "--steps: must be at least 1"),
        (["train", "--workers", "0"], "--workers: must be at least 1"),
    ],
)
def test_errors_are_one_line_not_a_traceback(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--data-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def test_train_records_its_history_in_the_model_stores_format(tmp_path, capsys):
    """``--history`` (how the shipped models' companions are made): the steps and each evaluation."""
    src, data = tmp_path / "mnist", tmp_path / "data"
    src.mkdir()
    _mnist_files(src)
    main(["datasets", "import", "--format", "mnist", "--path", str(src), "--name", "tiny", "--data-dir", str(data)])
    out, hist = tmp_path / "m.npz", tmp_path / "m.history.json"
    main(["train", "--preset", "lenet5", "--dataset", "tiny", "--steps", "4", "--batch-size", "8", "--eval-every", "2",
          "--out", str(out), "--history", str(hist), "--data-dir", str(data)])  # fmt: skip
    capsys.readouterr()
    h = json.loads(hist.read_text())
    assert [s["step"] for s in h["steps"]] == [1, 2, 3, 4] and h["events"] == []
    assert {"loss", "accuracy", "learning_rate", "epoch", "time"} <= set(h["steps"][0])
    assert [(e["step"], e["split"]) for e in h["evaluations"]] == [(2, "test"), (4, "test")]
    assert h["evaluations"][-1]["accuracy"] == load_checkpoint(out).meta["test_accuracy"]
    main(["train", "--preset", "lenet5", "--dataset", "tiny", "--steps", "7", "--batch-size", "8", "--history-every", "3",
          "--out", str(out), "--force", "--history", str(hist), "--data-dir", str(data)])  # fmt: skip
    assert [s["step"] for s in json.loads(hist.read_text())["steps"]] == [1, 3, 6, 7]  # the first, every 3rd, the last
