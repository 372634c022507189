"""Training workers on Ray: the same interface as `app.workers.pool`, each live training a Ray actor.

`RayPool` stands in for `WorkerPool` and `RayWorker` for `WorkerProcess` (``send``, ``attach``,
``alive``, ``stop``, ``kill``, ``pid``; answers delivered as ``("frame", header, arrays)`` and, when the
actor is gone, ``("exit", code)``), so `app.services.live` drives either without knowing which.

- **The same worker.** The actor owns a `train_worker.Worker` whose ``out`` is an in-memory outbox of
  answer frames (the same `frames` bytes as over a pipe: JSON and numbers, no pickle on the way back);
  a thread in the actor takes commands and steps while playing, as ``train_worker.main`` does. The
  server's reader thread fetches the frames with a blocking remote call (``answers``, at most
  ``READ_WAIT_S`` long) and delivers them in order.
- **Jobs too.** `WorkerPool.run_job` works unchanged: an actor runs the same ``job`` command.
- **No shared file system.** A ``load`` or a job names ``dataset_folder``; the server opens that dataset from
  its own data directory, puts its arrays in Ray's object store once (cached by folder and the
  folder's ``dataset.json`` identity, so a re-imported dataset is put again) and the actor trains on
  that copy; the folder name it is given is ``object-store:<id>``, which no node could open. Weights,
  steps and optimizer state come back as answers: the server stays the only writer of the data directory.
- **A node that dies.** The pending ``answers`` call fails with Ray's actor-died error; the reader
  delivers ``("exit", 1)`` and `LiveSession._worker_died` restarts the training from the model's
  current state in a new actor. Actors ask for no CPU (a training beyond the cores shares them, as
  the local pool's processes do, instead of waiting for a free one) and this pool places them: on
  the node that Ray reports alive, has CPUs, and runs the fewest of this pool's trainings per CPU. The
  affinity is strict (Ray's soft one sent actors to the CPU-less head while a node was busy starting
  another); should that node die before the actor starts there, Ray refuses it at once, which arrives
  as an ``exit`` too and the next try goes elsewhere. A node started with ``--num-cpus=0`` (the
  server's) gets no training.

``import ray`` happens only here, only when a `RayPool` is made; without Ray the error says
``pip install "cnn-visualizer[ray]"``. Every node must have the same cnn-visualizer installed.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from app.workers import frames
from app.workers.pool import Deliver, WorkerGone, WorkerPool

log = logging.getLogger("cnnvis")
READ_WAIT_S = 1.0  # the longest one blocking `answers` call waits (then the reader checks it is still wanted)
MAX_OUTBOX = 256  # answer frames an actor holds before its stepping thread waits for the server to fetch them
BLAS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one core per training
EXIT_DIED, EXIT_KILLED = 1, -9  # ("exit", code) for an actor that died under us and one we killed
STORE_PREFIX = "object-store:"
INSTALL = 'pip install "cnn-visualizer[ray]"'


class RayMissing(RuntimeError):
    """Ray was chosen (``--ray`` / ``CNNVIS_RAY``) but is not installed."""


def import_ray():
    """The ``ray`` module, or `RayMissing` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissing(f"--ray / CNNVIS_RAY needs Ray, which is not installed: {INSTALL} "
                         "(or leave the setting out for local worker processes)") from None
    return ray


# ---- inside the actor ------------------------------------------------------------------------
class Outbox:
    """What `Worker.out` writes to: each ``flush`` (one per `frames.write`) ends a frame, kept until fetched."""

    def __init__(self, limit: int = MAX_OUTBOX):
        self.limit = limit
        self._parts: list[bytes] = []
        self._frames: deque[bytes] = deque()
        self._cond = threading.Condition()

    def write(self, part) -> int:
        self._parts.append(bytes(part))  # copied now: the trainer goes on changing its arrays
        return len(self._parts[-1])

    def flush(self) -> None:
        if not self._parts:
            return
        frame, self._parts = b"".join(self._parts), []
        with self._cond:
            self._cond.wait_for(lambda: len(self._frames) < self.limit)  # as a full pipe would block
            self._frames.append(frame)
            self._cond.notify_all()

    def take(self, timeout: float) -> list[bytes]:
        """Every frame waiting, oldest first; waits up to ``timeout`` seconds for the first."""
        with self._cond:
            self._cond.wait_for(lambda: self._frames, timeout)
            out, self._frames = list(self._frames), deque()
            self._cond.notify_all()
        return out


