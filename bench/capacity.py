"""Capacity: server cores per real inspection, next to aiortc's decode+encode relay.

Run from the repository root::

    .venv/bin/python bench/capacity.py            # N = 2, 4, 8; about 3-6 minutes
    .venv/bin/python bench/capacity.py --quick    # N = 2, 8 and shorter windows, < 3 minutes
    .venv/bin/python bench/capacity.py --profile /tmp/takan   # also py-spy the server at the largest N

One run measures, side by side:

1. **Takan, real sessions.** For each N a fresh ``python -m takan serve`` child process
   (embedded default: local object store, in-process state, recording on as always,
   ``TAKAN_INSPECTOR_LOGIN=link``) gets N inspections over the REST API. Each inspection
   has an inspector and an applicant that join as the pages do: a Socket.IO connection with
   the link's token, ``join``, then ``offer``/answer of an aiortc peer connection that sends
   720p VP8 (pre-encoded, 20 fps, ~1.2 Mb/s, honouring keyframe requests like a browser's
   encoder) and Opus (pre-encoded, 20 ms packets) and receives the other side's. While the
   media flows each inspection sends evidence events through Socket.IO: the inspector a
   checklist ``note`` every second and a ``chat`` line every 2 s, the applicant a
   ``location`` every second (2.5 events/s per inspection, each appended to the hash-chained
   log). Clients run in ``--workers`` processes separate from the server; both participants
   of an inspection share a worker, so sent and received frames are counted at one instant.
2. **aiortc's decode+encode relay** (bench/relay.py's ``decode`` mode, imported): one
   720p publisher decoded by aiortc and re-encoded to one subscriber per stream.
3. **Takan's bare relay** (bench/relay.py's ``passthrough`` mode): the same streams through
   MediaRoom/ServerPeer without signaling, recording or audio, as a reference.

Server CPU is utime+stime of the server process from /proc/<pid>/stat, from the window's
start until the pipeline has drained after it, so other engineers' load on the shared
machine does not count (it can still delay us). Loss per stream is the frames missing from
the RTP timestamp sequence its receiver got, plus frames that never came, from the window's
start until DRAIN_S after the publishers stop; a point carries N only without loss, event
errors or a stream under 18 fps in the window. Clients number their packets with
transport-wide sequence numbers as Chromium does. Results go to stdout and bench/results-capacity.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import relay  # noqa: E402  (the CPU accounting, the 720p loop and the decode server)

API_KEY = "bench-capacity-key-0123456789"
RESOLUTION = "1280x720"
NOTE_EVERY_S = 1.0
LOCATION_EVERY_S = 1.0
CHAT_EVERY_S = 2.0
EVENTS_PER_S = 1 / NOTE_EVERY_S + 1 / LOCATION_EVERY_S + 1 / CHAT_EVERY_S
#: RTP timestamp increment per frame of the publishers' loops (20 fps video, 20 ms Opus).
TIMESTAMP_STEP = {"video": 90000 // relay.FPS, "audio": 960}
#: After the window the publishers stop; this long later every frame still coming has come.
DRAIN_S = 3.0
AIMS = {"inspections_per_core": 25.0, "ratio": 8.0}
NOTES_MARKER = "<!-- notes below are kept by bench/capacity.py -->"

log = relay.log


# ---- the client workers (separate processes) ---------------------------------------------


@dataclass
class EventTally:
    acked: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)


class Inspection:
    """An inspector and an applicant of one inspection, with their media and event loops."""

    def __init__(self, base: str, inspection_id: str, inspector_url: str, applicant_url: str) -> None:
        from testkit.sockets import Participant

        self.id = inspection_id
        self.inspector = Participant(base, inspector_url)
        self.applicant = Participant(base, applicant_url)
        self.tally = EventTally()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, video: list[bytes], audio: list[bytes]) -> None:
        for who in (self.inspector, self.applicant):
            if not await who.connect():
                raise RuntimeError(f"{self.id}: Socket.IO connect refused: {who.refused}")
            joined = await who.call("join", {"device": f"bench-{id(who)}"})
            if not joined.get("ok"):
                raise RuntimeError(f"{self.id}: join refused: {joined}")
        await asyncio.gather(
            *(who.start_media(video, audio, fps=relay.FPS, honour_keyframe_requests=True) for who in (self.inspector, self.applicant))
        )

    def flowing(self) -> bool:
        peers = [self.inspector.peer, self.applicant.peer]
        return all(p is not None and p.video_sink.frames > 0 and p.audio_sink.frames > 0 for p in peers)

    def streams(self) -> dict[str, tuple[int, int, int]]:
        """(sent by the publisher, received by the other side, skipped in the received
        sequence) per stream, cumulative."""
        out = {}
        pairs = (("applicant", self.applicant, self.inspector), ("inspector", self.inspector, self.applicant))
        for role, sender, receiver in pairs:
            assert sender.peer is not None and receiver.peer is not None
            for kind in ("video", "audio"):
                track = getattr(sender.peer, f"{kind}_track")
                sink = getattr(receiver.peer, f"{kind}_sink")
                sink.step = TIMESTAMP_STEP[kind]
                out[f"{self.id}/{role}-{kind}"] = (track.frames_sent, sink.frames, sink.skipped)
        return out

    def halt(self) -> None:
        """Stop sending media (the events go on): what is in flight then drains."""
        for who in (self.inspector, self.applicant):
            assert who.peer is not None
            who.peer.video_track.halt()
            who.peer.audio_track.halt()

    def start_events(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._every(NOTE_EVERY_S, 0.0, self.inspector, "note", lambda n: {"text": f"门头招牌清晰 {n}", "checkpoint": "storefront"})),
            asyncio.ensure_future(self._every(LOCATION_EVERY_S, 0.3, self.applicant, "location", lambda n: {"lat": 37.4355, "lon": 116.3594, "accuracy_m": 8})),
            asyncio.ensure_future(self._every(CHAT_EVERY_S, 0.6, self.inspector, "chat", lambda n: {"text": f"请把镜头对准营业执照 {n}"})),
        ]

    async def _every(self, interval: float, offset: float, who: Any, event: str, payload: Any) -> None:
        """Open loop: one event per ``interval``, never bursting to catch up."""
        await asyncio.sleep(offset)
        n = 0
        pending: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        while True:
            n += 1
            task = asyncio.ensure_future(self._one(who, event, payload(n)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))

    async def _one(self, who: Any, event: str, data: Any) -> None:
        t0 = time.monotonic()
        try:
            ack = await who.call(event, data, timeout=20)
        except Exception as exc:
            ack = {"ok": False, "error": repr(exc)}
        if ack.get("ok"):
            self.tally.acked += 1
            self.tally.latencies.append(time.monotonic() - t0)
        else:
            self.tally.errors += 1
            if len(self.tally.first_errors) < 3:
                self.tally.first_errors.append(f"{event}: {ack}"[:200])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for who in (self.inspector, self.applicant):
            try:
                await asyncio.wait_for(who.close(), 5)
            except Exception:
                pass


def worker_main(
    conn: Connection, base: str, jobs: list[tuple[str, str, str]], video: list[bytes], audio: list[bytes], transport_cc: bool
) -> None:
    """A client process: its inspections' participants, answering the parent's commands."""
    relay._die_with_parent()
    import logging

    if transport_cc:
        from testkit.media import enable_transport_cc

        enable_transport_cc()  # as Chromium: the server runs its transport-cc path, not REMB

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_worker(conn, base, jobs, video, audio))
    os._exit(0)  # aiortc's decoder threads are not daemons


async def _worker(conn: Connection, base: str, jobs: list[tuple[str, str, str]], video: list[bytes], audio: list[bytes]) -> None:
    from testkit.media import wait_for

    inspections = [Inspection(base, *job) for job in jobs]
    try:
        # Joins in sequence per worker, as people arrive; the media of each starts at once.
        for inspection in inspections:
            await asyncio.wait_for(inspection.start(video, audio), 60)
        if not await wait_for(lambda: all(i.flowing() for i in inspections), timeout=30):
            stuck = [i.id for i in inspections if not i.flowing()]
            conn.send(("error", f"no media within 30 s for {stuck}"))
            return
        for inspection in inspections:
            inspection.start_events()
        conn.send(("ready", len(inspections)))
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command == "snap":
                streams: dict[str, tuple[int, int, int]] = {}
                tally = EventTally()
                for inspection in inspections:
                    streams.update(inspection.streams())
                    tally.acked += inspection.tally.acked
                    tally.errors += inspection.tally.errors
                    tally.latencies += inspection.tally.latencies
                    tally.first_errors += inspection.tally.first_errors
                    inspection.tally.latencies = []
                conn.send(("snap", streams, tally.acked, tally.errors, tally.latencies, tally.first_errors[:3], time.process_time()))
            elif command == "halt":
                for inspection in inspections:
                    inspection.halt()
                conn.send(("halted",))
            elif command == "stop":
                break
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:300]))
    finally:
        await asyncio.gather(*(i.close() for i in inspections), return_exceptions=True)
        conn.send(("closed",))


# ---- the server process -------------------------------------------------------------------


def kernel_cpu_seconds(pid: int) -> float:
    """stime alone: on loopback a sendto also runs the receiving socket's delivery."""
    return relay.process_times(pid)[1]


