"""Field media benchmark: the applicant's phone on a poor mobile network, Takan vs direct P2P.

Run as root from the repository root (needs ip, tc, nft: ``scripts/install.sh``)::

    .venv/bin/python bench/field_media.py                 # both systems, every condition
    .venv/bin/python bench/field_media.py --quick         # shorter windows
    .venv/bin/python bench/field_media.py --server-root ../main   # measure another checkout's server and pages
    .venv/bin/python bench/field_media.py --only takan --out /tmp/t.json

One run, one shaped link (``testkit/netlab``): the *applicant* Chromium runs inside a network
namespace (the phone), the *inspector* Chromium on the host (``--shaped inspector`` swaps
them: the inspector on the weak link, the lossy condition capping what it receives). Two systems go over the same
link one after the other:

* ``takan``: a Takan server (``python -m takan serve`` from ``--server-root``, its own
  process) on the host; the applicant opens ``/join``, the inspector ``/console``; the
  inspector's video comes through Takan's relay.
* ``p2p``: the anchor. Two plain pages (served by this script) connect directly, libwebrtc
  at both ends, each sending its camera to the other as in a Takan session (same CPU
  work: two 720p encodes and two decodes), with the same camera constraints as Takan's
  pages (1280x720, 30 fps ideal); this script relays their SDP and trickled candidates
  (also after an address change), so the anchor's signalling never fails.

Conditions, in order, per system (after a warm-up on the clean link):

1. ``clean``: no shaping;
2. ``lossy``: applicant uplink 400 kbit/s (tbf, 8 kB burst, 300 ms queue) and 5 % random
   UDP loss in both directions;
3. ``outage``: clean link, then 8 s in which nothing gets through;
4. ``address``: clean link, the namespace's address changes (old sockets dead).

For each, the inspector's received video (``inbound-rtp``, sampled every 100 ms, summed
over peer-connection rebuilds): frames per second, Chromium's freeze count and freeze
seconds, frame height (median, min-max), the mean time a frame waited in the receiver's
jitter buffer (``jitterBufferDelay / jitterBufferEmittedCount`` over the phase: the
playout delay Chromium chose, lip-sync hold included), and for outage / address change the seconds from
the end of the disruption to the first freshly decoded frame. The applicant side's sent
resolution, fps, quality limitation and target bitrate are recorded too.
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testkit.netlab import NetLab, Shape  # noqa: E402
from testkit.server import inspection_body, wait_healthy  # noqa: E402

API_KEY = "bench-api-key-0123456789abcdef"
LOSSY = Shape(rate_kbit=400, burst_bytes=8000, latency_ms=300)
LOSS_PERCENT = 5.0
OUTAGE_S = 8.0

# Inbound video of the page's current peer connection; a new pc gets a new id.
INBOUND = """async (which) => {
  const pc = which === "takan" ? window.takan?.session?.pc : window.anchorPc;
  if (!pc) return null;
  pc.__benchId ??= Math.random().toString(36).slice(2);
  let out = null, audio = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && (s.kind ?? s.mediaType) === "video") {
      out = { pc: pc.__benchId, frames: s.framesDecoded ?? 0, height: s.frameHeight ?? 0,
              freezes: s.freezeCount ?? 0, freezeS: s.totalFreezesDuration ?? 0,
              nacks: s.nackCount ?? 0, plis: s.pliCount ?? 0, lost: s.packetsLost ?? 0,
              jbDelay: s.jitterBufferDelay ?? 0, jbEmitted: s.jitterBufferEmittedCount ?? 0 };
    }
    if (s.type === "inbound-rtp" && (s.kind ?? s.mediaType) === "audio") audio += s.packetsReceived ?? 0;
  });
  if (out) out.audio = audio;
  return out;
}"""

OUTBOUND = """async (which) => {
  const pc = which === "takan" ? window.takan?.session?.pc : window.anchorPc;
  if (!pc) return null;
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && (s.kind ?? s.mediaType) === "video") {
      Object.assign(out, { height: s.frameHeight, fps: s.framesPerSecond, limit: s.qualityLimitationReason,
                           target: s.targetBitrate, nacks: s.nackCount, retransmitted: s.retransmittedPacketsSent });
    }
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) out.available = s.availableOutgoingBitrate;
  });
  return out;
}"""

ANCHOR_PAGE = """<!doctype html><meta charset="utf-8"><title>p2p anchor</title>
<video id="v" autoplay playsinline muted></video>
<script>
window.outCands = [];
window.anchorLog = [];
function wire(pc) {
  window.anchorPc = pc;
  pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) outCands.push(e.candidate.toJSON()); };
  pc.onconnectionstatechange = () => anchorLog.push([Date.now(), pc.connectionState]);
}
const camera = () => navigator.mediaDevices.getUserMedia({ audio: true,
  video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } } });
