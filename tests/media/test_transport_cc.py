"""Transport-wide congestion control between real aiortc peers, checked packet by packet.

aiortc's own sender neither offers transport-cc nor numbers its packets, so the test's
publisher plays libwebrtc: its offer gets the extension and ``rtcp-fb transport-cc`` the
way Chromium writes them, and every RTP packet it sends gets a transport-wide sequence
number (some are then dropped on purpose). The server must answer with both, and report
every packet back in RTPFB FMT=15 feedback about every 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from dataclasses import dataclass
from typing import AsyncIterator

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, is_rtcp, unpack_remb_fci

from media import tap, twcc
from media.peer import ServerPeer
from media.relay import MediaRoom
from testkit.media import ClientPeer, PacketVideoTrack, encode_vp8, wait_for

TWCC_ID = 5
VP8_PAYLOAD_TYPE = 97  # aiortc's for VP8


def chromium_style_offer(sdp: str) -> str:
    """Add the extension (id 5, every section) and transport-cc feedback to VP8."""
    out = []
    for line in sdp.split("\r\n"):
        out.append(line)
        if line.startswith("a=extmap:1 "):
            out.append(f"a=extmap:{TWCC_ID} {twcc.URI}")
        match = re.match(r"a=rtcp-fb:(\d+) goog-remb", line)
        if match:
            out.append(f"a=rtcp-fb:{match.group(1)} transport-cc")
    return "\r\n".join(out)


class LibwebrtcLikeSender:
    """Numbers the client's outgoing RTP, drops every ``drop_every``-th, records RTCP in."""

    def __init__(self, client: ClientPeer, drop_every: int = 10) -> None:
        transport = client.pc.getTransceivers()[0].sender.transport
        self._send = transport._send_rtp
        self._handle = transport._handle_rtcp_data
        self._map = HeaderExtensionsMap()
        self._map.configure(
            RTCRtpParameters(headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
                RTCRtpHeaderExtensionParameters(id=TWCC_ID, uri=twcc.URI),
            ])
        )
        self._seq = itertools.count()
        self.drop_every = drop_every
        self.sent: list[int] = []
        self.dropped: set[int] = set()
        self.feedback: list[tuple[float, twcc.Feedback]] = []
        self.remb = 0
        self.remb_bps: list[int] = []
        transport._send_rtp = self.send_rtp
        transport._handle_rtcp_data = self.handle_rtcp

    async def send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data):
            packet = RtpPacket.parse(data, self._map)
            seq = next(self._seq) & 0xFFFF
            packet.extensions.transport_sequence_number = seq
            data = packet.serialize(self._map)
            if self.drop_every and seq % self.drop_every == self.drop_every - 1:
                self.dropped.add(seq)
                return
            self.sent.append(seq)
        await self._send(data)

    async def handle_rtcp(self, data: bytes) -> None:
        pos = 0
        while pos + 4 <= len(data):
            length = (int.from_bytes(data[pos + 2 : pos + 4], "big") + 1) * 4
            chunk = data[pos : pos + length]
            if chunk[1] == twcc.RTCP_RTPFB and chunk[0] & 0x1F == twcc.FMT_TRANSPORT_CC:
                self.feedback.append((time.monotonic(), twcc.parse_feedback(chunk)))
            elif chunk[1] == 206 and chunk[0] & 0x1F == 15:
                self.remb += 1
                self.remb_bps.append(unpack_remb_fci(chunk[12:])[0])
            pos += length
        await self._handle(data)


