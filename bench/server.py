"""A real server for the benchmarks and the tests that need one: its own process (so its memory can
be read and it can be killed), on 127.0.0.1, started by the same command a person uses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]  # the repository (where `app` is)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The live child processes of ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def still_running(pids: list[int], within_s: float = 30.0) -> list[int]:
    """Those of ``pids`` still running after waiting up to ``within_s`` for them to exit."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
            except FileNotFoundError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


class Server:
    """A real ``python -m app serve`` on 127.0.0.1 with its own data directory; ``env`` adds settings."""

    def __init__(self, data_dir: Path, pretrained_dir: Path, env: dict[str, str] | None = None):
        self.data_dir, self.pretrained_dir = data_dir, pretrained_dir
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.stop()  # closes what a killed predecessor left open
        env = {**os.environ, "CNNVIS_PRETRAINED_DIR": str(self.pretrained_dir), "CNNVIS_MAX_UPLOAD_BYTES": "200000",
               "CNNVIS_WARM_DATASETS": "0", "PYTHONWARNINGS": "ignore", **self.extra_env}
        cmd = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self.log = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115  a pipe could fill and block it
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {(self.data_dir.parent / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("server did not start in 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # graceful: the lifespan saves live sessions
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc:
            self.log.close()

    def kill(self) -> list[int]:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill. Returns the pids of the
        server's child processes (its training workers) at the moment of the kill."""
        children = []
        if self.proc and self.proc.poll() is None:
            children = child_pids(self.proc.pid)
            self.proc.kill()
            self.proc.wait(10)
        return children

    def memory_mb(self, key: str = "VmRSS") -> float:
        """The server's resident memory (``VmRSS``) or its peak so far (``VmHWM``), in MB, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")
