"""Engine vs PyTorch on the same workloads, same thread count, one process: ``python -m bench engine``."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.timing import paired_median_ms
from engine.model import Model
from engine.presets import preset_spec
from engine.optim import SGD
from engine.train import shard_count

CIFAR_NET = {
    "version": 1,
    "input_shape": [3, 32, 32],
    "layers": [
        {"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": 1}, {"type": "relu"},
        {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "softmax"},
    ],
}  # fmt: skip

WORKLOADS = [
    # (name, spec, batch, kind)
    ("tiny-vgg forward, batch 1, all activations", preset_spec("tiny-vgg", (3, 64, 64), 10), 1, "forward"),
    ("tiny-vgg train step, batch 32", preset_spec("tiny-vgg", (3, 64, 64), 10), 32, "train"),
    ("lenet5 train step, batch 64", preset_spec("lenet5", (1, 28, 28), 10), 64, "train"),
    ("cifar-net train step, batch 64", CIFAR_NET, 64, "train"),
]


def _engine_fn(model: Model, x, y, kind: str, executor, threads: int):
    if kind == "forward":
        return lambda: model.forward(x, keep=True)
    opt = SGD(lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)

    shards = shard_count(model, len(y), threads)

    def step():  # what Trainer.train_step does with workers=threads
        res = model.loss_and_grads(x, y, rng=rng, shards=shards, executor=executor)
        opt.step(model.params, res.grads)

    return step


def _torch_fn(twin, x, y, kind: str):
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if kind == "forward":
        layers = list(twin.layers)

        def fwd():
            with torch.no_grad():
                h, outs = xt, []
                for m in layers:  # keep every activation, as the engine does
                    h = m(h)
                    outs.append(h)
            return outs

        return fwd
    body = twin.layers[:-1].train()  # cross-entropy fused with the softmax, as in the engine
    opt = torch.optim.SGD(body.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(body(xt), yt)
        loss.backward()
        opt.step()

    return step


def run(rounds: int = 20, threads: tuple[int, ...] | None = None) -> dict:
    """Every workload at each thread count (default: 1 and all cores), engine and torch on equal threads.

    PyTorch gets ``n`` intra-op threads. The engine runs a batch-1 forward with ``n`` BLAS threads,
    and a train step as ``n`` shards in ``n`` threads with one BLAS thread each (`Trainer(workers=n)`).
    """
    import torch
    from threadpoolctl import threadpool_limits

    from bench.torch_twin import torch_twin

    threads = threads or tuple(sorted({1, os.cpu_count() or 1}))
    rng = np.random.default_rng(0)
    results = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        with ThreadPoolExecutor(n_threads) as executor:
            for name, spec, batch, kind in WORKLOADS:
                model = Model.build(spec, seed=0)
                twin = torch_twin(model)
                x = rng.random((batch, *model.input_shape), dtype=np.float32)
                y = rng.integers(0, model.output_shape[0], batch)
                with threadpool_limits(limits=n_threads if kind == "forward" else 1, user_api="blas"):  # NumPy's BLAS only, never torch's OpenMP
                    e_ms, t_ms = paired_median_ms(_engine_fn(model, x, y, kind, executor, n_threads),
                                                  _torch_fn(twin, x, y, kind), rounds=rounds)
                results.append({"name": name, "threads": n_threads, "engine_ms": round(e_ms, 3), "torch_ms": round(t_ms, 3),
                                "ratio": round(e_ms / t_ms, 3)})
    return {"torch": torch.__version__, "numpy": np.__version__, "cpus": os.cpu_count(), "workloads": results}


def table(report: dict) -> str:
    lines = [
        f"engine vs PyTorch {report['torch']} (numpy {report['numpy']}, {report['cpus']} cores; medians; ratio = engine / torch)",
        f"{'workload':<44} {'threads':>7} {'engine ms':>10} {'torch ms':>10} {'ratio':>7}",
    ]
    for w in report["workloads"]:
        lines.append(f"{w['name']:<44} {w['threads']:>7} {w['engine_ms']:>10.2f} {w['torch_ms']:>10.2f} {w['ratio']:>7.2f}")
    return "\n".join(lines)