async def test_transport_cc_negotiated_and_every_packet_reported() -> None:
    room = MediaRoom("twcc")
    client = ClientPeer(video=PacketVideoTrack(encode_vp8(320, 240, frames=20)), receive=False)
    server = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    try:
        answer = await server.answer(chromium_style_offer(await client.offer()))
        assert f"a=extmap:{TWCC_ID} {twcc.URI}" in answer
        vp8_pt = re.search(r"a=rtpmap:(\d+) VP8/90000", answer).group(1)  # type: ignore[union-attr]
        assert f"a=rtcp-fb:{vp8_pt} transport-cc" in answer
        assert f"a=rtcp-fb:{vp8_pt} goog-remb" in answer  # the fallback stays negotiated
        assert server.transport_feedback is not None

        lab = LibwebrtcLikeSender(client)
        await client.accept(answer)
        assert await wait_for(lambda: len(lab.sent) >= 100, timeout=30)
        await asyncio.sleep(0.3)

        reported: dict[int, int] = {}
        lost: set[int] = set()
        for _, fb in lab.feedback:
            assert fb.media_ssrc == client.pc.getTransceivers()[0].sender._ssrc
            reported.update(fb.arrivals_us)
            lost |= {(fb.base_seq + i) & 0xFFFF for i, s in enumerate(fb.statuses) if s == twcc.NOT_RECEIVED}
        first = min(lab.sent)
        sent = {s for s in lab.sent if s >= first}
        dropped = {s for s in lab.dropped if first < s < max(reported)}
        assert sent - set(reported) <= {s for s in sent if s > max(reported)}, "a received packet went unreported"
        assert dropped <= lost, f"dropped {sorted(dropped - lost)[:5]} not reported lost"
        assert not (set(reported) & lab.dropped)
        # about every 50 ms, with counts that increase by one
        times = [t for t, _ in lab.feedback]
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        assert 0.03 <= gaps[len(gaps) // 2] <= 0.1, gaps[len(gaps) // 2]
        counts = [fb.feedback_count for _, fb in lab.feedback]
        assert counts == [i & 0xFF for i in range(counts[0], counts[0] + len(counts))]
        # arrival deltas are plausible: 20 fps frames spread over the test's duration
        span_us = max(reported.values()) - min(reported.values())
        assert 0.5e6 < span_us < 60e6
        # packets with transport-wide numbers are not fed to the REMB estimator
        assert lab.remb == 0
        # arrivals were stamped by the kernel (SO_TIMESTAMPNS), not by our event loop
        assert tap.kernel_stamped(server._pc.getTransceivers()[0].receiver) >= len(reported)  # type: ignore[union-attr]
        # and handed to SRTP on the socket callback, not through aioice's queue
        assert tap.directly_handled(server._pc.getTransceivers()[0].receiver) >= 0.9 * len(reported)  # type: ignore[union-attr]
    finally:
        await server.close()
        await client.close()
        await room.close()


async def test_offer_without_transport_cc_keeps_remb_only() -> None:
    room = MediaRoom("remb")
    client = ClientPeer(video=PacketVideoTrack(encode_vp8(320, 240, frames=20)), receive=False)
    server = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    try:
        answer = await server.answer(await client.offer())
        assert twcc.URI not in answer and "transport-cc" not in answer
        assert "goog-remb" in answer
        assert server.transport_feedback is None
    finally:
        await server.close()
        await client.close()
        await room.close()


async def test_a_subscribers_nack_is_answered_with_rtx_on_the_pass_through_path() -> None:
    """aiortc's sender keeps a history of what the relay forwarded and retransmits on RTX."""
    from aiortc.rtp import RtcpRtpfbPacket, RTCP_RTPFB_NACK

    room = MediaRoom("nack")
    applicant = ClientPeer(video=PacketVideoTrack(encode_vp8(320, 240, frames=20)), receive=False)
    inspector = ClientPeer()
    pub = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    sub = ServerPeer("i", "inspector", room, RTCPeerConnection, publishes=False, source_role="applicant")
    try:
        await applicant.accept(await pub.answer(await applicant.offer()))
        answer = await sub.answer(await inspector.offer())
        rtx_pt = int(re.search(r"a=rtpmap:(\d+) rtx/90000", answer).group(1))  # type: ignore[union-attr]
        await inspector.accept(answer)
        transport = inspector.pc.getTransceivers()[0].receiver.transport
        seen: list[RtpPacket] = []
        handle = transport._handle_rtp_data

        async def record(data: bytes, arrival_time_ms: int) -> None:
            seen.append(RtpPacket.parse(data))
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = record
        assert await wait_for(lambda: inspector.video_sink.frames >= 10, timeout=30)
        media = [p for p in seen if p.payload_type != rtx_pt and p.ssrc == seen[-1].ssrc]
        wanted = media[-3].sequence_number
        video_rx = next(t.receiver for t in inspector.pc.getTransceivers() if t.kind == "video")
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1234, media_ssrc=media[-1].ssrc)
        nack.lost = [wanted]
        await video_rx._send_rtcp(nack)
        assert await wait_for(lambda: any(p.payload_type == rtx_pt for p in seen), timeout=5)
        rtx = next(p for p in seen if p.payload_type == rtx_pt)
        assert int.from_bytes(rtx.payload[:2], "big") == wanted  # RFC 4588: original sequence number
    finally:
        for closable in (pub, sub, applicant, inspector):
            await closable.close()
        await room.close()


