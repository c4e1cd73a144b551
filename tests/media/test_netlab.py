"""The network lab does what it says: reachability, loss, outage, shaping, re-addressing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from testkit.browser import CHROMIUM_ARGS, chromium_available
from testkit.netlab import NetLab, Shape, netlab_available

pytestmark = pytest.mark.skipif(netlab_available() is not None, reason=str(netlab_available()))

# Sends UDP datagrams (or one TCP stream) from inside the namespace to the host.
_SENDER = r"""
import socket, sys, time
kind, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(b"x" * 200, (host, port))
        time.sleep(0.0005)
else:
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"y" * count)
    s.close()
"""


def _names() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout + subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True
    ).stdout


def _udp_received(lab: NetLab, count: int = 2000) -> int:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((lab.host_ip, 0))
    rx.settimeout(0.5)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    lab.ns([sys.executable, "-c", _SENDER, "udp", lab.host_ip, str(rx.getsockname()[1]), str(count)])
    got = 0
    try:
        while True:
            rx.recv(2048)
            got += 1
    except socket.timeout:
        pass
    rx.close()
    return got


def test_create_and_close_leave_nothing_behind() -> None:
    lab = NetLab()
    with lab:
        assert lab.name in _names() and lab.host_if in _names()
        assert lab.ns(["ip", "-o", "addr", "show", "dev", lab.ns_if]).stdout.count(lab.ns_ip) == 1
    assert lab.name not in _names()
    lab.close()  # idempotent


def test_close_runs_when_the_body_fails() -> None:
    lab = NetLab()
    with pytest.raises(RuntimeError):
        with lab:
            raise RuntimeError("test body failed")
    assert lab.name not in _names()


def test_loss_outage_and_address_change() -> None:
    with NetLab() as lab:
        assert _udp_received(lab) >= 1990
        lab.loss(5)
        got = _udp_received(lab)
        # 5 % dropped on the way out of the namespace: 1900 expected
        assert 1800 <= got <= 1960, got
        lab.outage(True)
        assert _udp_received(lab, 200) == 0
        lab.outage(False)
        lab.loss(0)
        assert _udp_received(lab, 200) >= 198

        old = lab.ns_ip
        new = lab.change_address()
        assert new != old
        server = socket.create_server((lab.host_ip, 0))
        server.settimeout(5)
        lab.ns([sys.executable, "-c", _SENDER, "tcp", lab.host_ip, str(server.getsockname()[1]), "10"])
        conn, peer = server.accept()
        assert peer[0] == new
        conn.close()
        server.close()


def test_uplink_shaping_limits_throughput() -> None:
    with NetLab() as lab:
        lab.shape(uplink=Shape(rate_kbit=800, burst_bytes=10_000, latency_ms=100))
        server = socket.create_server((lab.host_ip, 0))
        port = server.getsockname()[1]
        total = 100_000  # 800 kbit/s: about 1 s
        started = time.monotonic()
        proc = subprocess.Popen(["ip", "netns", "exec", lab.name, sys.executable, "-c", _SENDER, "tcp", lab.host_ip, str(port), str(total)])
        conn, _ = server.accept()
        got = 0
        while chunk := conn.recv(65536):
            got += len(chunk)
        elapsed = time.monotonic() - started
        proc.wait(10)
        conn.close()
        server.close()
        assert got == total
        assert 0.8 <= elapsed <= 3.0, elapsed


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="chromium not installed")
async def test_chromium_runs_inside_the_namespace() -> None:
    from aiohttp import web
    from playwright.async_api import async_playwright

    seen: list[str] = []

    async def index(request: web.Request) -> web.Response:
        seen.append(request.remote or "")
        return web.Response(text="<p>lab</p>", content_type="text/html")

    with NetLab() as lab:
        app = web.Application()
        app.router.add_get("/", index)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, lab.host_ip, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        origin = f"http://{lab.host_ip}:{port}"
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(lab.chromium_wrapper()), headless=True,
                    args=CHROMIUM_ARGS + lab.secure_origin_args(origin),
                )
                page = await browser.new_page()
                await page.goto(origin + "/")
                assert await page.evaluate("window.isSecureContext")
                await browser.close()
        finally:
            await runner.cleanup()
        assert seen == [lab.ns_ip]
