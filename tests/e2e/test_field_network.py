"""The applicant's phone behind a real shaped link (testkit/netlab): an outage is ridden
out, and an address change is recovered from.

The applicant's Chromium runs in a network namespace; the inspector's on the host. After
an 8 s total outage the inspector must see fresh video again within a few seconds, on
the same peer connection (ICE recovers by itself; the page must not tear it down). After
the phone's address changes (its old address gone, as on a move to another network) the
page must notice, reconnect and build a new peer connection by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from testkit.browser import CHROMIUM, CHROMIUM_ARGS, STATS, chromium_available
from testkit.netlab import NetLab, netlab_available
from testkit.server import API_KEY, WEBHOOK_SECRET, inspection_body, wait_healthy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(netlab_available() is not None, reason=str(netlab_available())),
]


@contextlib.asynccontextmanager
async def server_on(host_ip: str, data_dir: Path) -> AsyncIterator[str]:
    """Takan in its own process on all addresses (the namespace reaches ``host_ip``)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
    base = f"http://{host_ip}:{port}"
    # the link alone opens the console here, as in testkit.server (staff logins: tests/signaling/test_staff_login.py)
    env = {**os.environ, "TAKAN_API_KEY": API_KEY, "TAKAN_WEBHOOK_SECRET": WEBHOOK_SECRET, "PYTHONPATH": str(ROOT),
           "TAKAN_INSPECTOR_LOGIN": "link"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "takan", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--data-dir", str(data_dir), "--public-url", base, "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 30)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def frames(page) -> int:
    return int((await page.evaluate(STATS) or {}).get("videoFramesDecoded", 0))


async def test_an_outage_keeps_the_peer_connection_and_an_address_change_rebuilds_it(tmp_path) -> None:
    from playwright.async_api import async_playwright

    with NetLab() as lab:
        async with server_on(lab.host_ip, tmp_path / "data") as base, aiohttp.ClientSession() as http:
            async with http.post(base + "/api/v1/inspections", json=inspection_body(),
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as r:
                created = await r.json()
            flags = CHROMIUM_ARGS + lab.secure_origin_args(base)
            async with async_playwright() as pw:
                phone = await pw.chromium.launch(executable_path=str(lab.chromium_wrapper()), headless=True, args=flags)
                desk = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
                try:
                    inspector = await (await desk.new_context()).new_page()
                    applicant = await (await phone.new_context()).new_page()
                    log: list[str] = []
                    applicant.on("console", lambda m: log.append(f"{time.monotonic():.1f} {m.text}"))
                    await inspector.goto(created["inspector_url"])
                    await applicant.goto(created["applicant_url"])
                    deadline = time.monotonic() + 60
                    while await frames(inspector) < 20:
                        assert time.monotonic() < deadline, "no video through the lab link"
                        await asyncio.sleep(0.25)
                    generation = await applicant.evaluate("window.takan.session.peerGen")

                    log.append(f"{time.monotonic():.1f} outage starts")
                    lab.outage(True)
                    await asyncio.sleep(8)
                    log.append(f"{time.monotonic():.1f} outage ends")
                    before = await frames(inspector)
                    lab.outage(False)
                    restored = time.monotonic()
                    while await frames(inspector) <= before + 5:
                        assert time.monotonic() - restored < 15, "no fresh video 15 s after the outage"
                        await asyncio.sleep(0.1)
                    # the same peer connection carried on (no rebuild, no new offer)
                    assert await applicant.evaluate("window.takan.session.peerGen") == generation, "\n".join(log)
                    assert await applicant.evaluate("window.takan.session.pc.connectionState") == "connected"

                    log.append(f"{time.monotonic():.1f} address changes")
                    before = await frames(inspector)
                    lab.change_address()
                    changed = time.monotonic()
                    while await frames(inspector) <= before + 20:
                        assert time.monotonic() - changed < 20, "no fresh video 20 s after the address change\n" + "\n".join(log)
                        await asyncio.sleep(0.1)
                    # the old path is dead: a new peer connection carries the media
                    assert await applicant.evaluate("window.takan.session.peerGen") > generation, "\n".join(log)
                    assert await applicant.evaluate("window.takan.state.joined") is True
                finally:
                    await phone.close()
                    await desk.close()