async def test_a_lossy_subscriber_link_caps_the_publisher_by_remb() -> None:
    """The subscriber's leg: the inspector's link loses 40 % of what the relay sends, its
    receiver reports say so, and the publisher (a libwebrtc-like sender on transport-cc)
    is sent a REMB cap below what the relay forwarded; when the loss ends the cap grows."""
    import random

    from media import bitrate_cap

    room = MediaRoom("cap")
    applicant = ClientPeer(video=PacketVideoTrack(encode_vp8(320, 240, frames=20)), receive=False)
    inspector = ClientPeer()
    pub = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    sub = ServerPeer("i", "inspector", room, RTCPeerConnection, publishes=False, source_role="applicant")
    try:
        answer = await pub.answer(chromium_style_offer(await applicant.offer()))
        assert pub.bitrate_cap is not None
        lab = LibwebrtcLikeSender(applicant, drop_every=0)
        await applicant.accept(answer)
        await inspector.accept(await sub.answer(await inspector.offer()))
        transport = inspector.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtp_data
        lossy = [True]
        rng = random.Random(7)

        async def weak_link(data: bytes, arrival_time_ms: int) -> None:
            if lossy[0] and rng.random() < 0.4:
                return
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = weak_link
        forwarded = sub.forwarded_tracks["video"]
        assert await wait_for(lambda: forwarded.link_cap_bps is not None, timeout=30), "no receiver report with the loss"
        assert await wait_for(lambda: lab.remb_bps, timeout=10), "the publisher got no REMB"
        assert bitrate_cap.FLOOR_BPS <= lab.remb_bps[-1] < bitrate_cap.UNCAPPED_BPS
        # the seam of the round trip: a real receiver's LSR/DLSR against aiortc's own SR time
        assert await wait_for(lambda: forwarded.link_rtt_s() is not None, timeout=15), "no round trip measured"
        assert 0 <= (forwarded.link_rtt_s() or 0) < 0.5  # loopback, no queue
        lossy[0] = False
        low = forwarded.link_cap_bps or 0
        assert await wait_for(lambda: (forwarded.link_cap_bps or 1e12) > low, timeout=15), "the cap never grew back"
    finally:
        for closable in (pub, sub, applicant, inspector):
            await closable.close()
        await room.close()


class LibwebrtcLikeReceiver:
    """The inspector's side of transport-cc: reads the transport-wide number of every RTP
    packet the server sends it and reports arrivals in RTPFB FMT=15 every 50 ms, as
    Chromium's receiver does; ``extra_delay_s()`` is added to each arrival (a queue)."""

    def __init__(self, client: ClientPeer) -> None:
        transport = client.pc.getTransceivers()[0].receiver.transport
        self._transport = transport
        self._handle = transport._handle_rtp_data
        self._map = HeaderExtensionsMap()
        self._map.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=TWCC_ID, uri=twcc.URI)]))
        self.recorder = twcc.ArrivalRecorder()
        self.numbers: list[int] = []
        self.unnumbered = 0
        self.extra_delay_s = 0.0
        self.media_ssrc = 0
        #: (arrival monotonic s, RTP timestamp, bytes) of every video packet
        self.video: list[tuple[float, int, int]] = []
        transport._handle_rtp_data = self.handle_rtp
        self._task = asyncio.ensure_future(self._report())

    async def handle_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        packet = RtpPacket.parse(data, self._map)
        seq = packet.extensions.transport_sequence_number
        if seq is None:
            self.unnumbered += 1
        else:
            self.numbers.append(seq)
            self.media_ssrc = packet.ssrc
            self.recorder.add(seq, int((time.monotonic() + self.extra_delay_s) * 1e6))
            if packet.payload_type == VP8_PAYLOAD_TYPE:
                self.video.append((time.monotonic(), packet.timestamp, len(data)))
        await self._handle(data, arrival_time_ms)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for packet in self.recorder.build(0x1234, self.media_ssrc):
                try:
                    await self._transport._send_rtp(packet)
                except ConnectionError:
                    pass

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class RelayedPair:
    """An applicant publishing through the server to an inspector, both playing libwebrtc."""

    pub: ServerPeer
    sub: ServerPeer
    lab_tx: LibwebrtcLikeSender
    lab_rx: LibwebrtcLikeReceiver


@contextlib.asynccontextmanager
async def relayed_pair(name: str, frames: list[bytes]) -> AsyncIterator[RelayedPair]:
    room = MediaRoom(name)
    applicant = ClientPeer(video=PacketVideoTrack(frames), receive=False)
    inspector = ClientPeer()
    pub = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    sub = ServerPeer("i", "inspector", room, RTCPeerConnection, publishes=False, source_role="applicant")
    lab_rx = None
    try:
        lab_tx = LibwebrtcLikeSender(applicant, drop_every=0)
        await applicant.accept(await pub.answer(chromium_style_offer(await applicant.offer())))
        answer = await sub.answer(chromium_style_offer(await inspector.offer()))
        assert f"a=extmap:{TWCC_ID} {twcc.URI}" in answer
        lab_rx = LibwebrtcLikeReceiver(inspector)
        await inspector.accept(answer)
        yield RelayedPair(pub, sub, lab_tx, lab_rx)
    finally:
        if lab_rx is not None:
            await lab_rx.close()
        for closable in (pub, sub, applicant, inspector):
            await closable.close()
        await room.close()


