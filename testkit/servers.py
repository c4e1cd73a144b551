"""Real backend servers for tests: redis-server, moto's S3 server and nginx as subprocesses.

Each runs on a free loopback port, answers before the fixture hands it out, and is stopped
by its owner (a session fixture). MotoServer can be stopped and restarted on the same port
to stage an outage; moto keeps its state in memory, so a restart forgets every bucket.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.s3 import S3ObjectStore

REDIS_SERVER = Path("/usr/bin/redis-server")
NGINX = Path("/usr/sbin/nginx")

S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Process:
    """A server subprocess whose output goes to a log file (a pipe could fill and block it)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str], ready: Callable[[], bool], timeout: float = 20.0) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self._name} exited with {self._proc.returncode}: {self._log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self._name} did not answer within {timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]

    def discard(self) -> None:
        """Stop for good and remove the log file."""
        self.stop()
        self._log.unlink(missing_ok=True)

    def stop(self) -> None:
        """Terminate the process and wait for it; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RedisServer(_Process):
    """``redis-server`` without persistence on a free port."""

    def __init__(self, binary: Path = REDIS_SERVER) -> None:
        super().__init__("redis-server")
        self._binary = binary
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [str(self._binary), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]
        self._spawn(argv, self._pong)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class MotoServer(_Process):
    """moto's standalone S3-compatible server on a free port (``python -m moto.server``)."""

    def __init__(self) -> None:
        super().__init__("moto-server")
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        """``host:port``, as S3ObjectStore wants it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart after stop()) on the same port; returns once it answers."""
        if self.running:
            return
        argv = [sys.executable, "-m", "moto.server", "-p", str(self.port), "-H", "127.0.0.1"]
        self._spawn(argv, self._answers)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the server is up
        except OSError:
            return False


class NginxProxy(_Process):
    """Debian's nginx as an ordinary round-robin reverse proxy in front of ``upstreams``
    (``host:port`` each), WebSockets passed through; its files live in ``directory``."""

    def __init__(self, upstreams: list[str], directory: Path, binary: Path = NGINX) -> None:
        super().__init__("nginx")
        self._binary = binary
        self._directory = directory
        self._upstreams = upstreams
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        d = self._directory
        servers = "\n".join(f"    server {u} max_fails=1 fail_timeout=10s;" for u in self._upstreams)
        temps = "\n".join(f"  {kind}_temp_path {d}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log {d}/access.log;
{temps}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream takan {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{self.port};
    client_max_body_size 20m;
    location / {{
      proxy_pass http://takan;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""

    def start(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        conf = self._directory / "nginx.conf"
        conf.write_text(self.config())
        self._spawn([str(self._binary), "-c", str(conf), "-p", str(self._directory), "-e", str(self._directory / "error.log")], self._listens)

    def _listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


def s3_store(endpoint: str, bucket: str | None = None, **kwargs: Any) -> S3ObjectStore:
    """An S3ObjectStore on ``endpoint`` with test credentials and a fresh bucket by default."""
    return S3ObjectStore(
        endpoint,
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
        bucket or f"takan-test-{uuid.uuid4().hex[:16]}",
        region=S3_REGION,
        **kwargs,
    )
