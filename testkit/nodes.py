"""A ``takan serve`` process of a several-node deployment, for the multinode tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from testkit.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


class Node:
    """One ``takan serve`` process of the deployment, reachable at its own URL."""

    def __init__(self, name: str, root: Path, env: dict[str, str], public_url: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = root / name
        self.env = env
        self.public_url = public_url
        self.log = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, field_keys: Path) -> None:
        self.data_dir.mkdir(parents=True)
        # several nodes share one field-key directory (privacy/fieldcrypto.py: a mounted secret)
        (self.data_dir / "field-keys").symlink_to(field_keys, target_is_directory=True)
        argv = [sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--public-url", self.public_url, "--node-url", self.url,
                "--node-id", self.name, "--ice-loopback", "true"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
