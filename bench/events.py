"""Event-log throughput: events acknowledged per second through Socket.IO, and append cost.

Two measurements (results in README.md, "Benchmarks"):

``append``: one log, in-process, on the local object store. Appends 10,000 events one
after another and reports the mean wall and CPU time per append over the 100 appends
ending at event 100, 1,000 and 10,000: for this tree's chunked log with its local journal
(fsync per append, alone: no other appends to share it with), for the same without a local
journal (each append writes its chunk to the store), and for the whole-object log of
``main`` before issue 12 (``git show <rev>:evidence/chainlog.py``; its 10,000-line state
is built in memory, then 100 real appends are timed).

``journal``: the evidence layer alone, in-process: ``Journal.record`` on ``--inspections``
logs at ``--rate`` events/s in total (local journal, group commit): acknowledged per
second, latency p50/p99, CPU per event, events per fsync.

``sio``: a Takan server in its own process (``python -m takan serve`` from ``--tree``),
``--inspections`` inspections, an inspector and an applicant socket each (python-socketio
clients over WebSocket, in ``--clients`` other processes), every socket sending evidence
events (inspector ``note``, applicant ``location``) at a fixed rate (open loop: the offered
load is ``--rate`` events/s in total, under the server's 50 events/s per socket limit) for
``--seconds``. Reports events acknowledged per second, ack latency p50/p99/max, errors, and
the server's CPU (cores, from /proc/<pid>/stat).

    .venv/bin/python bench/events.py append
    .venv/bin/python bench/events.py sio --inspections 50 --rate 3000
    .venv/bin/python bench/events.py sio --inspections 200 --rate 3000
    .venv/bin/python bench/events.py sio --tree /path/to/old/checkout ...   # compare
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.rawsocket import RawSocket  # noqa: E402

API_KEY = "bench-key-0123456789abcdef"


# ---- append cost ----------------------------------------------------------------------


def _old_chainlog(rev: str) -> types.ModuleType | None:
    try:
        source = subprocess.run(["git", "show", f"{rev}:evidence/chainlog.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    module = types.ModuleType("evidence._chainlog_before")
    module.__package__ = "evidence"
    exec(compile(source, f"{rev}:evidence/chainlog.py", "exec"), module.__dict__)  # noqa: S102 - our own code at rev
    return module


def _payload(n: int) -> dict[str, Any]:
    return {"text": f"note {n}: 门头招牌清晰，经营范围与申请一致", "checkpoint": "storefront"}


async def _time_appends(append: Any, marks: list[int], total: int, window: int = 100) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    wall0 = cpu0 = 0.0
    for n in range(1, total + 1):
        if n in [m - window + 1 for m in marks]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
        await append(n)
        if n in marks:
            out[n] = ((time.perf_counter() - wall0) / window, (time.process_time() - cpu0) / window)
    return out


async def bench_append(rev: str) -> None:
    from evidence.chainlog import ChainLog, encode_line, entry_hash
    from evidence.localjournal import LocalJournal
    from storage.local import LocalObjectStore

    marks = [100, 1000, 10000]
    rows: list[tuple[str, dict[int, tuple[float, float]]]] = []
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        root = Path(tmp)
        store = LocalObjectStore(root / "objects")
        await store.start()

        local = LocalJournal(root / "journal")
        log = ChainLog(store, "inspections/a/events.jsonl", local=local)
        rows.append(("chunked log + local journal (fsync each)", await _time_appends(lambda n: log.append("note", "inspector", _payload(n)), marks, marks[-1])))
        await log.flush()
        await local.close()

        direct = ChainLog(store, "inspections/b/events.jsonl")
        rows.append(("chunked log, no journal (chunk PUT each)", await _time_appends(lambda n: direct.append("note", "inspector", _payload(n)), marks, marks[-1])))

        old = _old_chainlog(rev)
        if old is not None:
            timings: dict[int, tuple[float, float]] = {}
            for mark in marks:
                before = old.ChainLog(store, f"inspections/c{mark}/events.jsonl")
                await before.load()
                head, lines = "0" * 64, []
                for n in range(1, mark - 100 + 1):  # the state after mark-100 appends, built in memory
                    entry = {"seq": n, "at": "2026-12-01T00:00:00.000Z", "type": "note", "actor": "inspector", "data": _payload(n), "prev": head}
                    entry["hash"] = head = entry_hash(entry)
                    lines.append(encode_line(entry))
                before._lines, before._head, before._seq = lines, head, len(lines)
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for n in range(mark - 99, mark + 1):
                    await before.append("note", "inspector", _payload(n))
                timings[mark] = ((time.perf_counter() - wall0) / 100, (time.process_time() - cpu0) / 100)
            rows.append((f"whole-object log ({rev}, before issue 12)", timings))
        await store.close()

    print(f"# append cost, one log, local object store ({platform.python_version()}, {os.cpu_count()} cores)")
    print("| implementation | " + " | ".join(f"at {m:,} events" for m in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for name, timing in rows:
        print(f"| {name} | " + " | ".join(f"{timing[m][0] * 1000:.3f} ms ({timing[m][1] * 1000:.3f} ms CPU)" for m in marks) + " |")


# ---- the evidence layer alone ---------------------------------------------------------


async def bench_journal(args: argparse.Namespace) -> None:
    """Journal.record from ``--inspections`` concurrent logs at ``--rate`` events/s in total."""
    from evidence.journal import Journal
    from evidence.signing import SigningKeys
    from storage.local import LocalObjectStore

    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        root = Path(tmp)
        store = LocalObjectStore(root / "objects")
        await store.start()
        keys = SigningKeys(root / "keys", store)
        await keys.start()
        journal = Journal(store, keys, root / "journal")
        await journal.start()
        ids = [f"20261201000000-{i:016x}" for i in range(args.inspections)]
        for i in ids:
            await journal.record(i, "participant.joined", "inspector", {"id": "inspector"})
        latencies: list[float] = []

        async def one(inspection_id: str, n: int) -> None:
            t0 = time.perf_counter()
            await journal.record(inspection_id, "note", "inspector", _payload(n))
            latencies.append(time.perf_counter() - t0)

        assert journal.local is not None
        commits0, cpu0, t0 = journal.local.commits, time.process_time(), time.perf_counter()
        tasks = []
        n = 0
        while (now := time.perf_counter() - t0) < args.seconds:
            while n < int(now * args.rate):  # open loop: everything due by now, then yield
                tasks.append(asyncio.ensure_future(one(ids[n % len(ids)], n)))
                n += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        commits = journal.local.commits - commits0
        await journal.close()
        await store.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(json.dumps({
        "inspections": args.inspections, "offered_per_s": args.rate, "acked_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2), "cpu_ms_per_event": round(cpu * 1000 / len(latencies), 3),
        "events_per_fsync": round(len(latencies) / max(1, commits), 1),
    }))


# ---- Socket.IO throughput -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _create(base: str, n: int) -> list[dict[str, Any]]:
    import aiohttp

    from testkit.server import inspection_body

    out = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for i in range(n):
            async with http.post(base + "/api/v1/inspections", json=inspection_body(case_no=f"DZ-2026-{i:06d}")) as r:
                body = await r.json(content_type=None)
                if r.status != 201:
                    raise SystemExit(f"creating an inspection failed: {r.status} {body}")
                out.append(body)
    return out


def _client_process(base: str, links: list[tuple[str, str]], per_socket_rate: float, go: Any, seconds: float, queue: Any, index: int) -> None:
    asyncio.run(_client_main(base, links, per_socket_rate, go, seconds, queue, index))


async def _client_main(base: str, links: list[tuple[str, str]], per_socket_rate: float, go: Any, seconds: float, queue: Any, index: int) -> None:
    import aiohttp

    latencies: list[float] = []
    errors: list[str] = []
    clients = []
    sessions: list[aiohttp.ClientSession] = []
    for number, (role, link) in enumerate(links):
        if number % 40 == 0:
            # the server admits 60 connections a minute per address: spread them over 127.0.x.y
            local = f"127.0.{index + 1}.{number // 40 + 1}"
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0))))
        # a minimal Socket.IO client: python-socketio's costs the load generator more CPU
        # per event than the server spends
        client = RawSocket(sessions[-1])
        await client.connect(base, link.split("#", 1)[1])
        joined = await client.call("join", {}, timeout=30)
        if not joined.get("ok"):
            errors.append(f"join: {joined}")
        clients.append((role, client))
    queue.put(("ready", len(clients)))
    await asyncio.to_thread(go.wait)
    cpu0 = time.process_time()

    async def one(role: str, client: Any, n: int) -> None:
        event, data = ("note", {"text": f"note {n} 门头招牌清晰"}) if role == "inspector" else ("location", {"lat": 37.4355, "lon": 116.3594, "accuracy_m": 8})
        t0 = time.perf_counter()
        try:
            ack = await client.call(event, data, timeout=30)
        except Exception as exc:  # a timeout counts as an error, not a latency
            errors.append(f"{event}: {exc!r}")
            return
        if not ack.get("ok"):  # an error ack is not an acknowledged event (a refusal costs the server less)
            errors.append(f"{event}: {ack}")
            return
        latencies.append(time.perf_counter() - t0)

    skipped = [0]

    async def drive(role: str, client: Any, offset: float) -> None:
        interval = 1.0 / per_socket_rate
        start = begin = time.perf_counter() + offset
        tasks = []
        n = sent = 0
        while True:
            due = begin + n * interval
            if due - start > seconds:
                break
            late = time.perf_counter() - due
            if late > 0.1:
                # this process fell behind (the machine is shared): never burst to catch up,
                # which would exceed the server's 50 events/s per socket; count what was skipped
                missed = int(late / interval)
                skipped[0] += missed
                n += missed
                continue
            await asyncio.sleep(max(0.0, -late))
            tasks.append(asyncio.ensure_future(one(role, client, sent)))
            n += 1
            sent += 1
        await asyncio.gather(*tasks)

    count = len(clients)
    await asyncio.gather(*(drive(role, client, i / count / per_socket_rate) for i, (role, client) in enumerate(clients)))
    queue.put(("done", latencies, errors[:20], len(errors), skipped[0], time.process_time() - cpu0))
    for _, client in clients:
        await client.disconnect()
    for session in sessions:
        await session.close()


async def bench_sio(args: argparse.Namespace) -> None:
    tree = Path(args.tree).resolve()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="takan-bench-", dir=ROOT.parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")}
    env.update({"TAKAN_API_KEY": API_KEY, "TAKAN_LOG_LEVEL": "WARNING", "TAKAN_API_RATE_PER_MINUTE": "100000", "PYTHONPATH": str(tree),
                "TAKAN_INSPECTOR_LOGIN": "link"})  # the link alone: no staff logins in the bench
    server = subprocess.Popen(
        [sys.executable, "-m", "takan", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)], cwd=tree, env=env
    )
    try:
        import aiohttp

        from testkit.server import wait_healthy

        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 30)
        created = await _create(base, args.inspections)
        links = [l for c in created for l in (("inspector", c["inspector_url"]), ("applicant", c["applicant_url"]))]
        per_socket = args.rate / len(links)
        if per_socket > 45:
            raise SystemExit(f"{per_socket:.1f} events/s per socket is over the server's limit of 50: use more inspections")
        from session.quotas import LIMITS

        notes = per_socket * args.seconds
        if notes > LIMITS["note"][0].count:
            raise SystemExit(f"each inspector would send {notes:.0f} notes, over the quota of {LIMITS['note'][0].count} per inspection"
                             " (refused notes would count as cheap errors): use fewer --seconds or more inspections")
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        go = ctx.Event()
        parts = [links[i :: args.clients] for i in range(args.clients)]
        procs = [ctx.Process(target=_client_process, args=(base, part, per_socket, go, args.seconds, queue, i)) for i, part in enumerate(parts)]
        for p in procs:
            p.start()
        ready = 0
        for _ in procs:
            ready += (await asyncio.to_thread(queue.get, True, 900))[1]
        await asyncio.sleep(2)
        go.set()
        cpu0, t0 = _cpu_seconds(server.pid), time.monotonic()
        latencies: list[float] = []
        errors: list[str] = []
        error_count = skipped = 0
        client_cpu: list[float] = []
        for _ in procs:
            _, lat, errs, n_err, n_skipped, cpu = await asyncio.to_thread(queue.get, True, args.seconds + 120)
            latencies += lat
            errors += errs
            error_count += n_err
            skipped += n_skipped
            client_cpu.append(cpu)
        elapsed = time.monotonic() - t0
        cpu1 = _cpu_seconds(server.pid)
        for p in procs:
            p.join(30)
        latencies.sort()
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
        result = {
            "tree": str(tree),
            "inspections": args.inspections,
            "sockets": ready,
            "offered_per_s": args.rate,
            "acked": len(latencies),
            "acked_per_s": round(len(latencies) / args.seconds, 1),
            "p50_ms": round(q[49] * 1000, 1),
            "p99_ms": round(q[98] * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "errors": error_count,
            "not_sent_clients_behind": skipped,
            "server_cores": round((cpu1 - cpu0) / elapsed, 2),
            "server_cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / max(1, len(latencies)), 3),
            "clients": args.clients,
            "client_cores": [round(c / elapsed, 2) for c in client_cpu],
            "loadavg": open("/proc/loadavg").read().split()[:3],
        }
        print(json.dumps(result))
        if errors:
            print("first errors:", errors[:5], file=sys.stderr)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    append = sub.add_parser("append", help="append cost at 100, 1,000 and 10,000 events")
    append.add_argument("--before", default="main", help="git revision of the whole-object log to compare with")
    alone = sub.add_parser("journal", help="Journal.record alone: many logs at a fixed rate")
    alone.add_argument("--inspections", type=int, default=50)
    alone.add_argument("--rate", type=float, default=3000)
    alone.add_argument("--seconds", type=float, default=10)
    sio = sub.add_parser("sio", help="events acknowledged per second through Socket.IO")
    sio.add_argument("--inspections", type=int, default=50)
    sio.add_argument("--rate", type=float, default=3000, help="offered events per second, in total")
    sio.add_argument("--seconds", type=float, default=20)
    sio.add_argument("--clients", type=int, default=2, help="client processes")
    sio.add_argument("--tree", default=str(ROOT), help="the Takan checkout to serve")
    args = parser.parse_args()
    if args.what == "append":
        asyncio.run(bench_append(args.before))
    elif args.what == "journal":
        asyncio.run(bench_journal(args))
    else:
        asyncio.run(bench_sio(args))


if __name__ == "__main__":
    main()
