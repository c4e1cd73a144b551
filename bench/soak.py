"""Soak: a million signaling operations against one Takan server, and its memory over time.

Run from the repository root::

    .venv/bin/python bench/soak.py                  # 1,000,000 operations
    .venv/bin/python bench/soak.py --ops 100000     # shorter

The server is a child process (``python -m takan serve`` on loopback, embedded default
storage). This process drives ``--inspections`` concurrent inspections, each with an
inspector and an applicant over Socket.IO (websocket transport, as the pages use it). One
operation is one acknowledged request: a connect+join, an event (chat, note, location,
media state, prompt) or a leave (disconnect). Every so often an inspection is ended and a
new one takes its place, so records, rooms and logs come and go as on a real server.

Reported: operations that failed (an error ack, a refused connect, a timeout; the aim is
none), throughput, ack latency p50/p99, and the server's resident memory (from /proc) at
each tenth of the run (the aim: flat once warm). Results go to stdout and to
``bench/results-soak.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.rawsocket import RawSocket  # noqa: E402
from testkit.server import wait_healthy  # noqa: E402

API_KEY = "soak-api-key-0123456789abcdef"
EVENTS_PER_VISIT = 20  # events a participant sends between joining and leaving
#: Local addresses a client process spreads its connections over: the server admits 1,200
#: Socket.IO connects a minute per address (signaling/namespace.py), and at a few thousand
#: operations a second the soak connects a hundred times a second.
LOCAL_ADDRESSES = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    ops: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def ok(self, started: float) -> None:
        self.ops += 1
        if len(self.latencies) < 200_000:
            self.latencies.append(time.perf_counter() - started)

    def failed(self, what: str) -> None:
        self.ops += 1
        self.failures += 1
        if len(self.examples) < 10:
            self.examples.append(what)


def inspection_body(n: int, prefix: str = "") -> dict[str, Any]:
    return {
        "case_no": f"SOAK-{prefix or os.getpid()}-{n:07d}",
        "item_code": "food-business-license",
        "item_name": "食品经营许可",
        "applicant": {"name": "德州某某餐饮有限公司", "kind": "legal_person", "id_type": "USCC", "id_number": "91350100M000100Y43"},
        "site": {"address": "德州市德城区某路1号", "lat": 37.4355, "lon": 116.3594, "radius_m": 300},
        "checkpoints": [{"code": "storefront", "title": "门头招牌", "required": True}],
    }


class Driver:
    def __init__(self, base: str, total: int, tally: Tally, sessions: list[aiohttp.ClientSession], prefix: str = "") -> None:
        self.base = base
        self.total = total
        self.tally = tally
        self.prefix = prefix
        self.created = 0
        self._sessions = sessions
        self._turn = 0

    def client(self) -> RawSocket:
        self._turn += 1
        return RawSocket(self._sessions[self._turn % len(self._sessions)])

    def done(self) -> bool:
        return self.tally.ops >= self.total

    async def new_inspection(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        self.created += 1
        async with http.post(f"{self.base}/api/v1/inspections", json=inspection_body(self.created, self.prefix),
                             headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"create: {r.status} {body}")
            return body

    async def call(self, client: RawSocket, event: str, data: Any) -> None:
        started = time.perf_counter()
        try:
            ack = await client.call(event, data, timeout=30)
        except Exception as exc:  # a timeout or a dropped connection
            self.tally.failed(f"{event}: {type(exc).__name__}")
            return
        if isinstance(ack, dict) and ack.get("ok"):
            self.tally.ok(started)
        else:
            self.tally.failed(f"{event}: {ack}")

    async def visit(self, link: str, role: str, device: str) -> None:
        """Connect and join, send events, leave: 2 + EVENTS_PER_VISIT operations."""
        client = self.client()
        token = link.split("#", 1)[1]
        started = time.perf_counter()
        try:
            await client.connect(self.base, token)
        except Exception as exc:
            self.tally.failed(f"connect: {exc}")
            return
        try:
            await self.call(client, "join", {"device": device})
            self.tally.latencies.append(time.perf_counter() - started)
            for i in range(EVENTS_PER_VISIT):
                if self.done():
                    break
                if role == "inspector":
                    event, data = random.choice([
                        ("chat", {"text": f"请转到门头 {i}"}), ("note", {"text": f"现场整洁 {i}"}),
                        ("prompt", {"checkpoint": "storefront"}), ("media", {"audio": True, "video": i % 2 == 0}),
                    ])
                else:
                    event, data = random.choice([
                        ("chat", {"text": f"好的 {i}"}), ("media", {"audio": True, "video": True}),
                        ("location", {"lat": 37.4355 + random.random() / 1e4, "lon": 116.3594, "accuracy_m": 12}),
                    ])
                await self.call(client, event, data)
        finally:
            t0 = time.perf_counter()
            await client.disconnect()
            self.tally.ok(t0)

    async def inspection_loop(self, http: aiohttp.ClientSession, visits_per_inspection: int) -> None:
        while not self.done():
            created = await self.new_inspection(http)
            for v in range(visits_per_inspection):
                if self.done():
                    break
                # each participant's page comes and goes (the same device, as a reload or a
                # reconnect after a network drop would)
                await asyncio.gather(
                    self.visit(created["inspector_url"], "inspector", "desk"),
                    self.visit(created["applicant_url"], "applicant", "phone"),
                )
            # end it (join as inspector, end) so the server seals, judges and forgets it
            client = self.client()
            try:
                await client.connect(self.base, created["inspector_url"].split("#", 1)[1])
                await self.call(client, "join", {"device": "desk"})
                await self.call(client, "end", {})
            except Exception as exc:
                self.tally.failed(f"end: {exc}")
            finally:
                await client.disconnect()


def client_process(base: str, ops: int, inspections: int, visits: int, prefix: str, index: int,
                   progress: Any, results: Any) -> None:
    """One client process: its share of the inspections and operations."""
    tally = Tally()

    async def drive() -> Driver:
        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.{10 + index}.{n + 1}", 0)))
                    for n in range(LOCAL_ADDRESSES)]
        driver = Driver(base, ops, tally, sessions, prefix)

        async def report() -> None:
            while not driver.done():
                progress.value = tally.ops
                await asyncio.sleep(0.5)

        try:
            # a fresh connection for each create: the server closes an idle keep-alive
            # connection 10 s after its last response (web/server.py, the head deadline), and
            # a create sent on one in that instant was reset, a client-side race the soak
            # reported as a dead client process
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                reporter = asyncio.create_task(report())
                await asyncio.gather(*(driver.inspection_loop(http, visits) for _ in range(inspections)))
                await reporter
        finally:
            for session in sessions:
                await session.close()
        return driver

    driver = asyncio.run(drive())
    progress.value = tally.ops
    results.put((tally.ops, tally.failures, tally.latencies[::10], tally.examples, driver.created))


async def run(args: argparse.Namespace) -> int:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="takan-soak-"))
    env = {**os.environ, "TAKAN_API_KEY": API_KEY, "TAKAN_API_RATE_PER_MINUTE": "10000000", "TAKAN_LOG_LEVEL": "WARNING",
           "TAKAN_INSPECTOR_LOGIN": "link"}  # the link alone: the benchmark has no staff logins
    server = subprocess.Popen(
        [sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    memory: list[tuple[int, float]] = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 60)
        started = time.monotonic()
        cpu0 = cpu_s(server.pid)
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        counters = [ctx.Value("q", 0) for _ in range(args.clients)]
        share_ops, share_insp = args.ops // args.clients, max(1, args.inspections // args.clients)
        workers = [
            ctx.Process(target=client_process, args=(base, share_ops, share_insp, args.visits, f"{os.getpid()}c{n}", n,
                                                     counters[n], results), daemon=True)
            for n in range(args.clients)
        ]
        for worker in workers:
            worker.start()
        step, mark, done = max(1, args.ops // 10), 0, 0
        collected: list[Any] = []
        while len(collected) < len(workers):
            ops = sum(c.value for c in counters)
            if ops >= mark:
                memory.append((ops, rss_mb(server.pid)))
                print(f"  {ops:>9,} ops  server RSS {memory[-1][1]:.0f} MB"
                      f"  {ops / max(1e-9, time.monotonic() - started):.0f} ops/s", flush=True)
                mark += step
            while not results.empty():
                collected.append(results.get())
            if any(not w.is_alive() and w.exitcode not in (0, None) for w in workers):
                raise RuntimeError("a client process failed")
            await asyncio.sleep(0.5)
        for worker in workers:
            worker.join(30)
        for ops, failures, latencies, examples, created in collected:
            tally.ops += ops
            tally.failures += failures
            tally.latencies.extend(latencies)
            tally.examples.extend(examples[: max(0, 10 - len(tally.examples))])
            done += created
        elapsed = time.monotonic() - started
        cores = (cpu_s(server.pid) - cpu0) / elapsed
        memory.append((tally.ops, rss_mb(server.pid)))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    lat = sorted(tally.latencies) or [0.0]
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    warm = [m for n, m in memory if n >= args.ops * 0.2]
    rows = [
        f"| operations | {tally.ops:,} ({done:,} inspections, {args.inspections} at a time, {args.clients} client processes) |",
        f"| failed | {tally.failures} |",
        f"| throughput | {tally.ops / elapsed:,.0f} ops/s over {elapsed:,.0f} s; server {cores:.2f} cores |",
        f"| ack latency | p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms |",
        f"| server RSS | " + ", ".join(f"{m:.0f}" for _, m in memory) + " MB (every tenth of the run)"
        + (f"; after warm-up {min(warm):.0f}-{max(warm):.0f} MB" if warm else "") + " |",
    ]
    report = "\n".join(["| soak | |", "|---|---|", *rows])
    print(report)
    if tally.examples:
        print("failures, e.g.:", *tally.examples, sep="\n  ")
    (ROOT / "bench" / "results-soak.md").write_text(
        f"# Soak ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)\n\n{report}\n"
        + ("\nFailures, e.g.:\n" + "\n".join(f"- {e}" for e in tally.examples) + "\n" if tally.examples else "")
    )
    return 0 if tally.failures == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1_000_000, help="signaling operations in all (default 1,000,000)")
    parser.add_argument("--inspections", type=int, default=50, help="inspections at a time (default 50)")
    parser.add_argument("--visits", type=int, default=5, help="join/leave visits per participant before it ends (default 5)")
    parser.add_argument("--clients", type=int, default=3, help="client processes sharing the load (default 3)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