class TrainActor:
    """A `train_worker.Worker` in a Ray actor: ``command`` queues, a thread steps, ``answers`` hands frames back.

    Commands carry a sequence number: a threaded actor may run two calls out of order, the worker may not.
    """

    def __init__(self) -> None:
        from app.workers.train_worker import Worker
        from engine.runtime import keep_freed_memory

        keep_freed_memory()  # as `cnnvis serve` and the worker processes do
        self.outbox = Outbox()
        self.worker = Worker(self.outbox)
        self.commands: queue.Queue = queue.Queue()
        self._held: dict[int, tuple] = {}
        self._next = 0
        self._mutex = threading.Lock()
        threading.Thread(target=self._loop, name="cnnvis-ray-worker", daemon=True).start()

    def info(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def command(self, seq: int, header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: list | None = None) -> None:
        """Queue a command; ``dataset`` is ``[ObjectRef]`` (wrapped, so it is fetched by the stepping thread)."""
        with self._mutex:
            self._held[seq] = (header, arrays, dataset)
            while self._next in self._held:
                self.commands.put(self._held.pop(self._next))
                self._next += 1

    def answers(self, timeout: float) -> list[bytes]:
        return self.outbox.take(timeout)

    def _use_dataset(self, header: dict[str, Any], dataset: list) -> None:
        """The dataset of a ``load`` or a job from the object store, under the name the command gives it."""
        import ray

        key = header["dataset_folder"]
        if key not in self.worker.datasets:
            self.worker.datasets = {key: ray.get(dataset[0])}  # one at a time: an older one is let go

    def _loop(self) -> None:
        """``train_worker.serve`` over the queue instead of stdin."""
        from app.workers.train_worker import serve

        def next_command(block: bool) -> tuple[dict, dict] | None:
            try:
                header, arrays, dataset = self.commands.get(block=block)
            except queue.Empty:
                return None
            if dataset:
                self._use_dataset(header, dataset)
            return header, arrays

        serve(self.worker, next_command)  # returns on "quit": the server kills the actor next


# ---- on the server ---------------------------------------------------------------------------
class RayWorker:
    """One training actor seen from the server, with the interface of `WorkerProcess`."""

    def __init__(self, pool: RayPool, node_id: str | None):
        self.pool, self.ray = pool, pool.ray
        self.node_id = node_id  # where it was asked to run (`info` says where it does)
        options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 4, "max_restarts": 0,
                                   "runtime_env": {"env_vars": BLAS_ENV}}
        if node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        self.actor = pool.actor_class.options(**options).remote()
        self._info_ref = self.actor.info.remote()
        self._info: dict[str, Any] | None = None
        self._deliver: Deliver | None = None
        self._mutex = threading.Lock()
        self._seq = 0
        self._gone = False  # the actor is dead (seen by the reader) or was stopped
        self._closing: int | None = None  # the exit code to report once we stop or kill it ourselves
        self.reader = threading.Thread(target=self._read, name="cnnvis-ray-reader", daemon=True)
        self.reader.start()

    def _where(self, timeout: float = 120.0) -> dict[str, Any]:
        if self._info is None:
            self._info = self.ray.get(self._info_ref, timeout=timeout)
        return self._info

    @property
    def pid(self) -> int:
        """The actor's process id on its node (waits for the actor to start)."""
        return self._where()["pid"]

    def node(self, timeout: float = 120.0) -> str:
        """The id of the Ray node the actor runs on (waits for the actor to start)."""
        return self._where(timeout)["node_id"]

    def attach(self, deliver: Deliver | None) -> None:
        with self._mutex:
            self._deliver = deliver

    def alive(self) -> bool:
        return not self._gone

    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Queue one command in the actor; `WorkerGone` once it is known to be dead."""
        data = None
        if header.get("dataset_folder"):  # a load, or a job on a dataset
            key, ref = self.pool.dataset(header["dataset_folder"])
            header, data = {**header, "dataset_folder": key}, [ref]
        with self._mutex:
            if self._gone:
                raise WorkerGone("the training actor has stopped")
            seq, self._seq = self._seq, self._seq + 1
            self.actor.command.remote(seq, header, dict(arrays or {}), data)  # numbered in the order sent

    def _read(self) -> None:
        ray = self.ray
        from ray.exceptions import ActorUnavailableError, ActorUnschedulableError, GetTimeoutError, RayActorError

        code = EXIT_DIED
        while self._closing is None:
            try:
                batch = ray.get(self.actor.answers.remote(READ_WAIT_S), timeout=READ_WAIT_S + 60)
            except (ActorUnavailableError, GetTimeoutError):
                continue  # unreachable for now (a network blip, a busy node): Ray says when it is dead
            except (RayActorError, ActorUnschedulableError) as e:  # its node died, or died before it started there
                if self._closing is None:
                    log.error("training actor died: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
                break
            except Exception:  # noqa: BLE001  Ray shut down under us (the server is stopping)
                log.exception("training actor unreachable")
                break
            try:
                items = [("frame", *frames.read(io.BytesIO(raw))) for raw in batch]
            except (EOFError, frames.FrameError) as e:
                log.error("training actor sent a bad frame (%s); stopping it", e)
                ray.kill(self.actor, no_restart=True)
                break
            for item in items:
                with self._mutex:
                    deliver = self._deliver
                if deliver is not None:
                    deliver(item)
        with self._mutex:
            self._gone = True
            deliver = self._deliver
            code = code if self._closing is None else self._closing
        if deliver is not None:
            deliver(("exit", code))

    def _end(self, code: int) -> None:
        with self._mutex:
            if self._closing is None:
                self._closing = code
            self._gone = True
        try:
            self.ray.kill(self.actor, no_restart=True)  # the actor holds nothing to save: the server has it all
        except Exception:  # noqa: BLE001  already dead, or Ray is gone
            pass
        if threading.current_thread() is not self.reader:
            self.reader.join(READ_WAIT_S + 10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the actor (the server already has its state: a pause brought it back)."""
        self._end(0)

    def kill(self) -> None:
        self._end(EXIT_KILLED)


