"""A session's evidence through the contract's evidence endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from testkit.media import encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data") as srv:
        yield srv


async def test_ended_session_is_sealed_and_served(server, tmp_path) -> None:
    frames = encode_vp8(320, 240, frames=20)
    async with aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            await inspector.join_and_publish(frames)
            await applicant.join_and_publish(frames)
            assert await wait_for(lambda: inspector.peer.video_sink.frames > 10, 15)
            still = await inspector.call("capture", {"checkpoint": "storefront"})
            assert still["ok"] and (still["width"], still["height"]) == (320, 240), still
            assert still["key"] == "stills/storefront/1.jpg"
            await asyncio.sleep(5)  # at least one closed 4 s segment mid-session
            assert (await inspector.call("end"))["ok"]
        finally:
            await inspector.close()
            await applicant.close()

        await server.services.decisions.idle()
        base = f"{server.base_url}/api/v1/inspections/{created['id']}"
        async with http.get(base, headers=server.headers()) as r:
            record = await r.json()
        async with http.get(base + "/manifest", headers=server.headers()) as r:
            assert r.status == 200
            manifest_bytes = await r.read()
        assert record["manifest"]["sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
        assert record["manifest"]["url"] == base + "/manifest"
        async with http.get(base + "/manifest.sig", headers=server.headers()) as r:
            signature = await r.read()
        assert len(signature) == 64
        async with http.get(server.base_url + "/api/v1/keys") as r:
            keys = (await r.json())["keys"]
        manifest = json.loads(manifest_bytes)
        kid = manifest["signature"]["key_id"]
        key = next(k for k in keys if k["kid"] == kid)
        assert key["jwk"]["crv"] == "Ed25519"
        serialization.load_pem_public_key(key["pem"].encode()).verify(signature, manifest_bytes)
        # SM2 beside Ed25519: openssl verifies the served DER signature with the served key
        sm2 = next(s for s in manifest["signatures"] if s["alg"] == "SM2")
        sm2_key = next(k for k in keys if k["kid"] == sm2["key_id"])
        assert sm2_key["alg"] == "SM2" and sm2_key["current"]
        assert (sm2_key["jwk"]["kty"], sm2_key["jwk"]["crv"], sm2_key["jwk"]["kid"]) == ("EC", "SM2", sm2["key_id"])
        async with http.get(base + "/manifest.sm2.sig", headers=server.headers()) as r:
            assert r.status == 200
            (tmp_path / "manifest.sm2.sig").write_bytes(await r.read())
        (tmp_path / "manifest.json").write_bytes(manifest_bytes)
        (tmp_path / "sm2.pem").write_text(sm2_key["pem"])
        checked = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "sm2.pem", "-rawin", "-digest", "sm3", "-in", "manifest.json", "-sigfile", "manifest.sm2.sig"],
            cwd=tmp_path, capture_output=True, text=True,
        )
        assert checked.returncode == 0 and "Signature Verified Successfully" in checked.stdout, checked.stdout + checked.stderr
        assert all("sm3" in entry for entry in manifest["objects"])

        types = []
        async with http.get(base + "/objects/events.jsonl", headers=server.headers()) as r:
            assert r.status == 200
            for line in (await r.read()).splitlines():
                types.append(json.loads(line)["type"])
        assert types[0] == "participant.joined" and "session.live" in types and types[-2:] == ["session.ended", "verdict"]
        assert record["status"] == "judged" and record["verdict"]["outcome"] in ("pass", "fail", "manual_review")
        assert manifest["verdict"]["outcome"] == record["verdict"]["outcome"] and manifest["verdict"]["rules_version"]
        assert "still.captured" in types and types.count("media.segment") >= 4
        kinds = {entry["kind"] for entry in manifest["objects"]}
        assert {"media", "still", "events"} <= kinds
        segment = next(e for e in manifest["objects"] if e["key"].startswith("media/applicant-video/"))
        async with http.get(f"{base}/objects/{segment['key']}", headers=server.headers()) as r:
            assert r.content_type == "video/webm"
            assert hashlib.sha256(await r.read()).hexdigest() == segment["sha256"]
        async with http.get(base + "/verification", headers=server.headers()) as r:
            report = await r.json()
        assert report["ok"] is True, report
        for bad in ("../../secrets/link.key", "..%2F..%2Fsecrets", "nope.bin"):
            async with http.get(f"{base}/objects/{bad}", headers=server.headers()) as r:
                assert r.status == 404 and r.content_type == "application/problem+json"
        async with http.get(base + "/manifest") as r:
            assert r.status == 401
        # every evidence read was written to the access log
        access = await server.services.access.read((await server.services.access.days())[-1])
        reads = [json.loads(line) for line in access.splitlines()]
        assert any(e["type"] == "evidence.read" and e["data"]["key"] == "manifest.json" for e in reads)