async function prefer(pc, degradation) {
  if (!degradation) return;
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
  const p = sender.getParameters(); p.degradationPreference = degradation; await sender.setParameters(p);
}
// Both ends send their camera, as in a Takan session (the inspector's goes to the applicant).
window.startSender = async (degradation) => {
  const stream = await camera();
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  wire(pc);
  pc.ontrack = (e) => { document.getElementById("v").srcObject = e.streams[0]; };
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  await prefer(pc, degradation);
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.toJSON();
};
window.startReceiver = async (offer, degradation) => {
  const stream = await camera();
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  wire(pc);
  pc.ontrack = (e) => { document.getElementById("v").srcObject = e.streams[0]; };
  await pc.setRemoteDescription(offer);
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  await prefer(pc, degradation);
  await pc.setLocalDescription(await pc.createAnswer());
  return pc.localDescription.toJSON();
};
window.accept = (answer) => anchorPc.setRemoteDescription(answer);
window.takeCands = () => outCands.splice(0);
window.addCands = async (list) => { for (const c of list) { try { await anchorPc.addIceCandidate(c); } catch (e) {} } };
</script>"""


@dataclass
class Sample:
    t: float
    frames: int
    height: int
    freezes: int
    freeze_s: float
    nacks: int
    plis: int
    audio: int = 0  # audio packets received
    jb_delay: float = 0.0  # jitterBufferDelay: seconds frames spent in the jitter buffer, summed
    jb_emitted: int = 0  # jitterBufferEmittedCount: frames that left it


@dataclass
class Meter:
    """Samples a page's inbound video; counters continue across peer-connection rebuilds."""

    page: Any
    which: str
    samples: list[Sample] = field(default_factory=list)
    _pc: Optional[str] = None
    _base: dict[str, float] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)

    async def run(self) -> None:
        keys = ("frames", "freezes", "freezeS", "nacks", "plis", "audio", "jbDelay", "jbEmitted")
        while True:
            try:
                raw = await self.page.evaluate(INBOUND, self.which)
            except Exception:
                raw = None
            now = time.monotonic()
            if raw is not None:
                if raw["pc"] != self._pc:
                    self._pc = raw["pc"]
                    self._base = {k: self._last.get(k, 0.0) for k in keys}
                values = {k: self._base.get(k, 0.0) + float(raw.get(k, 0)) for k in keys}
                self._last = values
                self.samples.append(Sample(now, int(values["frames"]), int(raw["height"]), int(values["freezes"]),
                                           values["freezeS"], int(values["nacks"]), int(values["plis"]), int(values["audio"]),
                                           values["jbDelay"], int(values["jbEmitted"])))
            elif self._last:
                s = self.samples[-1] if self.samples else None
                if s is not None:
                    self.samples.append(Sample(now, s.frames, 0, s.freezes, s.freeze_s, s.nacks, s.plis, s.audio,
                                               s.jb_delay, s.jb_emitted))
            await asyncio.sleep(0.1)

    def dump(self, name: str) -> None:
        """With ``TAKAN_BENCH_TRACE=DIR``: every sample as a JSON line in DIR/NAME.jsonl, its
        time as wall-clock seconds (to lay freezes beside the server's log)."""
        folder = os.environ.get("TAKAN_BENCH_TRACE")
        if not folder:
            return
        offset = time.time() - time.monotonic()
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / f"{name}.jsonl", "w") as out:
            for s in self.samples:
                out.write(json.dumps({**s.__dict__, "t": round(s.t + offset, 3)}) + "\n")

    def window(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]

    def at(self, t: float) -> Sample:
        before = [s for s in self.samples if s.t <= t]
        return before[-1] if before else self.samples[0]

    def summary(self, t0: float, t1: float) -> dict[str, Any]:
        a, b = self.at(t0), self.at(t1)
        heights = [s.height for s in self.window(t0, t1) if s.height]
        return {
            "seconds": round(b.t - a.t, 1),
            "fps": round((b.frames - a.frames) / max(b.t - a.t, 1e-6), 1),
            "freezes": b.freezes - a.freezes,
            "freeze_s": round(b.freeze_s - a.freeze_s, 1),
            "height_p50": int(statistics.median(heights)) if heights else 0,
            "height_min": min(heights) if heights else 0,
            "height_max": max(heights) if heights else 0,
            "nacks": b.nacks - a.nacks,
            "plis": b.plis - a.plis,
            "audio_gap_s": self.audio_gap(t0, t1),
            # what a frame waited in the receiver's jitter buffer, on average: the playout
            # delay the receiver chose (its jitter estimate, plus any lip-sync hold)
            "video_delay_ms": (round(1000 * (b.jb_delay - a.jb_delay) / (b.jb_emitted - a.jb_emitted))
                               if b.jb_emitted > a.jb_emitted else None),
        }

    def audio_gap(self, t0: float, t1: float) -> float:
        """The longest time in [t0, t1] without a new audio packet (the 100 ms sampling is the resolution)."""
        window = self.window(t0, t1)
        times = [b.t for a, b in zip(window, window[1:]) if b.audio > a.audio]
        edges = [t0, *times, t1]
        return round(max((b - a for a, b in zip(edges, edges[1:])), default=0.0), 1)

    def fresh_after(self, t_event: float, t_end: float, stall_s: float = 0.5, within_s: float = 15.0) -> Optional[float]:
        """Seconds from ``t_event`` (outage end, address change) to fresh video.

        A stall is ``stall_s`` or more without a newly decoded frame. Of the stalls that end
        after ``t_event`` and start before ``t_event + within_s`` (an outage's began before
        its end; an address change's a little after it), the longest counts: the answer is
        its end (the first fresh frame) measured from ``t_event``; 0.0 if there was none;
        None if it never ended before ``t_end``.
        """
        increases = [s.t for prev, s in zip(self.samples, self.samples[1:]) if s.frames > prev.frames and s.t <= t_end]
        stalls: list[tuple[float, float, Optional[float]]] = []  # (length, start, end)
        for a, b in zip(increases, increases[1:]):
            if b - a >= stall_s:
                stalls.append((b - a, a, b))
        last = increases[-1] if increases else t_event - within_s
        if t_end - last >= stall_s:
            stalls.append((t_end - last, last, None))
        relevant = [st for st in stalls if (st[2] is None or st[2] > t_event) and st[1] < t_event + within_s]
        if not relevant:
            return 0.0
        ongoing = [st for st in relevant if st[1] <= t_event]  # an outage's own stall
        _, _, end = ongoing[0] if ongoing else max(relevant, key=lambda st: st[0])
        return None if end is None else round(end - t_event, 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def takan_server(root: Path, host_ip: str, data_dir: Path) -> AsyncIterator[str]:
    port = free_port()
    base = f"http://{host_ip}:{port}"
    env = {**os.environ, "TAKAN_API_KEY": API_KEY, "TAKAN_WEBHOOK_SECRET": "bench-webhook-secret",
           "PYTHONPATH": str(root), "TAKAN_INSPECTOR_LOGIN": "link"}  # the link alone: no staff logins in the bench
    log = open(os.environ.get("TAKAN_BENCH_SERVER_LOG", str(data_dir.parent / "server.log")), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "takan", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--data-dir", str(data_dir), "--public-url", base, "--log-level", "INFO"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            try:
                await wait_healthy(http, base, 30)
            except AssertionError:
                raise RuntimeError(f"the Takan server did not start; see {log.name}") from None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.asynccontextmanager
async def anchor_site(host_ip: str) -> AsyncIterator[str]:
    async def anchor(request: web.Request) -> web.Response:
        return web.Response(text=ANCHOR_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/anchor", anchor)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "0.0.0.0", port)
    await site.start()
    try:
        yield f"http://{host_ip}:{port}"
    finally:
        await runner.cleanup()


async def create_inspection(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/api/v1/inspections", json=inspection_body(),
                             headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            body = await r.json(content_type=None)
            if r.status != 201:
                raise RuntimeError(f"creating the inspection failed: {r.status} {body}")
            return body


async def wait_frames(meter: Meter, at_least: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if meter.samples and meter.samples[-1].frames >= at_least:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{meter.which}: the inspector decoded no video within {timeout_s:.0f} s")


async def relay_candidates(a: Any, b: Any) -> None:
    while True:
        for src, dst in ((a, b), (b, a)):
            try:
                cands = await src.evaluate("window.takeCands()")
                if cands:
                    await dst.evaluate("(c) => window.addCands(c)", cands)
            except Exception:
                pass
        await asyncio.sleep(0.2)


CONDITIONS = ("clean", "lossy", "outage", "address")


@dataclasses.dataclass(frozen=True)
class Plan:
    quick: bool
    conditions: tuple[str, ...] = CONDITIONS
    # The lossy condition's shaping of the shaped browser's link (the namespace's side):
    # its uplink (what it sends) and downlink (what it receives).
    uplink: Optional[Shape] = LOSSY
    downlink: Optional[Shape] = None
    #: Whose browser is in the namespace: the applicant's (the phone, the issue's case) or
    #: the inspector's (the subscriber's leg: the inspector on a weak link).
    shaped: str = "applicant"
    loss_percent: float = LOSS_PERCENT
    outage_s: float = OUTAGE_S
    #: The lossy condition's length (None: 20 s with --quick, else 30): a longer one counts
    #: freezes over more of them (one window's count is a handful, and varies run to run).
    lossy_s: Optional[float] = None

    def describe(self) -> str:
        links = [f"{name} {shape.rate_kbit} kbit/s" for name, shape in (("uplink", self.uplink), ("downlink", self.downlink)) if shape]
        return (f"{self.shaped} shaped; lossy = {self.shaped} {' + '.join(links) or 'unshaped'} + {self.loss_percent:g} % UDP loss "
                f"both ways; outage {self.outage_s:g} s" + (f"; lossy for {self.lossy_s:g} s" if self.lossy_s else ""))


async def run_conditions(lab: NetLab, meter: Meter, applicant: Any, which: str, plan: Plan) -> dict[str, Any]:
    conditions = plan.conditions
    clean_s, lossy_s, after_s = (10, 20.0, 15) if plan.quick else (20, 30.0, 25)
    lossy_s = plan.lossy_s or lossy_s
    results: dict[str, Any] = {}

    async def sender() -> Any:
        try:
            return await applicant.evaluate(OUTBOUND, which)
        except Exception as exc:
            return {"error": str(exc)[:80]}

    lab.clear()
    t0 = time.monotonic()
    await asyncio.sleep(clean_s)
    results["clean"] = {**meter.summary(t0, time.monotonic()), "sender": await sender()}

    if "lossy" in conditions:
        lab.shape(uplink=plan.uplink, downlink=plan.downlink)
        lab.loss(plan.loss_percent)
        t0, shaped_at = time.monotonic(), time.time()
        await asyncio.sleep(lossy_s)
        # shaped_at (wall clock) lays the condition beside the server's log (audio first, caps)
        results["lossy"] = {**meter.summary(t0, time.monotonic()), "sender": await sender(),
                            "shaped_at": round(shaped_at, 3)}
        lab.clear()
        await asyncio.sleep(10)  # back to clean before the outage

    if "outage" in conditions:
        t_start = time.monotonic()
        lab.outage(True)
        await asyncio.sleep(plan.outage_s)
        lab.outage(False)
        t_restore = time.monotonic()
        await asyncio.sleep(after_s)
        t_end = time.monotonic()
        results["outage"] = {**meter.summary(t_start, t_end), "fresh_s": meter.fresh_after(t_restore, t_end),
                             "sender": await sender()}
        await asyncio.sleep(5)

    if "address" in conditions:
        t_change = time.monotonic()
        new_ip = lab.change_address()
        await asyncio.sleep(after_s)
        t_end = time.monotonic()
        results["address"] = {**meter.summary(t_change, t_end), "fresh_s": meter.fresh_after(t_change, t_end),
                              "new_ip": new_ip, "changed_at": round(t_change, 1), "sender": await sender()}
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| condition | system | fps | freezes | freeze s | height p50 (min-max) | fresh video s | longest audio gap s | jitter buffer ms | sender: height, fps, limit, target kb/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for condition in ("clean", "lossy", "outage", "address"):
        for system, res in results.items():
            r = res.get(condition)
            if r is None:
                continue
            s = r.get("sender") or {}
            target = s.get("target")
            sender = f"{s.get('height')}, {s.get('fps')}, {s.get('limit')}, {round(target / 1000) if target else '-'}"
            fresh = r.get("fresh_s")
            lines.append(
                f"| {condition} | {system} | {r['fps']} | {r['freezes']} | {r['freeze_s']} | "
                f"{r['height_p50']} ({r['height_min']}-{r['height_max']}) | "
                f"{'-' if condition in ('clean', 'lossy') else ('none' if fresh is None else fresh)} | {r.get('audio_gap_s', '-')} | "
                f"{r.get('video_delay_ms') if r.get('video_delay_ms') is not None else '-'} | {sender} |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows")
    parser.add_argument("--only", choices=("takan", "p2p"), help="measure one system")
    parser.add_argument("--server-root", type=Path, default=ROOT, help="checkout whose server and pages are measured")
    parser.add_argument("--anchor-degradation", choices=("balanced", "maintain-resolution", "maintain-framerate"),
                        help="degradationPreference of the anchor's sender (default: the browser's)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma-separated subset of {','.join(CONDITIONS)} (clean always runs first)")
    parser.add_argument("--shaped", choices=("applicant", "inspector"), default="applicant",
                        help="whose browser is on the shaped link (default: the applicant's phone)")
    parser.add_argument("--uplink-kbit", type=int, default=None,
                        help=f"the lossy condition's cap on the shaped side's uplink (0: not shaped; default "
                             f"{LOSSY.rate_kbit} for the applicant, not shaped for the inspector)")
    parser.add_argument("--downlink-kbit", type=int, default=None,
                        help=f"the lossy condition's cap on the shaped side's downlink (0: not shaped; default "
                             f"not shaped for the applicant, {LOSSY.rate_kbit} for the inspector)")
    parser.add_argument("--loss", type=float, default=LOSS_PERCENT, help="the lossy condition's random UDP loss, %% both ways")
    parser.add_argument("--outage-s", type=float, default=OUTAGE_S, help="the outage's length")
    parser.add_argument("--lossy-s", type=float, help="the lossy condition's length (default 20 s with --quick, else 30)")
    args = parser.parse_args()
    applicant_side = args.shaped == "applicant"
    up_kbit = args.uplink_kbit if args.uplink_kbit is not None else (LOSSY.rate_kbit if applicant_side else 0)
    down_kbit = args.downlink_kbit if args.downlink_kbit is not None else (0 if applicant_side else LOSSY.rate_kbit)

    def cap(kbit: int) -> Optional[Shape]:
        return Shape(rate_kbit=kbit, burst_bytes=LOSSY.burst_bytes, latency_ms=LOSSY.latency_ms) if kbit else None

    plan = Plan(
        args.quick, tuple(c for c in args.conditions.split(",") if c in CONDITIONS),
        uplink=cap(up_kbit), downlink=cap(down_kbit), shaped=args.shaped,
        loss_percent=args.loss, outage_s=args.outage_s, lossy_s=args.lossy_s,
    )

    from playwright.async_api import async_playwright

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tkn-bench-") as tmp_name, NetLab("fm") as lab:
        tmp = Path(tmp_name)
        async with async_playwright() as pw:

            async def browsers(origins: list[str]) -> tuple[Any, Any]:
                flags = CHROMIUM_ARGS + [f"--unsafely-treat-insecure-origin-as-secure={','.join(origins)}"]
                in_lab, on_host = str(lab.chromium_wrapper()), CHROMIUM
                applicant_exe, inspector_exe = (in_lab, on_host) if plan.shaped == "applicant" else (on_host, in_lab)
                applicant_browser = await pw.chromium.launch(executable_path=applicant_exe, headless=True, args=flags)
                inspector_browser = await pw.chromium.launch(executable_path=inspector_exe, headless=True, args=flags)
                return applicant_browser, inspector_browser

            if args.only in (None, "takan"):
                results["takan"] = await measure_takan_with_browsers(lab, args.server_root.resolve(), browsers, tmp, plan)
                print(json.dumps(results["takan"], indent=1), flush=True)
                lab.clear()
            if args.only in (None, "p2p"):
                results["p2p"] = await measure_p2p_with_browsers(lab, browsers, plan, args.anchor_degradation)
                print(json.dumps(results["p2p"], indent=1), flush=True)
        log = (tmp / "takan-console.log")
        if log.exists():
            print("\n".join(line for line in log.read_text().splitlines() if "takan:" in line)[-3000:])

    print()
    print(f"field_media.py, {started}; {platform.node()}, {os.cpu_count()} cores; server root {args.server_root}; "
          f"{plan.describe()}")
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps({"started": started, "server_root": str(args.server_root),
                                        "anchor_degradation": args.anchor_degradation, "results": results}, indent=1))


async def measure_takan_with_browsers(lab: NetLab, root: Path, browsers: Any, tmp: Path, plan: Plan) -> dict[str, Any]:
    # The server's port is chosen when it starts; the secure-origin flag needs it, so the
    # browsers are launched inside the server's lifetime.
    async with takan_server(root, lab.host_ip, tmp / "data") as base:
        applicant_browser, inspector_browser = await browsers([base])
        try:
            return await _takan_session(lab, base, applicant_browser, inspector_browser, tmp, plan)
        finally:
            await applicant_browser.close()
            await inspector_browser.close()


async def _takan_session(lab: NetLab, base: str, applicant_browser: Any, inspector_browser: Any,
                         tmp: Path, plan: Plan) -> dict[str, Any]:
    created = await create_inspection(base)
    inspector_ctx = await inspector_browser.new_context(viewport={"width": 1366, "height": 768})
    applicant_ctx = await applicant_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    inspector = await inspector_ctx.new_page()
    applicant = await applicant_ctx.new_page()
    logs: list[str] = []
    for name, page in (("inspector", inspector), ("applicant", applicant)):
        page.on("console", lambda m, n=name: logs.append(f"{time.monotonic():.1f} {n}: {m.text}"[:300]))
    await inspector.goto(created["inspector_url"])
    await applicant.goto(created["applicant_url"])
    meter = Meter(inspector, "takan")
    task = asyncio.ensure_future(meter.run())
    try:
        await wait_frames(meter, 20, 60)
        await asyncio.sleep(5 if plan.quick else 10)
        return await run_conditions(lab, meter, applicant, "takan", plan)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        meter.dump("takan")
        (tmp / "takan-console.log").write_text("\n".join(logs))
        await inspector_ctx.close()
        await applicant_ctx.close()


async def measure_p2p_with_browsers(lab: NetLab, browsers: Any, plan: Plan, degradation: Optional[str]) -> dict[str, Any]:
    async with anchor_site(lab.host_ip) as origin:
        applicant_browser, inspector_browser = await browsers([origin])
        try:
            return await _p2p_session(lab, origin, applicant_browser, inspector_browser, plan, degradation)
        finally:
            await applicant_browser.close()
            await inspector_browser.close()


async def _p2p_session(lab: NetLab, origin: str, applicant_browser: Any, inspector_browser: Any,
                       plan: Plan, degradation: Optional[str]) -> dict[str, Any]:
    inspector_ctx = await inspector_browser.new_context()
    applicant_ctx = await applicant_browser.new_context()
    inspector = await inspector_ctx.new_page()
    applicant = await applicant_ctx.new_page()
    await inspector.goto(origin + "/anchor")
    await applicant.goto(origin + "/anchor")
    offer = await applicant.evaluate("(d) => window.startSender(d)", degradation)
    answer = await inspector.evaluate("([o, d]) => window.startReceiver(o, d)", [offer, degradation])
    await applicant.evaluate("(a) => window.accept(a)", answer)
    relay = asyncio.ensure_future(relay_candidates(applicant, inspector))
    meter = Meter(inspector, "p2p")
    task = asyncio.ensure_future(meter.run())
    try:
        await wait_frames(meter, 20, 60)
        await asyncio.sleep(5 if plan.quick else 10)
        return await run_conditions(lab, meter, applicant, "p2p", plan)
    finally:
        for t in (task, relay):
            t.cancel()
        await asyncio.gather(task, relay, return_exceptions=True)
        meter.dump("p2p")
        await inspector_ctx.close()
        await applicant_ctx.close()


if __name__ == "__main__":
    asyncio.run(main())