#: ``python -c`` for the server: PR_SET_PDEATHSIG (SIGTERM if this benchmark dies, even by
#: SIGKILL), then ``python -m takan`` in the same process, so py-spy's pid is the server's.
#: Not a Popen preexec_fn: that runs Python in the forked child, where freeing an object
#: the fork copied can wait forever on a lock of a thread that is not there (seen: the
#: child hung in swscale's sws_freeContext, a reformatter from the clip's encoding).
_SERVE_DYING_WITH_PARENT = (
    "import ctypes, runpy, signal, sys; "
    "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
    "sys.argv[0] = 'takan'; runpy.run_module('takan', run_name='__main__', alter_sys=True)"
)


class TakanServer:
    """``python -m takan serve`` as an operator runs it, on a fresh data directory, from
    ``tree`` (this checkout by default; another one to compare before and after)."""

    def __init__(self, tree: Path = ROOT) -> None:
        self.tree = tree
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = Path(tempfile.mkdtemp(prefix="takan-capacity-"))
        self.log_path = self.data.with_suffix(".log")
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")}
        env.update(
            {
                "PYTHONPATH": str(self.tree),
                "TAKAN_API_KEY": API_KEY,
                "TAKAN_LOG_LEVEL": "WARNING",
                "TAKAN_API_RATE_PER_MINUTE": "100000",
                "TAKAN_INSPECTOR_LOGIN": "link",  # the link alone: no staff logins in the bench
                "TAKAN_ICE_LOOPBACK": "true",  # every client is on this host
            }
        )
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE_DYING_WITH_PARENT,
                 "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data / "d")],
                cwd=self.tree, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        relay._children.append(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return relay.process_cpu_seconds(self.pid)

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    async def healthy(self, http: Any) -> None:
        from testkit.server import wait_healthy

        await wait_healthy(http, self.base, timeout_s=60)

    async def create(self, http: Any, n: int, tag: str) -> list[tuple[str, str, str]]:
        from testkit.server import inspection_body

        out = []
        for i in range(n):
            body = inspection_body(case_no=f"DZ-2026-{tag}{i:04d}")
            async with http.post(self.base + "/api/v1/inspections", json=body, headers={"Authorization": f"Bearer {API_KEY}"}) as r:
                created = await r.json(content_type=None)
                if r.status != 201:
                    raise RuntimeError(f"creating an inspection failed: {r.status} {created}")
            out.append((created["id"], created["inspector_url"], created["applicant_url"]))
        return out

    async def metrics(self, http: Any) -> dict[str, float]:
        """The counters this benchmark checks (loopback reads /metrics without credentials)."""
        from prometheus_client.parser import text_string_to_metric_families

        async with http.get(self.base + "/metrics") as r:
            text = await r.text()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in ("takan_recorder_segments_total", "takan_event_appends_total", "takan_rooms", "takan_recorder_backlog_segments"):
                    out[sample.name] = out.get(sample.name, 0.0) + sample.value
                elif sample.name == "takan_relay_frames_total":
                    key = f"relay_frames_{sample.labels.get('kind')}"
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in relay._children:
            relay._children.remove(proc)
        shutil.rmtree(self.data, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


def free_port() -> int:
    from testkit.server import free_port as testkit_free_port

    return testkit_free_port()


# ---- one point ------------------------------------------------------------------------------


@dataclass
class TakanPoint:
    inspections: int
    workers: int
    window: float = 0.0
    server_cores: float = float("nan")
    window_cores: float = float("nan")
    kernel_share: float = float("nan")  # of server_cores, in the kernel (stime)
    server_frames_per_s: float = float("nan")  # frames the server's live tracks received, in the window
    client_cores: float = float("nan")
    machine_cores: float = float("nan")
    udp_drops: int = 0
    sent: dict[str, int] = field(default_factory=dict)  # per kind, over the window
    received: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # skipped in the received sequences, summed over streams
    worst_stream: str = ""
    fps_min: float = 0.0
    events_acked: int = 0
    event_errors: int = 0
    event_p50_ms: float = float("nan")
    event_p99_ms: float = float("nan")
    segments: float = 0.0
    appends: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    profile: str = ""
    error: str = ""

    @property
    def streams(self) -> int:
        """Relayed 720p video streams (each inspection relays one each way)."""
        return 2 * self.inspections

    @property
    def lossless(self) -> bool:
        """Every frame arrived, in real time (a server that falls behind does not carry N)."""
        return not self.error and not any(self.lost.values()) and self.event_errors == 0 and self.fps_min >= relay.MIN_FPS

    @property
    def per_inspection(self) -> float:
        return self.server_cores / self.inspections

    @property
    def per_stream(self) -> float:
        return self.server_cores / self.streams

    @property
    def nominal_frames_per_s(self) -> float:
        """What the publishers send: per inspection two 20 fps videos and two 50/s Opus."""
        return self.inspections * 2 * (relay.FPS + 50)

    @property
    def per_inspection_full_rate(self) -> float:
        """Cores per inspection if every frame had been handled: the window's CPU per frame
        the server received, times the frames an inspection sends. When the shared machine
        keeps the server from a core, the window's CPU covers only the frames it got to."""
        if not self.server_frames_per_s or self.server_frames_per_s != self.server_frames_per_s:
            return float("nan")
        return self.window_cores / self.server_frames_per_s * self.nominal_frames_per_s / self.inspections

    @property
    def status(self) -> str:
        if self.error:
            return f"FAILED ({self.error})"
        problems = []
        for kind in ("video", "audio"):
            if self.lost.get(kind):
                problems.append(f"{self.lost[kind]} {kind} frames lost (worst {self.worst_stream})")
        if self.event_errors:
            problems.append(f"{self.event_errors} event errors")
        if self.fps_min < relay.MIN_FPS:
            problems.append(f"starved: slowest stream {self.fps_min:.1f} fps < {relay.MIN_FPS:.0f} in the window")
        return "no loss" if not problems else "LOSS: " + "; ".join(problems)


async def _snap(conns: list[Connection]) -> list[tuple[Any, ...]]:
    for conn in conns:
        conn.send("snap")
    replies = []
    for conn in conns:
        reply = await asyncio.to_thread(conn.recv)
        if reply[0] != "snap":
            raise RuntimeError(f"a worker failed: {reply}")
        replies.append(reply)
    return replies


async def measure_takan(
    n: int, workers: int, warmup: float, window: float, video: list[bytes], audio: list[bytes], http: Any,
    profile: Optional[Path] = None, transport_cc: bool = True, tree: Path = ROOT, gil: bool = False,
) -> TakanPoint:
    point = TakanPoint(n, min(workers, n))
    server = TakanServer(tree)
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    conns: list[Connection] = []
    spy: Optional[subprocess.Popen[bytes]] = None
    try:
        server.start()
        await server.healthy(http)
        jobs = await server.create(http, n, f"{n:02d}")
        for w in range(point.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, server.base, jobs[w :: point.workers], video, audio, transport_cc), daemon=True)
            proc.start()
            procs.append(proc)
            conns.append(parent)
        for conn in conns:
            if not await asyncio.to_thread(conn.poll, 120):
                raise RuntimeError("a worker did not get its inspections flowing within 120 s")
            reply = conn.recv()
            if reply[0] != "ready":
                raise RuntimeError(f"worker: {reply[1] if len(reply) > 1 else reply}")
        await asyncio.sleep(warmup)

        if profile is not None:
            # --nonblocking: py-spy reads the server's memory without pausing it
            spy = subprocess.Popen(
                ["py-spy" if shutil.which("py-spy") else str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid),
                 "--duration", str(int(window)), "--rate", "100", "--nonblocking", "--format", "raw", "-o", str(profile.with_suffix(".txt"))]
                + (["--gil"] if gil else []),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        m0 = await server.metrics(http)
        snaps0 = await _snap(conns)
        udp0 = relay.udp_receive_drops()
        cpu0, sys0, machine0, t0 = server.cpu(), kernel_cpu_seconds(server.pid), relay.machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, machine1, t1 = server.cpu(), relay.machine_busy_seconds(), time.monotonic()
        snaps1 = await _snap(conns)
        point.udp_drops = relay.udp_receive_drops() - udp0
        m1 = await server.metrics(http)
        # Loss: frames missing from the sequence each receiver got (by RTP timestamp, so a
        # late frame is not a lost one), from the window's start until the publishers stop
        # and the pipeline drains; recv/sent over the same span is a cross-check.
        for conn in conns:
            conn.send("halt")
        for conn in conns:
            await asyncio.to_thread(conn.recv)
        await asyncio.sleep(DRAIN_S)
        drained = await _snap(conns)
        cpu2, sys2 = server.cpu(), kernel_cpu_seconds(server.pid)

        elapsed = point.window = t1 - t0
        point.window_cores = (cpu1 - cpu0) / elapsed
        # The server's work for the window's frames, done in it or (a server kept waiting
        # for a core on this shared machine) in the drain after it; the drain's own
        # signaling, events and timers are counted too, so this errs high.
        point.server_cores = (cpu2 - cpu0) / elapsed
        point.kernel_share = (sys2 - sys0) / (cpu2 - cpu0) if cpu2 > cpu0 else float("nan")
        point.machine_cores = (machine1 - machine0) / elapsed
        point.client_cores = sum(b[6] - a[6] for a, b in zip(snaps0, snaps1)) / elapsed
        worst = (0.0, "")
        fps: list[float] = []
        for a, b, c in zip(snaps0, snaps1, drained):
            for name, (sent1, recv1, _) in b[1].items():
                sent0, recv0, skipped0 = a[1][name]
                sent2, recv2, skipped2 = c[1][name]
                kind = name.rsplit("-", 1)[1]
                if kind == "video":
                    fps.append((recv1 - recv0) / elapsed)
                # from the window's start to the drained end
                point.sent[kind] = point.sent.get(kind, 0) + sent2 - sent0
                point.received[kind] = point.received.get(kind, 0) + recv2 - recv0
                # skipped in the sequence, plus frames that never came (the backlog at the
                # window's start, if any, hides as many of those: fps_min shows such a lag)
                never = (sent2 - recv2 - skipped2) - (sent0 - recv0 - skipped0)
                missing = skipped2 - skipped0 + max(0, never)
                point.lost[kind] = point.lost.get(kind, 0) + missing
                if missing > worst[0]:
                    worst = (missing, f"{name}: {missing} of {sent2 - sent0}")
            point.events_acked += b[2] - a[2]
            point.event_errors += b[3] - a[3]
            point.first_errors += b[5]
        latencies = sorted(x for b in snaps1 for x in b[4])
        if latencies:
            point.event_p50_ms = relay.percentile(latencies, 50) * 1000
            point.event_p99_ms = relay.percentile(latencies, 99) * 1000
        point.fps_min = min(fps) if fps else 0.0
        point.worst_stream = worst[1]
        relayed = sum(m1.get(f"relay_frames_{k}", 0) - m0.get(f"relay_frames_{k}", 0) for k in ("video", "audio"))
        point.server_frames_per_s = relayed / elapsed
        point.segments = m1.get("takan_recorder_segments_total", 0) - m0.get("takan_recorder_segments_total", 0)
        point.appends = m1.get("takan_event_appends_total", 0) - m0.get("takan_event_appends_total", 0)
        if spy is not None:
            await asyncio.to_thread(spy.wait, 30)
            point.profile = str(profile.with_suffix(".txt")) if profile else ""
        return point
    except Exception as exc:
        point.error = f"{type(exc).__name__}: {exc}"[:300]
        log(f"takan x{n} failed: {point.error}\n{server.tail()}")
        return point
    finally:
        if spy is not None and spy.poll() is None:
            spy.terminate()
        for conn in conns:
            try:
                conn.send("stop")
            except OSError:
                pass
        for conn in conns:
            try:
                if await asyncio.to_thread(conn.poll, 20):
                    while conn.recv()[0] != "closed":
                        pass
            except (EOFError, OSError):
                pass
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
        server.stop()


# ---- the run --------------------------------------------------------------------------------


@dataclass
class Plan:
    inspections: tuple[int, ...]
    decode_streams: tuple[int, ...]
    passthrough_streams: tuple[int, ...]
    warmup: float
    window: float
    workers: int


FULL = Plan(inspections=(2, 4, 8), decode_streams=(2,), passthrough_streams=(8,), warmup=5, window=20, workers=3)
QUICK = Plan(inspections=(2, 8), decode_streams=(2,), passthrough_streams=(), warmup=4, window=10, workers=2)


@dataclass
class Results:
    plan: Plan
    quick: bool
    started: datetime.datetime
    encoded: dict[str, float] = field(default_factory=dict)
    takan: list[TakanPoint] = field(default_factory=list)
    relay: list[Any] = field(default_factory=list)  # bench.relay.CpuPoint
    duration: float = 0.0
    load_before: str = ""
    load_after: str = ""


async def run(
    plan: Plan, quick: bool, only: Optional[tuple[int, ...]], profile: Optional[Path], skip_relay: bool, transport_cc: bool = True,
    tree: Path = ROOT, gil: bool = False,
) -> Results:
    import aiohttp

    from testkit.media import encode_opus, encode_vp8

    results = Results(plan, quick, datetime.datetime.now().astimezone(), load_before=relay.load_average())
    t_start = time.monotonic()
    width, height, bitrate = relay.RESOLUTIONS[RESOLUTION]
    log(f"encoding {relay.LOOP_FRAMES} frames at {RESOLUTION}, {bitrate // 1000} kb/s, and 3 s of Opus")
    loop = asyncio.get_running_loop()
    video = await loop.run_in_executor(
        None, lambda: encode_vp8(width, height, frames=relay.LOOP_FRAMES, fps=relay.FPS, bitrate=bitrate, detail=relay.DETAIL)
    )
    audio = await loop.run_in_executor(None, lambda: encode_opus(3.0))
    results.encoded = {
        "video_kbps": sum(map(len, video)) * 8 * relay.FPS / len(video) / 1000,
        "audio_kbps": sum(map(len, audio)) * 8 * 50 / len(audio) / 1000,
    }
    counts = only or plan.inspections
    async with aiohttp.ClientSession() as http:
        for n in counts:
            log(f"Takan: {n} inspections ({2 * n} participants, {min(plan.workers, n)} client processes), warm-up {plan.warmup:g} s, window {plan.window:g} s")
            spy = profile if (profile is not None and n == max(counts)) else None
            point = await measure_takan(n, plan.workers, plan.warmup, plan.window, video, audio, http, spy, transport_cc, tree, gil)
            results.takan.append(point)
            log(
                f"  server {point.server_cores:.3f} cores = {point.per_inspection:.4f}/inspection, {point.per_stream:.4f}/stream; "
                f"clients {point.client_cores:.2f}, machine {point.machine_cores:.2f}; events {point.events_acked} acked; {point.status}"
            )
        if not skip_relay:
            for mode, streams in (("decode", plan.decode_streams), ("passthrough", plan.passthrough_streams)):
                for n in streams:
                    for attempt in range(1, relay.MAX_ATTEMPTS + 1):  # a starved point is kept and retried, as relay.py does
                        if attempt > 1:
                            await asyncio.sleep(relay.RETRY_PAUSE_S)
                        log(f"bench/relay.py {mode} {RESOLUTION} x{n} (warm-up {plan.warmup:g} s, window {plan.window:g} s), attempt {attempt}")
                        cpu = await relay.measure_cpu(mode, RESOLUTION, n, video, plan.warmup, plan.window, http)
                        cpu.attempt = attempt
                        results.relay.append(cpu)
                        log(f"  server {cpu.server_cores:.3f} cores = {cpu.per_stream:.4f}/stream, fps min {cpu.fps_min:.1f}: {cpu.status}")
                        if cpu.ok:
                            break
    results.duration = time.monotonic() - t_start
    results.load_after = relay.load_average()
    return results


# ---- report ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 3) -> str:
    return relay.fmt(value, digits)


def derive(results: Results) -> dict[str, Any]:
    out: dict[str, Any] = {}
    good = [p for p in results.takan if p.lossless]
    if good:
        best = max(good, key=lambda p: p.inspections)
        out["best"] = best
        out["per_core"] = 1 / best.per_inspection if best.per_inspection > 0 else float("inf")
    ordered = sorted((p for p in results.takan if not p.error), key=lambda p: p.inspections)
    if len(ordered) >= 2 and ordered[-1].inspections > ordered[0].inspections:
        lo, hi = ordered[0], ordered[-1]
        lossy = [q.inspections for q in (lo, hi) if not q.lossless]
        out["marginal"] = ((hi.server_cores - lo.server_cores) / (hi.inspections - lo.inspections), lo.inspections, hi.inspections, lossy)
    measured = [p for p in results.takan if not p.error and p.per_inspection_full_rate == p.per_inspection_full_rate]
    if measured:
        top = max(measured, key=lambda p: p.inspections)
        out["full_rate"] = top
    dec = [p for p in results.relay if p.mode == "decode" and p.ok]
    if dec:
        d = max(dec, key=lambda p: p.streams)
        out["decode"] = d
        if "best" in out and out["best"].per_stream > 0:
            out["ratio"] = d.per_stream / out["best"].per_stream
        if "full_rate" in out:
            out["ratio_full_rate"] = d.per_stream / (out["full_rate"].per_inspection_full_rate / 2)
    bare = [p for p in results.relay if p.mode == "passthrough" and p.ok]
    if bare:
        out["bare"] = max(bare, key=lambda p: p.streams)
    return out


def render(results: Results) -> tuple[str, str]:
    v = relay.versions()
    d = derive(results)
    plan = results.plan
    md: list[str] = []
    txt: list[str] = []
    md.append(f"## Capacity benchmark, {results.started:%Y-%m-%d %H:%M %Z}{' (--quick)' if results.quick else ''}")
    md.append("")
    md.append(
        f"Machine: nproc {v['nproc']} ({v['cpu']}), Linux {v['kernel']}; Python {v['python']}, aiortc {v['aiortc']}, "
        f"PyAV {v['av']}. Run took {results.duration:.0f} s; load average {results.load_before} before, "
        f"{results.load_after} after (the machine is shared with other engineers)."
    )
    md.append("")
    md.append(
        f"Each inspection: inspector and applicant join through Socket.IO (`join`, `offer`/answer) from "
        f"{plan.workers} client processes; each sends {RESOLUTION} VP8 at {relay.FPS} fps "
        f"({results.encoded.get('video_kbps', 0):.0f} kb/s, pre-encoded) and Opus ({results.encoded.get('audio_kbps', 0):.0f} kb/s) "
        f"and receives the other's; the server records all four tracks; {EVENTS_PER_S:g} evidence events/s per inspection "
        f"(`note` 1/s, `location` 1/s, `chat` 0.5/s). Server CPU = utime+stime of the `takan serve` process from the start of a "
        f"{plan.window:g} s window (after {plan.warmup:g} s of warm-up) until the pipeline has drained after it, per second of "
        f"the window (it errs high: the drain's own signaling and events count too; the window alone is in brackets). 'lost' = frames missing from the sequence a "
        f"receiver got (by RTP timestamp, so a late frame is not a lost one), from the window's start until the "
        f"publishers stop and {DRAIN_S:g} s more; 'recv/sent' counts the same span (received can exceed sent by the "
        f"frames that were in flight at the start). Clients send transport-wide sequence numbers as Chromium does "
        f"(`testkit.media.enable_transport_cc`), so the server runs its transport-cc feedback, not aiortc's REMB estimator."
    )
    md.append("")
    md.append("### Takan, real sessions")
    md.append("")
    md.append(
        "| inspections | relayed 720p streams | server cores | (in the window alone) | kernel share | cores/inspection | cores/stream | server got (of sent) | cores/inspection at full rate | video recv/sent | audio recv/sent | "
        "slowest stream fps | events acked (p50 / p99 ms) | segments stored | client cores | machine cores | UDP drops | status |"
    )
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    head = f"{'N':>3}{'streams':>8}{'srv cores':>11}{'/insp':>9}{'/stream':>9}{'video r/s':>15}{'audio r/s':>15}{'fps min':>8}{'events':>8}{'segs':>6}{'client':>8}{'machine':>8}  status"
    txt += ["Takan, real sessions (CPU-seconds per wall-second)", head, "-" * len(head)]
    for p in results.takan:
        video = f"{p.received.get('video', 0)}/{p.sent.get('video', 0)}"
        audio = f"{p.received.get('audio', 0)}/{p.sent.get('audio', 0)}"
        md.append(
            f"| {p.inspections} | {p.streams} | {fmt(p.server_cores)} | {fmt(p.window_cores)} | {p.kernel_share:.0%} | {fmt(p.per_inspection, 4)} | {fmt(p.per_stream, 4)} | "
            f"{p.server_frames_per_s / p.nominal_frames_per_s:.0%} | {fmt(p.per_inspection_full_rate, 4)} | {video} | {audio} | {p.fps_min:.1f} | {p.events_acked} ({fmt(p.event_p50_ms, 0)} / {fmt(p.event_p99_ms, 0)}) | "
            f"{p.segments:.0f} | {fmt(p.client_cores, 2)} | {fmt(p.machine_cores, 2)} | {p.udp_drops} | {p.status} |"
        )
        txt.append(
            f"{p.inspections:>3}{p.streams:>8}{fmt(p.server_cores):>11}{fmt(p.per_inspection, 4):>9}{fmt(p.per_stream, 4):>9}"
            f"{video:>15}{audio:>15}{p.fps_min:>8.1f}{p.events_acked:>8}{p.segments:>6.0f}{fmt(p.client_cores, 2):>8}"
            f"{fmt(p.machine_cores, 2):>8}  {p.status}"
        )
        if p.first_errors:
            md.append(f"| | first event errors: {'; '.join(p.first_errors)[:300]} |")
    md.append("")
    txt.append("")
    if results.relay:
        md.append("### Same run: bench/relay.py's servers (one 720p publisher to one subscriber per stream, video only)")
        md.append("")
        md.append("| server | streams | server cores | cores/stream | fps min / mean | kb/s/subscriber | decodes/s | encodes/s | status |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        txt.append("Same run, bench/relay.py servers")
        for c in results.relay:
            label = "aiortc decode+encode (MediaRelay)" if c.mode == "decode" else "Takan bare relay (no signaling, audio, recording)"
            md.append(
                f"| {label} | {c.streams} | {fmt(c.server_cores)} | {fmt(c.per_stream, 4)} | {c.fps_min:.1f} / {c.fps_mean:.1f} | "
                f"{c.kbps_mean:.0f} | {c.decodes_per_s:.0f} | {c.encodes_per_s:.0f} | {c.status} |"
            )
            txt.append(f"  {label:<52} x{c.streams:<3} {fmt(c.server_cores)} cores = {fmt(c.per_stream, 4)}/stream  {c.status}")
        md.append("")
        txt.append("")
    md.append("### Derived")
    md.append("")
    lines: list[str] = []
    if "best" in d:
        b = d["best"]
        lines.append(
            f"Largest N measured without frame loss: {b.inspections} inspections ({b.streams} relayed 720p video streams + "
            f"{b.streams} audio), {fmt(b.server_cores)} server cores: {fmt(b.per_inspection, 4)} cores per inspection, "
            f"{fmt(b.per_stream, 4)} per relayed video stream (its audio, recording and events included)."
        )
        lines.append(
            f"Inspections per core, extrapolated linearly from N={b.inspections} (not measured: one core was not given to "
            f"{d['per_core']:.0f} inspections on this 2-core machine): {d['per_core']:.0f}."
        )
    else:
        lines.append("No point ran without frame loss.")
    if "marginal" in d:
        slope, lo, hi, lossy = d["marginal"]
        lines.append(
            f"Each inspection added between N={lo} and N={hi} cost {slope:.4f} cores"
            + (f" ({1 / slope:.0f} per core by that slope)" if slope > 0 else "")
            + (f"; N={', '.join(map(str, lossy))} did not carry, so this is a lower bound" if lossy else "")
            + "."
        )
    if "full_rate" in d:
        f = d["full_rate"]
        lines.append(
            f"From the CPU per frame the server handled at N={f.inspections} (it got {f.server_frames_per_s / f.nominal_frames_per_s:.0%} "
            f"of the frames sent in the window): {fmt(f.per_inspection_full_rate, 4)} cores per inspection at the full rate, "
            f"{1 / f.per_inspection_full_rate:.0f} inspections per core (an extrapolation: it assumes the cost per frame stays "
            f"as measured when the server gets the core it needs)."
        )
    if "decode" in d:
        c = d["decode"]
        lines.append(f"aiortc decode+encode relay, same run: {fmt(c.per_stream, 4)} cores per 720p stream (x{c.streams}).")
    if "ratio" in d:
        lines.append(f"Ratio, aiortc decode+encode per stream / Takan per relayed stream in a real session: {d['ratio']:.1f}x.")
    if "ratio_full_rate" in d:
        lines.append(
            f"Ratio against Takan's full-rate estimate at N={d['full_rate'].inspections} "
            f"({fmt(d['full_rate'].per_inspection_full_rate / 2, 4)} cores per relayed stream): {d['ratio_full_rate']:.1f}x."
        )
    if "bare" in d and "best" in d:
        c = d["bare"]
        lines.append(
            f"Takan's bare relay (bench/relay.py pass-through x{c.streams}, video only): {fmt(c.per_stream, 4)} cores per "
            f"stream; a real session's stream costs {d['best'].per_stream / c.per_stream:.1f}x that (audio, recording, "
            f"Socket.IO and the evidence log)."
        )
    for line in lines:
        md.append(f"- {line}")
        txt.append(line)
    md.append("")
    txt.append("")
    md.append("### Against the aims")
    md.append("")
    txt.append("Against the aims")
    verdicts = []
    if "per_core" in d:
        ok = d["per_core"] >= AIMS["inspections_per_core"]
        verdicts.append(f"Inspections per core (extrapolated from N={d['best'].inspections}): {d['per_core']:.0f}: {'**met**' if ok else '**not met**'} (aim >= {AIMS['inspections_per_core']:.0f}).")
    if "ratio" in d:
        ok = d["ratio"] >= AIMS["ratio"]
        verdicts.append(f"CPU per relayed 720p stream, aiortc decode+encode / Takan: {d['ratio']:.1f}x: {'**met**' if ok else '**not met**'} (aim >= {AIMS['ratio']:.0f}x).")
    if "per_core" not in d:
        verdicts.append(
            f"Inspections per core: **not shown** (aim >= {AIMS['inspections_per_core']:.0f}): no N ran without loss in this run"
            + (f"; the full-rate estimate gives {1 / d['full_rate'].per_inspection_full_rate:.0f}" if "full_rate" in d else "")
            + "."
        )
    if "ratio" not in d and "ratio_full_rate" in d:
        ok = d["ratio_full_rate"] >= AIMS["ratio"]
        verdicts.append(
            f"CPU per relayed 720p stream, aiortc decode+encode / Takan's full-rate estimate: {d['ratio_full_rate']:.1f}x: "
            f"{'**met**' if ok else '**not met**'} by that estimate (aim >= {AIMS['ratio']:.0f}x; no lossless point to judge on)."
        )
    for line in verdicts:
        md.append(f"- {line}")
        txt.append("  " + line.replace("**", ""))
    md.append("")
    return "\n".join(txt), "\n".join(md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 2 and 8, shorter windows (< 3 minutes)")
    parser.add_argument("--inspections", type=int, nargs="+", help="run only these N")
    parser.add_argument("--workers", type=int, help="client processes (default 3, --quick 2)")
    parser.add_argument("--window", type=float, help="measurement window, s")
    parser.add_argument("--no-relay", action="store_true", help="skip bench/relay.py's servers")
    parser.add_argument("--tree", type=Path, default=ROOT, help="run the server from this checkout (compare before/after)")
    parser.add_argument("--gil", action="store_true", help="with --profile: sample only the thread holding the GIL")
    parser.add_argument("--remb", action="store_true", help="clients without transport-cc (aiortc's default): the server runs REMB")
    parser.add_argument("--profile", type=Path, help="py-spy the server during the largest N's window: PATH.txt (collapsed stacks)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-capacity.md", help="Markdown results file ('-': none)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = QUICK if args.quick else FULL
    if args.workers or args.window:
        plan = Plan(plan.inspections, plan.decode_streams, plan.passthrough_streams, plan.warmup, args.window or plan.window, args.workers or plan.workers)

    async def guarded() -> Results:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        return await run(plan, args.quick, tuple(args.inspections) if args.inspections else None, args.profile, args.no_relay, not args.remb, args.tree.resolve(), args.gil)

    code = 0
    try:
        results = asyncio.run(guarded())
        table, markdown = render(results)
        print(table, flush=True)
        if str(args.out) != "-":
            # the hand-written notes below the marker (the profile, what changed) survive a re-run
            kept = ""
            if args.out.exists() and NOTES_MARKER in (old := args.out.read_text()):
                kept = "\n" + old[old.index(NOTES_MARKER):]
            args.out.write_text(markdown + "\n" + kept)
            log(f"wrote {args.out}")
        print(json.dumps({"takan": [{"n": p.inspections, "server_cores": p.server_cores, "lossless": p.lossless} for p in results.takan]}), file=sys.stderr)
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        code = 130
    except Exception:
        logging.exception("benchmark failed")
        code = 1
    finally:
        relay._kill_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