class RayPool(WorkerPool):
    """Training actors on a Ray cluster, with the methods of `WorkerPool`.

    ``address``: ``"auto"`` starts a local Ray (``num_cpus`` cores, default all of this machine's);
    anything else is the address of a cluster this machine belongs to, for ``ray.init`` (``HEAD_IP:6379``;
    docs/deploy.md runs the server on the head). If Ray
    is already initialized in this process (tests), that connection is used and left open at shutdown.
    """

    def __init__(self, address: str = "auto", max_idle: int | None = None, num_cpus: int | None = None,
                 object_store_bytes: int | None = None):
        ray = self.ray = import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray reports usage to its makers unless told not to
            common = {"include_dashboard": False, "log_to_driver": True}
            if address == "auto":
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                         object_store_memory=object_store_bytes, **common)
            else:
                ray.init(address=address, **common)
        self.actor_class = ray.remote(TrainActor)
        super().__init__(int(ray.cluster_resources().get("CPU", 1)) if max_idle is None else max_idle)
        self._datasets: dict[str, tuple[tuple, str, Any]] = {}  # folder -> (identity, key, ObjectRef)
        self._data_mutex = threading.Lock()
        self._placing = threading.Lock()

    # ---- datasets --------------------------------------------------------------------------
    def dataset(self, folder: str) -> tuple[str, Any]:
        """``(key, ObjectRef)`` of the dataset in ``folder``, put in the object store on first use."""
        from engine.data.dataset import Dataset, open_dataset

        info = Path(folder) / "dataset.json"
        st = info.stat()
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._data_mutex:
            cached = self._datasets.get(folder)
            if cached is not None and cached[0] == identity:
                return cached[1], cached[2]
            ds = open_dataset(folder)  # memory-mapped; put copies the pixels into the object store once
            plain = Dataset(name=ds.name, classes=ds.classes, description=ds.description,
                            **{k: np.asarray(getattr(ds, k)) for k in ("x_train", "y_train", "x_test", "y_test")})
            ref = self.ray.put(plain)
            key = f"{STORE_PREFIX}{ref.hex()}"
            self._datasets[folder] = (identity, key, ref)
            log.info("dataset %s put in Ray's object store (%.1f MB)", ds.name,
                     sum(getattr(plain, k).nbytes for k in ("x_train", "y_train", "x_test", "y_test")) / 2**20)
            return key, ref

    def datasets(self) -> list[str]:
        """The folders whose datasets are in the object store."""
        with self._data_mutex:
            return sorted(self._datasets)

    # ---- placement -------------------------------------------------------------------------
    def _place(self) -> str | None:
        """The live node with CPUs that runs the fewest of our trainings per CPU (None: let Ray choose)."""
        nodes = {n["NodeID"]: n["Resources"].get("CPU", 0) for n in self.ray.nodes()
                 if n.get("Alive") and n["Resources"].get("CPU", 0) > 0}
        if not nodes:
            return None
        with self._mutex:
            load = Counter(w.node_id for w in self._all if w.alive())
        return min(nodes, key=lambda n: (load[n] / nodes[n], load[n], n))

    def placement(self) -> dict[str, int]:
        """``{node id: trainings}`` of the live actors, where they actually run (waits for them to start)."""
        with self._mutex:
            workers = [w for w in self._all if w.alive()]
        return dict(Counter(w.node() for w in workers))

    # ---- what differs from WorkerPool ------------------------------------------------------
    def _start(self, deliver: Deliver) -> RayWorker:
        with self._placing:  # sessions start at once: each placement must count the one before
            return super()._start(deliver)

    def _spawn(self) -> RayWorker:
        return RayWorker(self, self._place())

    def shutdown(self) -> None:
        super().shutdown()
        with self._data_mutex:
            self._datasets.clear()
        if self._owns_ray:
            self.ray.shutdown()
