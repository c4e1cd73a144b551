"""A real RFC 3161 TSA on loopback for tests: ``openssl ts -reply`` behind a tiny HTTP server.

:func:`make_tsa_ca` makes a throwaway CA and a TSA certificate (extendedKeyUsage critical
timeStamping) with the openssl CLI; :class:`TsaServer` answers ``POST /`` with the reply
openssl computes for the posted query, and can be stopped and started to stage an outage.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from aiohttp import web

from testkit.server import free_port

CONFIG = """
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def make_tsa_ca(directory: Path) -> Path:
    """A CA (``ca.crt``) and a TSA (``tsa.crt``, ``tsa.key``) in ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=Takan Test Root CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Takan Test TSA")
    (directory / "ext.cnf").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n")
    run("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tsa.crt", "-days", "2", "-extfile", "ext.cnf")
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(CONFIG.format(dir=directory))
    return directory


class TsaServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.requests = 0
        self._runner: Optional[web.AppRunner] = None
        self._lock = asyncio.Lock()

    async def _reply(self, request: web.Request) -> web.Response:
        query = await request.read()
        async with self._lock:  # openssl ts -reply updates the serial file
            self.requests += 1
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "q.tsq").write_bytes(query)
                process = await asyncio.create_subprocess_exec(
                    "openssl", "ts", "-reply", "-config", str(self.directory / "tsa.cnf"), "-queryfile", str(Path(tmp) / "q.tsq"),
                    "-out", str(Path(tmp) / "r.tsr"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )
                _, err = await process.communicate()
                if process.returncode != 0:
                    return web.Response(status=500, text=err.decode())
                body = (Path(tmp) / "r.tsr").read_bytes()
        return web.Response(body=body, content_type="application/timestamp-reply")

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/", self._reply)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
