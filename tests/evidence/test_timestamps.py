"""RFC 3161 timestamps from a real TSA on loopback (openssl ts -reply), checked by openssl ts -verify and by Takan."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from evidence.journal import Journal
from evidence.manifest import prefix_of
from evidence.signing import SigningKeys
from evidence.timestamper import Timestamper
from evidence.tsa import TsaClient
from evidence.tsa_token import TsaTrust, token_imprint
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore
from testkit.tsa import TsaServer, make_tsa_ca
from testkit.server import create_inspection, free_port, running_server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

INSPECTION = "20261201130000-00112233aabbccdd"


@pytest.fixture(scope="module")
def tsa_dir(tmp_path_factory) -> Path:
    return make_tsa_ca(tmp_path_factory.mktemp("tsa"))


def openssl_ts_verify(data: Path, token: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(token), "-CAfile", str(ca)], capture_output=True, text=True)


async def test_tsa_down_then_up_never_blocks_and_the_token_verifies(tmp_path, tsa_dir) -> None:
    tsa = TsaServer(tsa_dir)  # not started: the TSA is down
    dead = f"http://127.0.0.1:{free_port()}/"  # the first URL never answers: tried in order
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    stamper = Timestamper(store, TsaClient([dead, tsa.url], timeout_s=2), retry_s=0.2, max_retry_s=0.5)
    journal = Journal(store, keys, tmp_path / "journal", timestamper=stamper)
    await journal.start()
    await journal.record(INSPECTION, "note", "inspector", {"text": "a"})
    sha = await asyncio.wait_for(journal.seal(INSPECTION, {"id": INSPECTION}, final_event=("session.ended", "inspector", {})), 5)
    prefix = tmp_path / "objects" / prefix_of(INSPECTION)
    report = await verify_inspection(store, INSPECTION)
    assert report.ok and report.timestamp == "pending", report.problems
    await asyncio.sleep(1)
    assert not (prefix / "manifest.tsr").exists() and stamper.pending == {INSPECTION: sha}
    await tsa.start()  # the TSA is back: the token arrives without anyone asking
    try:
        assert await stamper.idle(20), stamper.last_error
        token = prefix / "manifest.tsr"
        assert token_imprint(token.read_bytes()).imprint == hashlib.sha256((prefix / "manifest.json").read_bytes()).digest()
        checked = openssl_ts_verify(prefix / "manifest.json", token, tsa_dir / "ca.crt")
        assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stdout + checked.stderr
        report = await verify_inspection(store, INSPECTION)
        assert report.ok and report.timestamp and report.timestamp.endswith("Z"), report.problems
        assert report.timestamp_trust == "untrusted" and "no TSA CA is configured" in str(report.timestamp_note)
        report = await verify_inspection(store, INSPECTION, tsa_trust=TsaTrust.from_pem_file(tsa_dir / "ca.crt"))
        assert report.ok and report.timestamp_trust == "trusted" and report.timestamp_ca == "CN=Takan Test Root CA", report.problems

        # takan verify says which, and fails a TSA that does not chain to the CA it is given
        def takan_verify(*flags: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "takan", "verify", "--quiet", "--data-dir", str(tmp_path), *flags, INSPECTION],
                                  capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")})

        trusted = takan_verify("--tsa-ca", str(tsa_dir / "ca.crt"))
        assert trusted.returncode == 0 and "verified against the configured TSA CA (CN=Takan Test Root CA)" in trusted.stdout, trusted.stdout + trusted.stderr
        untrusted = takan_verify()
        assert untrusted.returncode == 0 and "covers the manifest, but the TSA is not trusted" in untrusted.stdout, untrusted.stdout
        other = make_tsa_ca(tmp_path / "other-ca")
        refused = takan_verify("--tsa-ca", str(other / "ca.crt"))
        assert refused.returncode == 1 and "FAILED" in refused.stdout and "manifest.tsr: the TSA certificate CN=Takan Test TSA does not chain" in refused.stdout, refused.stdout

        # a re-seal keeps the old token as evidence covered by the new seal, and stamps anew
        await journal.seal(INSPECTION, {"id": INSPECTION}, {"outcome": "pass"}, "r1", ("verdict", "system", {}))
        assert await stamper.idle(20)
        manifest = (prefix / "manifest.json").read_text()
        assert f"timestamps/manifest-{sha[:16]}.tsr" in manifest
        report = await verify_inspection(store, INSPECTION)
        assert report.ok, report.problems

        # a token over another manifest is named
        shutil.copy(prefix / "timestamps" / f"manifest-{sha[:16]}.tsr", token)
        report = await verify_inspection(store, INSPECTION, tsa_trust=TsaTrust.from_pem_file(tsa_dir / "ca.crt"))
        assert not report.ok and report.first_problem.where == "manifest.tsr" and report.timestamp_trust == "failed"
        assert "over another manifest" in report.first_problem.message
    finally:
        await journal.close()
        await tsa.stop()
        await store.close()


async def test_live_log_heads_are_timestamped(tmp_path, tsa_dir) -> None:
    tsa = TsaServer(tsa_dir)
    await tsa.start()
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    stamper = Timestamper(store, TsaClient([tsa.url]), head_interval_s=0.3)
    journal = Journal(store, keys, tmp_path / "journal", timestamper=stamper)
    await journal.start()
    try:
        for n in range(3):
            await journal.record(INSPECTION, "note", "inspector", {"n": n})
        await asyncio.sleep(1.5)
        heads = sorted((tmp_path / "objects" / prefix_of(INSPECTION) / "timestamps").glob("head-*.tsr"))
        assert [p.name for p in heads] == ["head-00000003.tsr"]
        assert token_imprint(heads[0].read_bytes()).imprint.hex() == await journal.head(INSPECTION)
        await journal.seal(INSPECTION, {"id": INSPECTION}, final_event=("session.ended", "inspector", {}))
        assert await stamper.idle(20)
        report = await verify_inspection(store, INSPECTION)
        assert report.ok, report.problems
        assert "timestamps/head-00000003.tsr" in (tmp_path / "objects" / prefix_of(INSPECTION) / "manifest.json").read_text()
    finally:
        await journal.close()
        await tsa.stop()
        await store.close()


async def test_manifest_tsr_is_served_and_pending_until_then(tmp_path, tsa_dir) -> None:
    tsa = TsaServer(tsa_dir)
    async with running_server(tmp_path / "data", tsa_urls=tsa.url, tsa_ca_file=tsa_dir / "ca.crt") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspection_id = created["id"]
        await server.services.sessions.sealer.seal(inspection_id)
        base = f"{server.base_url}/api/v1/inspections/{inspection_id}"
        async with http.get(base + "/manifest.tsr", headers=server.headers()) as r:
            problem = await r.json(content_type=None)
            assert r.status == 404 and "pending" in problem["detail"], problem
        await tsa.start()
        try:
            stamper = server.services.journal.timestamper
            assert stamper is not None and await stamper.idle(30), stamper.last_error
            async with http.get(base + "/manifest.tsr", headers=server.headers()) as r:
                assert r.status == 200 and r.content_type == "application/timestamp-reply"
                (tmp_path / "manifest.tsr").write_bytes(await r.read())
            async with http.get(base + "/manifest", headers=server.headers()) as r:
                (tmp_path / "manifest.json").write_bytes(await r.read())
            checked = openssl_ts_verify(tmp_path / "manifest.json", tmp_path / "manifest.tsr", tsa_dir / "ca.crt")
            assert checked.returncode == 0, checked.stdout + checked.stderr
            async with http.get(base + "/verification", headers=server.headers()) as r:
                report = await r.json()
            assert report["ok"] and report["timestamp"].endswith("Z"), report
            assert report["timestamp_trust"] == "trusted" and report["timestamp_tsa"] == "CN=Takan Test TSA", report
        finally:
            await tsa.stop()


async def test_a_process_killed_between_the_manifest_and_its_timestamp_stamps_it_at_the_restart(tmp_path) -> None:
    """The marker is left before the manifest is written (Timestamper.expect): a kill after the
    new manifest and before the old token was put aside no longer leaves the old token over
    the new manifest for good."""

    class Killed(BaseException):  # SIGKILL at this point: nothing after it runs
        pass

    tsa = TsaServer(make_tsa_ca(tmp_path / "tsa"))
    await tsa.start()
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    stamper = Timestamper(store, TsaClient([tsa.url]), retry_s=0.2, max_retry_s=0.5)
    journal = Journal(store, keys, tmp_path / "journal", timestamper=stamper)
    await journal.start()
    await journal.record("i1", "note", "inspector", {"text": "a"})
    await journal.seal("i1", {"id": "i1"}, final_event=("session.ended", "inspector", {}))
    assert await stamper.idle(20)
    real_delete = store.delete

    async def killed_at_the_old_token(key: str) -> None:
        if key.endswith("manifest.tsr"):
            raise Killed()
        await real_delete(key)

    store.delete = killed_at_the_old_token  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await journal.seal("i1", {"id": "i1"}, final_event=("verdict", "rules", {"outcome": "pass"}))
    store.delete = real_delete  # type: ignore[method-assign]
    await stamper.close()
    again = Timestamper(store, TsaClient([tsa.url]), retry_s=0.2, max_retry_s=0.5)
    restarted = Journal(store, keys, tmp_path / "journal2", timestamper=again)
    await restarted.start()
    assert await again.idle(20)
    report = await verify_inspection(store, "i1")
    assert report.ok, [str(p) for p in report.problems]
    await restarted.close()
    await keys.close()
    await store.close()
    await tsa.stop()
