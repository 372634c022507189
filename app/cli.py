"""``cnnvis``: serve the app, train and evaluate models, import and download datasets.

    cnnvis [serve] [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--ray auto|ADDRESS]
    cnnvis train --preset lenet5 --dataset digits --steps 2000 --lr 0.05 [--out model.npz]
    cnnvis evaluate CHECKPOINT --dataset digits
    cnnvis export MODEL_ID|CHECKPOINT --format onnx [-o PATH]
    cnnvis datasets import --format mnist|fashion-mnist|cifar10|folder --path PATH --name NAME
    cnnvis datasets download mnist|fashion-mnist|cifar10
    cnnvis datasets list
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DATA_DIR_HELP = "data directory (default: $CNNVIS_DATA_DIR or ./data)"


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("CNNVIS_DATA_DIR") or "./data")


def _datasets(args: argparse.Namespace):
    from app.config import Settings
    from app.stores import DatasetStore

    return DatasetStore(Settings(data_dir=_data_dir(args)))


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _fail(message: str) -> None:
    print(f"cnnvis: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ProgressBar:
    """A one-line progress bar on stderr with the latest loss and accuracy (no dependency)."""

    def __init__(self, total: int, width: int = 28):
        self.total, self.width, self.t0 = total, width, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def update(self, done: int, loss: float, acc: float) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last_print < (0.1 if self.tty else 5.0):
            return
        self.last_print = now
        filled = int(self.width * done / self.total)
        rate = done / max(now - self.t0, 1e-9)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} loss {loss:.4f} acc {acc:.3f} {rate:.1f} steps/s"
        print(("\r" if self.tty else "") + line, end="" if self.tty and done < self.total else "\n", file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.config import get_settings
    from app.security import host_allowlist, origin_keys

    os.environ["CNNVIS_DATA_DIR"] = str(_data_dir(args))
    if args.ray:
        os.environ["CNNVIS_RAY"] = args.ray
    if args.workspaces:
        os.environ["CNNVIS_WORKSPACES"] = "1"
    settings = get_settings()
    if settings.ray:
        from app.workers.ray_pool import RayMissing, import_ray

        try:
            import_ray()  # a missing extra fails here in one line, not inside uvicorn's startup
        except RayMissing as e:
            _fail(str(e))
    origin_keys(settings.allowed_origins)  # a bad setting fails here in one line, not inside uvicorn
    host_allowlist(settings.allowed_hosts)
    os.environ["CNNVIS_HOST"] = args.host  # the app accepts its bound address as a Host
    where = f"; live training on Ray ({settings.ray})" if settings.ray else ""
    print(f"cnn-visualizer on http://{args.host}:{args.port}  (data: {os.environ['CNNVIS_DATA_DIR']}{where})", file=sys.stderr)
    uvicorn.run("app.main:app", host=args.host, port=args.port, workers=1, log_level=args.log_level)


def _print_evaluation(ev, classes) -> None:
    print(f"{ev.split} accuracy {ev.accuracy:.4f}  loss {ev.loss:.4f}  ({sum(map(sum, ev.confusion_matrix))} examples)")
    width = max(5, max(len(c) for c in classes) + 1)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * width + "".join(f"{c[:6]:>7}" for c in classes))
    for name, row in zip(classes, ev.confusion_matrix):
        print(f"{name:<{width}}" + "".join(f"{v:>7}" for v in row))


def cmd_train(args: argparse.Namespace) -> None:
    import json

    from engine.checkpoint import save_checkpoint
    from engine.model import Model
    from engine.presets import PRESETS, preset_spec
    from engine.specs import SpecError
    from engine.train import Hyperparameters, Trainer

    ds = _datasets(args).get(args.dataset)
    out = Path(args.out or f"{args.preset or 'model'}-{ds.name}.npz")
    if out.exists() and not args.force:
        _fail(f"{out} exists; pass --force to overwrite it or --out to choose another file")
    try:
        if args.spec:
            try:
                spec = json.loads(Path(args.spec).read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{args.spec} is not valid JSON: {e}") from None
        else:
            spec = preset_spec(args.preset, ds.input_shape, ds.num_classes)
        model = Model.build(spec, seed=args.seed)
        lr = args.lr if args.lr is not None else (0.01 if args.spec else PRESETS[args.preset].learning_rate)
        hp = Hyperparameters(batch_size=args.batch_size, learning_rate=lr, optimizer=args.optimizer,
                             momentum=args.momentum, weight_decay=args.weight_decay, loss=args.loss, augment=args.augment)
        trainer = Trainer(model, ds, hp, seed=args.seed, workers=args.workers)
    except (SpecError, ValueError, OSError) as e:
        _fail(str(e))
    print(f"training {args.spec or args.preset} ({model.num_parameters:,} weights) on {ds.name}: "
          f"{len(ds.y_train)} train / {len(ds.y_test)} test, {args.steps} steps of {args.batch_size}", file=sys.stderr)
    bar = ProgressBar(args.steps)
    history: dict[str, list] = {"steps": [], "evaluations": [], "events": []}  # the model store's history.json format

    def evaluation(ev) -> dict:
        return {"step": ev.step, "split": ev.split, "loss": ev.loss, "accuracy": ev.accuracy,
                "per_class_accuracy": ev.per_class_accuracy, "time": time.time()}

    def report(rec) -> None:
        bar.update(rec.step, rec.loss, rec.accuracy)
        if rec.step == 1 or rec.step % args.history_every == 0 or rec.step == args.steps:
            history["steps"].append({"step": rec.step, "loss": rec.loss, "accuracy": rec.accuracy,
                                     "learning_rate": rec.learning_rate, "epoch": rec.epoch, "time": time.time()})
        if args.eval_every and rec.step % args.eval_every == 0 and rec.step < args.steps:
            ev = trainer.evaluate()
            history["evaluations"].append(evaluation(ev))
            print(f"\nstep {rec.step}: test accuracy {ev.accuracy:.4f}", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        trainer.train(args.steps, report)
    finally:
        trainer.close()
    seconds = time.perf_counter() - t0
    ev = trainer.evaluate()
    _print_evaluation(ev, ds.classes)
    print(f"trained {args.steps} steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s)")
    meta = {"name": args.name or f"{args.preset or 'model'} on {ds.name}", "dataset": ds.name, "seed": args.seed,
            "hyperparameters": hp.to_dict(), "examples_seen": trainer.examples_seen, "epoch": trainer.epoch,
            "test_accuracy": ev.accuracy}
    save_checkpoint(out, model, classes=list(ds.classes), step=trainer.step, meta=meta)
    print(f"saved {out}")
    if args.history:
        from engine.jsonio import write_json

        history["evaluations"].append(evaluation(ev))
        write_json(args.history, history)
        print(f"saved {args.history}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from engine.checkpoint import CheckpointError, load_checkpoint
    from engine.train import evaluate_model

    try:
        ckpt = load_checkpoint(Path(args.checkpoint))
    except (CheckpointError, OSError) as e:
        _fail(f"{args.checkpoint}: {e}")
    name = args.dataset or ckpt.meta.get("dataset")
    if not name:
        _fail("the checkpoint names no dataset; pass --dataset")
    ds = _datasets(args).get(name)
    if tuple(ds.input_shape) != tuple(ckpt.model.input_shape) or ds.num_classes != ckpt.model.output_shape[0]:
        _fail(f"dataset {name} ({ds.input_shape}, {ds.num_classes} classes) does not fit the model "
              f"({ckpt.model.input_shape}, {ckpt.model.output_shape[0]} outputs)")
    _print_evaluation(evaluate_model(ckpt.model, ds, split=args.split, step=ckpt.step), ds.classes)


def cmd_export(args: argparse.Namespace) -> None:
    """A model of the data directory (by id; shipped ones too) or a ``.npz`` checkpoint file, as ONNX."""
    from app.config import Settings
    from app.stores.models import ID_RE, record_from_checkpoint
    from engine.checkpoint import CheckpointError
    from engine.export_onnx import ExportError, OnnxMissing, onnx_bytes
    from engine.fileio import atomic_write

    settings = Settings(data_dir=_data_dir(args))
    given = Path(args.model)
    if given.suffix == ".npz":
        if not given.is_file():
            _fail(f"{args.model}: no such checkpoint file")
        path, model_id = given, given.stem
    elif ID_RE.match(args.model):
        model_id = args.model  # looked up as the server does: a shipped model's id wins over a saved one's
        path = next((p for p in (settings.pretrained_dir / f"{model_id}.npz", settings.models_dir / model_id / "checkpoint.npz")
                     if p.is_file()), None)
        if path is None:
            _fail(f"no model with id {model_id!r} in {settings.models_dir} or the shipped models, and no such .npz file")
    else:
        _fail(f"{args.model!r} is neither a model id nor a .npz checkpoint file")
    out = Path(args.out or f"{model_id}.{args.format}")
    if out.exists() and not args.force:
        _fail(f"{out} exists; pass --force to overwrite it or -o to choose another file")
    try:
        rec = record_from_checkpoint(model_id, path, read_only=True)
        data = onnx_bytes(rec.model, classes=rec.classes, model_id=rec.id, name=rec.name)
    except (CheckpointError, ExportError, OnnxMissing) as e:
        _fail(f"{args.model}: {e}")
    atomic_write(out, data)
    print(f"saved {out} ({len(data):,} bytes; input 'input' (batch, {', '.join(map(str, rec.model.input_shape))}), "
          f"output 'output' (batch, {', '.join(map(str, rec.model.output_shape))}))")


def cmd_datasets(args: argparse.Namespace) -> None:
    store = _datasets(args)
    if args.action == "list":
        for name in store.names():
            s = store.summary(name)
            sizes = f"{s['sizes']['train']} train / {s['sizes']['test']} test" if s.get("sizes") else "generated on first use"
            print(f"{name:<20} {'x'.join(map(str, s['input_shape'])):<10} {s['num_classes']:>3} classes  {sizes}")
        return
    if args.action == "download":
        from engine.data.download import download_dataset

        path = download_dataset(args.source, _data_dir(args) / "downloads", progress=_download_progress)
        print(f"\ndownloaded to {path}; import it with: cnnvis datasets import --format {args.source} --path {path} --name {args.source}")
        return
    ds, report = store.import_files(args.format, args.path, args.name, input_shape=(args.channels, *args.size),
                                    test_fraction=args.test_fraction, seed=args.seed)
    for rel, reason in report.skipped if report else []:
        print(f"  skipped {rel}: {reason}", file=sys.stderr)
    counts = ds.counts()
    print(f"imported {args.name}: {'x'.join(map(str, ds.input_shape))}, {len(ds.y_train)} train / {len(ds.y_test)} test")
    for cls, tr, te in zip(ds.classes, counts["train"], counts["test"]):
        print(f"  {cls:<20} {tr:>6} train {te:>6} test")


def _download_progress(done: int, total: int) -> None:
    print(f"\r{done / 2**20:.1f} / {total / 2**20:.1f} MB" if total else f"\r{done / 2**20:.1f} MB", end="", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    from engine.presets import PRESETS

    p = argparse.ArgumentParser(prog="cnnvis", description="See inside a CNN while it works and while it learns.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the web app")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--data-dir", help=DATA_DIR_HELP)
    s.add_argument("--log-level", default="info")
    s.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run live trainings as Ray actors: 'auto' starts a local Ray, ADDRESS (HOST:6379) joins a "
                        "cluster (default: $CNNVIS_RAY, else local worker processes; needs the ray extra)")
    s.add_argument("--workspaces", action="store_true",
                   help="a private workspace per browser (for a class on a shared server; CNNVIS_WORKSPACES=1)")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--preset", choices=sorted(PRESETS), default="tiny-vgg")
    g.add_argument("--spec", help="a JSON model spec file instead of a preset")
    t.add_argument("--dataset", default="shapes", help="built-in (shapes, digits) or an imported dataset's name")
    t.add_argument("--steps", type=_positive, default=1000, help="mini-batches to train on (one step = one batch)")
    t.add_argument("--batch-size", type=_positive, default=32)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's, 0.01 for a spec)")
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--loss", choices=["cross_entropy", "mse"], default="cross_entropy")
    t.add_argument("--augment", action="store_true", help="random flips, shifts, rotations, colour jitter, noise")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=_non_negative, default=0, help="also evaluate on the test split every N steps")
    t.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                   help="threads that share each batch (default: one per core; results depend on this number)")
    t.add_argument("--name", help="a display name stored in the checkpoint")
    t.add_argument("--out", help="checkpoint path (default: PRESET-DATASET.npz)")
    t.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    t.add_argument("--history", help="also write the steps and evaluations as JSON (the server's history.json format)")
    t.add_argument("--history-every", type=_positive, default=1, metavar="N",
                   help="--history: record the first, every Nth and the last step (the page draws at most 1500 points)")
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy and confusion matrix of a checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--dataset", help="dataset name (default: the one stored in the checkpoint)")
    e.add_argument("--split", choices=["train", "test"], default="test")
    e.add_argument("--data-dir", help=DATA_DIR_HELP)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write a model as an ONNX file (needs the onnx extra)")
    x.add_argument("model", metavar="MODEL", help="a model id (GET /api/v1/models, shipped ones too) or a .npz checkpoint file")
    x.add_argument("--format", choices=["onnx"], default="onnx")
    x.add_argument("-o", "--out", help="output path (default: MODEL_ID.onnx)")
    x.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    x.add_argument("--data-dir", help=DATA_DIR_HELP)
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("datasets", help="list, import or download datasets")
    dsub = d.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser("list", help="datasets the server can train on")
    dl.add_argument("--data-dir", help=DATA_DIR_HELP)
    di = dsub.add_parser("import", help="add a dataset from files you have")
    di.add_argument("--format", required=True, choices=["mnist", "fashion-mnist", "cifar10", "folder"])
    di.add_argument("--path", required=True, help="directory (or .zip / .tar.gz) holding the files")
    di.add_argument("--name", required=True)
    di.add_argument("--size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"), help="folder images: input size")
    di.add_argument("--channels", type=int, choices=[1, 3], default=3, help="folder images: 1 grey or 3 RGB")
    di.add_argument("--test-fraction", type=float, default=0.2, help="folder without train/ and test/: test share")
    di.add_argument("--seed", type=int, default=0)
    di.add_argument("--data-dir", help=DATA_DIR_HELP)
    dd = dsub.add_parser("download", help="download a public dataset from its official location (needs a network)")
    dd.add_argument("source", choices=["mnist", "fashion-mnist", "cifar10"])
    dd.add_argument("--data-dir", help=DATA_DIR_HELP)
    d.set_defaults(func=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["serve"]  # `cnnvis` or `python -m app` alone starts the app
    if argv[:1] in (["serve"], ["train"]):
        # The server's requests and training thread, or `train`'s shard threads, share the cores:
        # one BLAS thread each avoids oversubscription (a TinyVGG step was ~50x slower with default
        # threads on a busy 2-core box). Must be set before numpy is imported.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from engine.runtime import keep_freed_memory

        keep_freed_memory()  # training steps reuse freed memory instead of faulting it in again
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as e:  # noqa: BLE001  the CLI reports what went wrong in one line, not a traceback
        from app.errors import AppError

        if isinstance(e, (AppError, ValueError)):
            _fail(str(e))
        raise


if __name__ == "__main__":
    main()
