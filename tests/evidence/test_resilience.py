"""Evidence survives a storage outage and a killed server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict

import aiohttp
import pytest

from evidence.verify import verify_inspection
from testkit.media import encode_vp8, wait_for
from testkit.server import (
    API_KEY,
    create_inspection,
    free_port,
    running_server,
    wait_healthy,
)
from testkit.servers import S3_ACCESS_KEY, S3_SECRET_KEY
from testkit.sockets import Participant
from testkit.tcpproxy import TcpProxy


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return encode_vp8(320, 240, frames=20)


async def start_pair(base_url: str, created: dict, frames) -> tuple[Participant, Participant]:
    inspector = Participant(base_url, created["inspector_url"])
    applicant = Participant(base_url, created["applicant_url"])
    assert await inspector.connect() and await applicant.connect()
    await inspector.join_and_publish(frames)
    await applicant.join_and_publish(frames)
    assert await wait_for(lambda: inspector.peer.video_sink.frames > 10 and applicant.peer.video_sink.frames > 10, 20)
    return inspector, applicant


def segment_seqs(events: list[dict]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event["type"] == "media.segment":
            seqs[event["data"]["track"]].append(event["data"]["seq"])
    return seqs


async def test_s3_outage_of_30_seconds_mid_session(tmp_path, moto_server, frames) -> None:
    proxy = TcpProxy("127.0.0.1", moto_server.port, free_port())
    await proxy.start()
    settings = {
        "s3_endpoint": f"127.0.0.1:{proxy.port}",
        "s3_access_key": S3_ACCESS_KEY,
        "s3_secret_key": S3_SECRET_KEY,
        "s3_bucket": f"takan-{uuid.uuid4().hex[:12]}",
    }
    try:
        async with running_server(tmp_path / "data", **settings) as server, aiohttp.ClientSession() as http:
            created = await create_inspection(server, http)
            inspector, applicant = await start_pair(server.base_url, created, frames)
            try:
                await asyncio.sleep(5)
                await proxy.stop()  # S3 unreachable from here on
                for i in range(6):
                    await asyncio.sleep(5)
                    assert (await applicant.call("chat", {"text": f"outage {i}"}))["ok"]
                async with http.get(server.base_url + "/healthz") as r:
                    health = await r.json()
                assert health["spool_depth"] > 0, health
                still = await inspector.call("capture", {"checkpoint": "storefront"})
                assert still["ok"], still
                # the session ends and is judged while S3 is still down: the seals are spooled
                # (the end's seal used to fail on reading the old timestamp token, leaving the
                # inspection ended, unsealed and unjudged)
                assert (await inspector.call("end"))["ok"]
                await server.services.decisions.idle()
                assert server.services.book.get(created["id"]).status == "judged"
                await proxy.start()  # back after ~30 s
                assert await wait_for(lambda: server.services.store.depth == 0, 60, 0.5)
            finally:
                await inspector.close()
                await applicant.close()
            report = await verify_inspection(server.services.store, created["id"])
            assert report.ok, report.problems
            events = server.services.journal
            seqs = segment_seqs(await events.events(created["id"]))
            for track in ("applicant-video", "inspector-video", "applicant-audio", "inspector-audio"):
                if track.endswith("audio") and not seqs.get(track):
                    continue  # the test peers publish no audio
                assert seqs[track] == list(range(1, len(seqs[track]) + 1)) and len(seqs[track]) >= 8, (track, seqs)
    finally:
        await proxy.stop()


def test_killed_server_leaves_verifiable_evidence(tmp_path, frames) -> None:
    asyncio.run(_killed_server(tmp_path, frames))


async def _killed_server(tmp_path, frames) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")}, "TAKAN_API_KEY": API_KEY, "TAKAN_LOG_LEVEL": "WARNING",
           "TAKAN_INSPECTOR_LOGIN": "link"}  # the link alone, as in testkit.server (tests of staff logins: tests/signaling/test_staff_login.py)
    argv = [sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def healthy(http) -> None:
        await wait_healthy(http, base)

    class Srv:
        base_url = base

        @staticmethod
        def headers():
            return headers

    process = subprocess.Popen(argv, env=env)
    async with aiohttp.ClientSession() as http:
        try:
            await healthy(http)
            created = await create_inspection(Srv, http)
            inspector, applicant = await start_pair(base, created, frames)
            await asyncio.sleep(10)  # two closed 4 s segments per video track
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            await inspector.close()
            await applicant.close()
        finally:
            if process.poll() is None:
                process.kill()

        process = subprocess.Popen(argv, env=env)
        try:
            await healthy(http)
            # sessions left live are marked interrupted and sealed in the background once the
            # server listens (issue 9: restart time must not grow with open sessions)
            for _ in range(100):
                async with http.get(f"{base}/api/v1/inspections/{created['id']}", headers=headers) as r:
                    record = await r.json()
                if record["status"] == "interrupted" and record["manifest"]:
                    break
                await asyncio.sleep(0.1)
            assert record["status"] == "interrupted", record["status"]
            assert record["manifest"]["sha256"]
            async with http.get(f"{base}/api/v1/inspections/{created['id']}/verification", headers=headers) as r:
                report = await r.json()
            assert report["ok"], report
            async with http.get(f"{base}/api/v1/inspections/{created['id']}/objects/events.jsonl", headers=headers) as r:
                events = [json.loads(line) for line in (await r.read()).splitlines()]
            assert events[-1]["type"] == "session.interrupted"
            seqs = segment_seqs(events)
            assert len(seqs["applicant-video"]) >= 2 and len(seqs["inspector-video"]) >= 2, seqs

            # the participants come back; the session resumes and ends normally
            inspector, applicant = await start_pair(base, created, frames)
            await asyncio.sleep(5)
            assert (await inspector.call("end"))["ok"]
            await inspector.close()
            await applicant.close()
            async with http.get(f"{base}/api/v1/inspections/{created['id']}/objects/events.jsonl", headers=headers) as r:
                events = [json.loads(line) for line in (await r.read()).splitlines()]
            seqs_after = segment_seqs(events)
            assert seqs_after["applicant-video"] == list(range(1, len(seqs_after["applicant-video"]) + 1))
            assert len(seqs_after["applicant-video"]) > len(seqs["applicant-video"])
        finally:
            process.terminate()
            process.wait(20)
    verify = subprocess.run([sys.executable, "-m", "takan", "verify", "--data-dir", str(data), created["id"]], env=env, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
