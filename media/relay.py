"""Fan-out of encoded frames: publishers' tracks to subscribers and recorders.

A :class:`MediaRoom` has one *slot* per (publishing role, kind), e.g.
``("applicant", "video")``. The slot's current :class:`UpTrack` (the publisher's
incoming track) writes each encoded frame to every :class:`~media.interfaces.Sink` of
the slot. When a publisher reconnects, the new UpTrack takes over the slot and the sinks
are re-attached; a :class:`ForwardedTrack` rebases timestamps so that its subscriber sees
one continuous stream.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable, Optional

import av
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import tap
from .bitrate_cap import LinkCap, ReceiverReport
from .capture_clock import CaptureClock
from .interfaces import Sink, Slot, Source
from .queue_estimator import QueueSample

logger = logging.getLogger(__name__)

#: Minimum interval between two PLIs sent to one publisher.
KEYFRAME_INTERVAL_S = 0.5
#: A packet still missing is NACKed again once a round trip to its publisher (x1.2) has
#: passed since its last NACK, as libwebrtc's receiver does, at most NACK_RETRIES times
#: (the jitter buffer gives a hole up after media.tap.HOLE_TIMEOUT_S anyway); every
#: NACK_RETRY_S while the round trip is not known yet. Missing packets are looked at every
#: NACK_TICK_S (every NACK_RETRY_S while none are missing). A fixed 150 ms period, with
#: the first re-NACK on the second tick, made a lost retransmission cost 150-300 ms more
#: than a round trip: on a 400 kbit/s uplink with 5 % loss both ways, about one lost packet
#: in ten, and a freeze more often than the direct call's.
NACK_RETRY_S = 0.15
NACK_TICK_S = 0.025
#: Ten NACKs (libwebrtc's kMaxNackRetries) at least 50 ms apart keep asking for half a
#: second at the least, most of the hole's wait, however short the round trip.
NACK_MIN_INTERVAL_S = 0.05
NACK_RETRIES = 10
#: Frames a stalled subscriber may fall behind before we drop and resync on a keyframe.
VIDEO_QUEUE_FRAMES = 60
AUDIO_QUEUE_FRAMES = 100
#: More frames than this waiting for the sender: the pacer (media/pacer.py) stands aside
#: until they are out, rather than add their wait to the subscriber's delay.
PACED_BACKLOG_FRAMES = 3
#: RTP timestamp step inserted when a subscriber's source changes (one frame).
_REBASE_STEP = {"video": 3000, "audio": 960}
#: A subscriber's own keyframe requests (PLI/FIR, the page's `keyframe`) reach the publisher
#: at most this often: a weak link that keeps losing packets would otherwise make the
#: publisher send a keyframe (a second of a 400 kbit/s uplink) twice a second for everyone.
SUBSCRIBER_KEYFRAME_INTERVAL_S = 1.0
#: Audio first: video to a subscriber is paused when, for LINK_WEAK_S, its link's estimate
#: (REMB; once transport-cc is negotiated Chromium sends transport feedback instead, and
#: what that says the link delivered stands in) stays below this share of the video forwarded to it *and* its reports
#: lose at least LINK_LOSS of the packets; then retried after a back-off that doubles up to
#: VIDEO_RETRY_MAX_S. The estimate alone is not enough: Chromium's receive-side estimator
#: reads our server's send jitter as congestion (measured: 86-180 kb/s reported on an
#: unshaped link carrying 280-490 kb/s without loss). Before pausing, the link's
#: cap (media/bitrate_cap.py, from its loss and round trip) asks the publisher to send less: a link is weak
#: only once the cap is at its floor, or the publisher does not follow it.
LINK_SHARE = 0.5
#: With the cap at its floor the share is this: a link that delivers less than three
#: quarters of the floor's video while losing cannot carry video at all. At 80 kbit/s the
#: audio takes most of the link and the video delivered hovered about half of what was sent
#: (10-20 of 30-40 kb/s), in and out of LINK_SHARE, and audio first took 16 s to hold;
#: a 150 kbit/s link delivers some 0.9 of the floor's video.
LINK_SHARE_AT_FLOOR = 0.75
LINK_LOSS = 0.05
LINK_WEAK_S = 3.0
#: Retransmissions to a subscriber are budgeted on its link's cap (media/tap.py
#: paced_retransmission) only while the link's queue stands over this: then its losses are
#: its own drops, and resending them all keeps it overfull. With the queue empty the loss is
#: random and every NACK is answered (once a round trip): on a 400 kbit/s downlink with 15 %
#: random loss, the budget of a cap cut to 63 kb/s let 660 NACKs go mostly unanswered and
#: the inspector saw 25 freezes in 20 s, the direct call 5.
RETRANSMIT_BUDGET_QUEUE_S = 0.05
VIDEO_RETRY_S = 8.0
VIDEO_RETRY_MAX_S = 60.0



class UpTrack:
    """A publisher's incoming encoded track, fanned out to sinks."""

    def __init__(self, kind: str, receiver: RTCRtpReceiver, owner: str,
                 rtt: Callable[[], Optional[float]] = lambda: None) -> None:
        """``rtt()``: the round trip to the publisher in seconds (None: not known)."""
        self.kind = kind
        self.owner = owner
        self._rtt = rtt
        self._receiver = receiver
        self._sinks: list[Sink] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_pli = 0.0
        self._closed = False
        self.frames = 0
        self.keyframes = 0
        self.last_keyframe_at: Optional[float] = None
        self.keyframe_requests = 0
        self.renacked = 0
        self._capture = CaptureClock((tap.VIDEO_TIME_BASE if kind == "video" else tap.AUDIO_TIME_BASE).denominator)

    def start(self) -> None:
        """Take the receiver's encoded frames (before the receiver starts)."""
        tap.tap_receiver(self._receiver, self.deliver)
        tap.on_sender_report(self._receiver, self._capture.report)
        if self.kind == "video":
            self._spawn(self._renack())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _renack(self) -> None:
        nacked: dict[int, tuple[float, int]] = {}  # seq -> (last NACKed at, NACKs sent)
        self.renacked = 0
        while not self._closed:
            await asyncio.sleep(NACK_TICK_S if nacked else NACK_RETRY_S)
            missing = tap.missing_packets(self._receiver)
            for seq in [seq for seq in nacked if seq not in missing]:
                del nacked[seq]
            now = time.monotonic()
            rtt = self._rtt()
            interval = NACK_RETRY_S if rtt is None else max(NACK_MIN_INTERVAL_S, 1.2 * rtt)
            again = []
            for seq in missing:
                last = nacked.get(seq)
                if last is None:
                    # aiortc NACKed it when the gap appeared (at most a tick ago)
                    nacked[seq] = (now, 1)
                elif last[1] < NACK_RETRIES and now - last[0] >= interval:
                    nacked[seq] = (now, last[1] + 1)
                    again.append(seq)
            if again:
                try:
                    if await tap.send_nack(self._receiver, again):
                        self.renacked += len(again)
                except ConnectionError:
                    pass

    def add_sink(self, sink: Sink) -> None:
        if sink not in self._sinks:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)

    def deliver(self, packet: av.Packet[Any]) -> None:
        self.frames += 1
        if packet.is_keyframe and self.kind == "video":
            self.keyframes += 1
            self.last_keyframe_at = time.monotonic()
        for sink in self._sinks:
            try:
                sink.write(packet)
            except Exception:  # one broken sink must not starve the others
                logger.exception("sink %r failed on %s/%s", sink, self.owner, self.kind)

    def bitrate_cap(self) -> Optional[int]:
        """The smallest cap of this track's subscribers' links (None: none is capped)."""
        caps = [cap for sink in self._sinks if (cap := getattr(sink, "link_cap_bps", None)) is not None]
        return int(min(caps)) if caps else None

    def capture_ntp(self, pts: int) -> Optional[int]:
        """The publisher's NTP time (64-bit) of the capture of the frame with ``pts``
        (None before its first sender report)."""
        return self._capture.ntp_at(pts)

    def request_keyframe(self) -> None:
        """Send a PLI to the publisher, at most once per KEYFRAME_INTERVAL_S."""
        if self.kind != "video" or self._closed:
            return
        now = time.monotonic()
        if now - self._last_pli < KEYFRAME_INTERVAL_S:
            return
        self._last_pli = now
        self.keyframe_requests += 1
        self._spawn(tap.request_keyframe(self._receiver))

    def _task_done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("RTCP to %s failed: %s", self.owner, task.exception())

    async def close(self) -> None:
        self._closed = True
        self._sinks.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ForwardedTrack(MediaStreamTrack):
    """A subscriber's outgoing track: hands ``av.Packet`` to its RTCRtpSender.

    The sender only packetizes packets, so nothing here is decoded or encoded. Video
    starts (and restarts after a drop or a source change) on a keyframe.
    """

    def __init__(self, kind: str, name: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        limit = VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES
        self._queue: asyncio.Queue[Optional[av.Packet[Any]]] = asyncio.Queue(limit)
        self._source: Optional[Source] = None
        self._need_keyframe = kind == "video"
        self._offset: Optional[int] = None
        self._last_out: Optional[int] = None
        self.dropped = 0
        self.forwarded = 0
        self._last_request = -SUBSCRIBER_KEYFRAME_INTERVAL_S
        self.keyframe_requests_paced = 0
        #: The subscriber's link, from its reports (see :meth:`link_report`).
        self.link_bps: Optional[int] = None
        self.link_loss: Optional[float] = None
        self._bytes: collections.deque[tuple[float, int]] = collections.deque()  # (time, size) of frames sent, last 2 s
        self._bytes_total = 0  # their sizes summed
        self._weak_since: Optional[float] = None
        self._good_since: Optional[float] = None  # not weak since (the back-off shrinks)
        self._paused_until: Optional[float] = None
        self._retry_s = VIDEO_RETRY_S
        self.pauses = 0
        self._cap = LinkCap()
        #: What the subscriber's pacer budgets on (media/pacer.py), set per frame in recv().
        self.pacing_bps: Optional[float] = None
        self._last_frame: Optional[tuple[int, int, Source]] = None  # (pts sent, pts of the source, source)

    def attach(self, source: Optional[Source]) -> None:
        self._source = source
        self._offset = None
        # Frames of the previous source are stale, and their timestamps need its offset.
        while not self._queue.empty():
            if self._queue.get_nowait() is None:  # stopped meanwhile: keep the end marker
                self._queue.put_nowait(None)
                break
            self.dropped += 1
        if self.kind == "video":
            self._need_keyframe = True
            if source is not None:
                source.request_keyframe()

    @property
    def video_paused(self) -> bool:
        return self._paused_until is not None

    @property
    def link_cap_bps(self) -> Optional[float]:
        """What this subscriber's link carries, from its loss (None: no cap); read by the
        publisher's UpTrack, which sends the publisher the smallest cap."""
        return self._cap.bps if self.kind == "video" else None

    def retransmission_cap_bps(self) -> Optional[float]:
        """The cap the subscriber's retransmissions are budgeted on: the link's cap while
        its queue stands (or is not read: no transport feedback), None while it is empty."""
        queue = self._cap.queue_s
        if queue is not None and queue < RETRANSMIT_BUDGET_QUEUE_S:
            return None
        return self.link_cap_bps

    def link_rtt_s(self) -> Optional[float]:
        """The round trip the subscriber's last report measured (None: not yet)."""
        return self._cap.rtt_s

    def forwarded_bps(self, now: Optional[float] = None) -> float:
        self._expire_sent(time.monotonic() if now is None else now)
        return self._bytes_total * 8 / 2.0

    def _expire_sent(self, now: float) -> None:
        """Forget the frames sent more than 2 s before ``now`` (their bytes leave the total)."""
        while self._bytes and now - self._bytes[0][0] > 2.0:
            self._bytes_total -= self._bytes.popleft()[1]  # per frame: a list's pop(0) shifts the whole window

    def link_report(self, remb_bps: Optional[int], fraction_lost: Optional[float],
                    counts: Optional[ReceiverReport] = None, now: Optional[float] = None) -> None:
        """The subscriber's REMB or receiver report arrived: maybe cap, pause or resume video.

        ``counts``: the report's packet counts and round trip."""
        now = time.monotonic() if now is None else now
        if fraction_lost is not None:
            self.link_loss = fraction_lost
            if self.kind == "video" and self._paused_until is None and counts is not None:
                self._cap.report(counts.cumulative_lost, counts.highest_sequence, self.forwarded_bps(now), now,
                                 counts.rtt_s, counts.rtt_age_s)
        if remb_bps is None or self.kind != "video":
            return
        self._judge_link(remb_bps, now)

    def link_queue(self, sample: QueueSample, now: Optional[float] = None) -> None:
        """The subscriber's transport feedback (``media.queue_estimator``) arrived: the cap
        reads the link's queue from it, and what the link delivered stands in for the
        REMB that Chromium no longer sends once transport-cc is negotiated."""
        if self.kind != "video" or self._paused_until is not None:
            return
        now = time.monotonic() if now is None else now
        self._cap.queue(sample.queue_s, sample.slope, sample.through_bps, sample.loss, self.forwarded_bps(now), now)
        if sample.loss is not None:
            self.link_loss = sample.loss
        if sample.through_bps is not None:
            self._judge_link(int(sample.through_bps), now)

    def _judge_link(self, estimate_bps: int, now: float) -> None:
        """Audio first: pause video while the link's estimate stays far under what is sent."""
        self.link_bps = estimate_bps
        if self._paused_until is not None:
            return  # paused: the estimate of an audio-only link says nothing; write() retries
        sending = self.forwarded_bps(now)
        share = LINK_SHARE_AT_FLOOR if self._cap.at_floor else LINK_SHARE
        weak = sending > 0 and estimate_bps < share * sending and (self.link_loss or 0.0) >= LINK_LOSS
        cap = self._cap.bps
        # A cap the publisher follows gets its chance first; pausing is for a link that
        # loses even at the floor, or a publisher that ignores the cap.
        # Loss the cap does not act on (under its 10 %: random loss NACK repairs) pauses nothing.
        weak = weak and cap is not None and (self._cap.at_floor or sending > 1.5 * cap)
        if not weak:
            self._weak_since = None
            # The back-off shrinks once video has held for VIDEO_RETRY_S: a retry's first
            # reports (its keyframe still on the way) often read as not weak, and halving
            # on them kept an 80 kbit/s link retrying every 8 s, frozen 6 s of every 14.
            if self._good_since is None:
                self._good_since = now
            elif now - self._good_since >= VIDEO_RETRY_S:
                self._retry_s = max(VIDEO_RETRY_S, self._retry_s / 2)
                self._good_since = now
            return
        self._good_since = None
        if self._weak_since is None:
            self._weak_since = now
        elif now - self._weak_since >= LINK_WEAK_S:
            self._paused_until = now + self._retry_s
            self._retry_s = min(self._retry_s * 2, VIDEO_RETRY_MAX_S)
            self._weak_since = None
            self.pauses += 1
            logger.info("subscriber %s: link at %d b/s carries no video (%d b/s sent); audio only for %.0f s",
                        self.name, estimate_bps, sending, self._paused_until - now)

    def write(self, packet: av.Packet[Any]) -> None:
        if self.readyState != "live":
            return
        if self._paused_until is not None:
            if time.monotonic() < self._paused_until:
                return
            self._paused_until = None  # try video again, from a keyframe
            self._need_keyframe = True
        if self._need_keyframe:
            if not packet.is_keyframe:
                # Keep asking (the source rate-limits): the first PLI may have been sent
                # before this subscriber's transport was up, or lost.
                if self._source is not None:
                    self._source.request_keyframe()
                return
            self._need_keyframe = False
        if self._offset is None:
            # Continue from the last timestamp sent so the subscriber's decoder sees a
            # monotonic clock across publisher reconnects.
            base = 0 if self._last_out is None else self._last_out + _REBASE_STEP[self.kind]
            self._offset = base - int(packet.pts or 0)
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self._resync()

    def _resync(self) -> None:
        """The subscriber stalled: drop the backlog and restart on a keyframe."""
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
        if self.kind == "video":
            self._need_keyframe = True
            if self._source is not None:
                self._source.request_keyframe()
        logger.info("subscriber %s/%s stalled; resyncing", self.name, self.kind)

    def request_keyframe(self) -> None:
        """The subscriber reported loss (PLI/FIR): pass it on to the publisher, paced."""
        now = time.monotonic()
        if now - self._last_request < SUBSCRIBER_KEYFRAME_INTERVAL_S:
            self.keyframe_requests_paced += 1
            return
        self._last_request = now
        logger.info("subscriber %s asked for a keyframe", self.name)
        if self._source is not None:
            self._source.request_keyframe()

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        assert self._offset is not None
        out = av.Packet(bytes(packet))
        out.pts = int(packet.pts or 0) + self._offset
        out.dts = out.pts
        out.time_base = packet.time_base
        out.is_keyframe = packet.is_keyframe
        self._last_out = out.pts
        if self._source is not None:
            self._last_frame = (out.pts, int(packet.pts or 0), self._source)
        self.forwarded += 1
        now = time.monotonic()
        self._bytes.append((now, out.size))
        self._bytes_total += out.size
        self._expire_sent(now)
        if self.kind == "video":
            self._set_pacing()
        return out

    def last_capture(self) -> Optional[tuple[int, int]]:
        """(pts, NTP time): the last frame handed to the sender and its publisher's capture
        time, for the sender reports (media/capture_clock.py); None while not known."""
        if self._last_frame is None:
            return None
        out, pts, source = self._last_frame
        ntp = source.capture_ntp(pts)
        return None if ntp is None else (out, ntp)

    def _set_pacing(self) -> None:
        """The pacer's rate: the link's cap, but not under what this track forwards (else
        frames would pile up here while the publisher follows the cap), and none while
        frames wait here already (PACED_BACKLOG_FRAMES: they go out unpaced)."""
        cap = self.link_cap_bps
        if cap is None or self._queue.qsize() > PACED_BACKLOG_FRAMES:
            self.pacing_bps = None
        else:
            self.pacing_bps = max(cap, self._bytes_total * 8 / 2.0)

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self._queue.put_nowait(None)


class MediaRoom:
    """The slots of one inspection: who publishes what, and who consumes it."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self._up: dict[Slot, UpTrack] = {}
        self._sinks: dict[Slot, list[Sink]] = {}
        self._listeners: list[Callable[[Slot, Optional[UpTrack]], None]] = []

    def on_publish(self, listener: Callable[[Slot, Optional[UpTrack]], None]) -> None:
        """Be told when a slot gets a new publisher (or loses it)."""
        self._listeners.append(listener)

    def publisher(self, slot: Slot) -> Optional[UpTrack]:
        return self._up.get(slot)

    def tracks(self) -> list[UpTrack]:
        """The tracks published now (for metrics)."""
        return list(self._up.values())

    async def publish(self, role: str, up: UpTrack) -> None:
        """Make ``up`` the source of the slot (role, kind); the old one is closed."""
        slot = (role, up.kind)
        old = self._up.get(slot)
        self._up[slot] = up
        for sink in self._sinks.get(slot, []):
            up.add_sink(sink)
            sink.attach(up)
        for listener in self._listeners:
            listener(slot, up)
        if old is not None and old is not up:
            await old.close()
        logger.info("room %s: %s publishes %s", self.room_id, up.owner, up.kind)

    async def unpublish(self, up: UpTrack) -> None:
        slot = next((s for s, u in self._up.items() if u is up), None)
        if slot is not None:
            del self._up[slot]
            for sink in self._sinks.get(slot, []):
                sink.attach(None)
            for listener in self._listeners:
                listener(slot, None)
        await up.close()

    def add_sink(self, slot: Slot, sink: Sink) -> None:
        self._sinks.setdefault(slot, []).append(sink)
        up = self._up.get(slot)
        if up is not None:
            up.add_sink(sink)
        sink.attach(up)

    def remove_sink(self, slot: Slot, sink: Sink) -> None:
        sinks = self._sinks.get(slot, [])
        if sink in sinks:
            sinks.remove(sink)
        up = self._up.get(slot)
        if up is not None:
            up.remove_sink(sink)

    async def close(self) -> None:
        ups = list(self._up.values())
        self._up.clear()
        self._sinks.clear()
        for up in ups:
            await up.close()
