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
certs = $dir/certs.pem
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


KEYS = {"ec": ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"), "rsa": ("-newkey", "rsa:2048")}


def make_tsa_ca(directory: Path, key: str = "ec", intermediate: bool = False) -> Path:
    """A CA (``ca.crt``) and a TSA (``tsa.crt``, ``tsa.key``) in ``directory``; returns it.

    ``key`` is ``ec`` (P-256) or ``rsa`` (2048, PKCS#1 v1.5 signatures) for every key made;
    with ``intermediate`` the root issues ``sub.crt``, which issues the TSA's certificate,
    and the TSA puts both in its tokens (``certs.pem``), so a verifier must walk the chain.
    """
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-x509", *KEYS[key], "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=Takan Test Root CA", "-days", "2", *ca_ext)
    issuer = "ca"
    if intermediate:
        run("req", *KEYS[key], "-nodes", "-keyout", "sub.key", "-out", "sub.csr", "-subj", "/CN=Takan Test Issuing CA")
        (directory / "sub.cnf").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        run("x509", "-req", "-in", "sub.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "sub.crt", "-days", "2", "-extfile", "sub.cnf")
        issuer = "sub"
    run("req", *KEYS[key], "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Takan Test TSA")
    (directory / "ext.cnf").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n")
    run("x509", "-req", "-in", "tsa.csr", "-CA", f"{issuer}.crt", "-CAkey", f"{issuer}.key", "-CAcreateserial", "-out", "tsa.crt", "-days", "2", "-extfile", "ext.cnf")
    chain = [directory / "tsa.crt"] + ([directory / "sub.crt"] if intermediate else [])
    (directory / "certs.pem").write_bytes(b"".join(p.read_bytes() for p in chain))
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(CONFIG.format(dir=directory))
    return directory


def _reply_command(directory: Path, query: Path, out: Path) -> list[str]:
    return ["openssl", "ts", "-reply", "-config", str(directory / "tsa.cnf"), "-queryfile", str(query), "-out", str(out)]


def stamp(directory: Path, digest: bytes) -> bytes:
    """The TSA's TimeStampResp over the SHA-256 ``digest``, without a server (certReq set)."""
    from evidence.tsa import timestamp_query

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "q.tsq").write_bytes(timestamp_query(digest))
        subprocess.run(_reply_command(directory, Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"), check=True, capture_output=True)
        return (Path(tmp) / "r.tsr").read_bytes()


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
                    *_reply_command(self.directory, Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
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