async def test_the_subscribers_transport_feedback_reads_its_queue_and_caps_the_publisher() -> None:
    """The sending half on the subscriber's leg: the server numbers every packet it
    forwards transport-wide (aiortc's sender never does), reads the inspector's feedback
    against its send log, and a queue that builds on the inspector's link cuts the
    publisher's REMB within a fraction of a second; once it drains the cap grows back."""
    async with relayed_pair("twcc-send", encode_vp8(320, 240, frames=20)) as pair:
        sub, lab_tx, lab_rx = pair.sub, pair.lab_tx, pair.lab_rx
        assert sub.queue_estimator is not None
        estimator = sub.queue_estimator
        forwarded = sub.forwarded_tracks["video"]
        assert await wait_for(lambda: len(lab_rx.numbers) >= 60 and estimator.feedbacks >= 10, timeout=30)
        # every packet numbered, consecutively: one sequence for the transport
        assert lab_rx.unnumbered == 0
        numbers = lab_rx.numbers
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(numbers, numbers[1:])), numbers[:20]
        assert forwarded._cap.delay_based
        assert (forwarded._cap.queue_s or 0) < 0.03  # loopback: no queue
        # a queue builds: each arrival later by 0.5 s per second
        start = time.monotonic()

        async def grow() -> None:
            while time.monotonic() - start < 1.5:
                lab_rx.extra_delay_s = 0.5 * (time.monotonic() - start)
                await asyncio.sleep(0.01)

        growing = asyncio.ensure_future(grow())
        assert await wait_for(lambda: forwarded._cap.queue_cuts >= 1, timeout=5), "the queue did not cut the cap"
        cut_after = time.monotonic() - start
        await growing
        assert cut_after < 0.8, f"cut only {cut_after:.2f} s into the queue's growth"
        assert forwarded.link_cap_bps is not None
        assert await wait_for(lambda: lab_tx.remb_bps and lab_tx.remb_bps[-1] < 30_000_000, timeout=5)
        # it drains: the queue reads empty again and the cap grows
        lab_rx.extra_delay_s = 0.0
        low = forwarded.link_cap_bps or 0
        assert await wait_for(lambda: (forwarded.link_cap_bps or 1e12) > low * 1.05, timeout=15), "the cap never grew back"
        assert estimator.unknown == 0


async def test_a_capped_subscribers_video_is_paced() -> None:
    """A keyframe to a subscriber whose link has a cap leaves at the pacer's budget
    (media/pacer.py), spread over many milliseconds, instead of in one burst; the send
    times the queue estimator reads are those after the wait."""
    frames = encode_vp8(640, 480, frames=20, bitrate=800_000, detail=0.15)
    async with relayed_pair("twcc-pace", frames) as pair:
        sub, lab_rx = pair.sub, pair.lab_rx
        assert sub.pacer is not None
        forwarded = sub.forwarded_tracks["video"]
        assert await wait_for(lambda: len(lab_rx.video) >= 100, timeout=30)
        assert sub.pacer.paced == 0  # no cap yet: nothing waits
        keyframe_bytes = len(frames[0])
        forwarded._cap.bps = 150_000.0  # as if the link's feedback had cut it
        seen = len(lab_rx.video)
        assert await wait_for(lambda: sub.pacer is not None and sub.pacer.paced >= 20, timeout=20), "nothing was paced"
        # the loop's keyframe once more, after the cap: its packets arrive spread out
        first_after = lab_rx.video[seen][1]
        assert await wait_for(lambda: len({ts for _, ts, _ in lab_rx.video[seen:]}) >= 45, timeout=20)
        by_frame: dict[int, list[tuple[float, int]]] = {}
        for at, ts, size in lab_rx.video[seen:]:
            if ts != first_after:  # the frame in flight when the cap came may be half sent
                by_frame.setdefault(ts, []).append((at, size))
        biggest = max(by_frame.values(), key=lambda packets: sum(size for _, size in packets))
        size = sum(size for _, size in biggest)
        assert size > 0.8 * keyframe_bytes, (size, keyframe_bytes)
        span = biggest[-1][0] - biggest[0][0]
        rate = forwarded.pacing_bps or 150_000.0
        # the budget at the most is 2 x max(cap, what is forwarded); allow the burst and timers
        assert span >= 0.5 * size * 8 / (2 * max(rate, 150_000.0) * 1.5), (span, size, rate)
        assert span > 0.02, span
