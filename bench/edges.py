"""Edges under load: does one flood of big Socket.IO messages stall everyone else?

Run from the repository root::

    .venv/bin/python bench/edges.py              # 20 s of flood
    .venv/bin/python bench/edges.py --seconds 5

A Takan server runs as a child process. ``--flooders`` clients (16) each hold a joined
participant's connection and send ~1 MB messages as fast as the server lets them (a chat
that is far over its size limit, and so refused, but only after it has been received and
decoded). Meanwhile a bystander measures ``GET /healthz`` and the ack of a small chat in
another inspection. Reported: their latency p50/p99/max, idle and during the flood, in the
same run, and how many flood messages the server took before closing the flooders'
connections (the frame budget of ``signaling/server.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import socketio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.server import free_port, inspection_body, wait_healthy  # noqa: E402

API_KEY = "edges-api-key-0123456789abcdef"
BIG = "字" * (340 * 1024)  # about 1 MB as UTF-8


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def create(http: aiohttp.ClientSession, base: str, n: int) -> dict:
    async with http.post(f"{base}/api/v1/inspections", json=inspection_body(case_no=f"EDGE-{n:05d}", callback_url=None),
                         headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        return await r.json()


async def joined(base: str, link: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(base, auth={"token": link.split("#", 1)[1]}, transports=["websocket"], wait_timeout=20)
    ack = await client.call("join", {"device": "bench"}, timeout=20)
    assert ack.get("ok"), ack
    return client


async def probe(http: aiohttp.ClientSession, base: str, bystander: socketio.AsyncClient, seconds: float) -> tuple[list[float], list[float]]:
    health, acks = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        async with http.get(base + "/healthz") as r:
            await r.read()
        health.append(time.perf_counter() - started)
        started = time.perf_counter()
        try:
            await bystander.call("chat", {"text": "好"}, timeout=30)
            acks.append(time.perf_counter() - started)
        except Exception:
            acks.append(30.0)
        await asyncio.sleep(0.1)
    return health, acks


async def flood(client: socketio.AsyncClient, until: float, sent: list[int]) -> None:
    while time.monotonic() < until and client.connected:
        try:
            await client.emit("chat", {"text": BIG})
            sent[0] += 1
        except Exception:
            return
        await asyncio.sleep(0)


async def run(args: argparse.Namespace) -> int:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="takan-edges-"))
    env = {**os.environ, "TAKAN_API_KEY": API_KEY, "TAKAN_API_RATE_PER_MINUTE": "1000000", "TAKAN_LOG_LEVEL": "ERROR",
           "TAKAN_INSPECTOR_LOGIN": "link"}  # the link alone: the benchmark has no staff logins
    # --server-root runs another checkout's server (e.g. the commit before a change), same clients
    server = subprocess.Popen([sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--data-dir", str(data)], cwd=args.server_root, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 60)
            quiet = await create(http, base, 0)
            bystander = await joined(base, quiet["inspector_url"])
            idle_health, idle_acks = await probe(http, base, bystander, args.seconds / 2)
            flooders = []
            for n in range(args.flooders):
                created = await create(http, base, n + 1)
                flooders.append(await joined(base, created["applicant_url"]))
            sent = [0]
            until = time.monotonic() + args.seconds
            flooding = asyncio.gather(*(flood(c, until, sent) for c in flooders))
            busy_health, busy_acks = await probe(http, base, bystander, args.seconds)
            await flooding
            closed = sum(not c.connected for c in flooders)
            for client in [bystander, *flooders]:
                if client.connected:
                    await client.disconnect()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    rows = [
        "| | idle | during the flood |",
        "|---|---|---|",
        f"| `/healthz` p50 / p99 / max, ms | {ms(pct(idle_health, .5))} / {ms(pct(idle_health, .99))} / {ms(max(idle_health))}"
        f" | {ms(pct(busy_health, .5))} / {ms(pct(busy_health, .99))} / {ms(max(busy_health))} |",
        f"| another inspection's chat ack p50 / p99 / max, ms | {ms(pct(idle_acks, .5))} / {ms(pct(idle_acks, .99))} / {ms(max(idle_acks))}"
        f" | {ms(pct(busy_acks, .5))} / {ms(pct(busy_acks, .99))} / {ms(max(busy_acks))} |",
        f"| flood | | {args.flooders} clients sent {sent[0]} messages of ~1 MB in {args.seconds:g} s; {closed} connections closed by the server |",
    ]
    print("\n".join(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--server-root", type=Path, default=ROOT, help="checkout whose server to run (default: this one)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
