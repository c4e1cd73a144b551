"""Pass-through relay between real aiortc peers: frames flow, nothing decodes or encodes."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import opus, vpx

from media.peer import ServerPeer
from media.relay import MediaRoom
from media.sdp import BadSdp
from media.bitrate_cap import ReceiverReport
from media.tap import check_aiortc_seams
from testkit.media import ClientPeer, PacketVideoTrack, encode_vp8, wait_for


@pytest.fixture(scope="module")
def vp8_frames() -> list[bytes]:
    return encode_vp8(640, 480, frames=40)


class CodecCalls:
    """Counts every decode and encode in the process (server and test peers alike)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for cls, name in (
            (vpx.Vp8Decoder, "decode"),
            (vpx.Vp8Encoder, "encode"),
            (opus.OpusDecoder, "decode"),
            (opus.OpusEncoder, "encode"),
        ):
            original = getattr(cls, name)

            def wrapper(self_, *args, _original=original, _label=f"{cls.__name__}.{name}", **kw):
                self.calls.append(_label)
                return _original(self_, *args, **kw)

            monkeypatch.setattr(cls, name, wrapper)


async def connect(room: MediaRoom, client: ClientPeer, peer_id: str, role: str, source: str | None) -> ServerPeer:
    server = ServerPeer(
        peer_id, role, room, RTCPeerConnection, publishes=role != "observer", source_role=source
    )
    answer = await server.answer(await client.offer())
    await client.accept(answer)
    return server


def test_seams_present() -> None:
    check_aiortc_seams()


def test_the_fast_clock_reads_what_aiortcs_clock_reads() -> None:
    import aiortc.clock
    import aiortc.rtcdtlstransport
    import aiortc.rtcrtpsender

    from media import tap

    for _ in range(1000):
        before = aiortc.clock.current_ntp_time()
        ntp, ms = tap._current_ntp_time(), tap._current_ms()
        after = aiortc.clock.current_ntp_time()
        assert before - (1 << 32) // 1_000_000 <= ntp <= after + (1 << 32) // 1_000_000  # within 1 us
        assert (before * 1000 >> 32) - 1 <= ms <= (after * 1000 >> 32) + 1
    tap.use_fast_clock()
    tap.use_fast_clock()  # idempotent
    assert aiortc.rtcrtpsender.clock.current_ntp_time is tap._current_ntp_time
    assert aiortc.rtcdtlstransport.clock.current_ms is tap._current_ms
    assert aiortc.rtcrtpsender.clock.datetime_from_ntp is aiortc.clock.datetime_from_ntp
    check_aiortc_seams()


async def test_frames_are_forwarded_without_decoding_or_encoding(vp8_frames, monkeypatch) -> None:
    codec_calls = CodecCalls(monkeypatch)
    room = MediaRoom("r1")
    applicant = ClientPeer(video=PacketVideoTrack(vp8_frames))
    inspector = ClientPeer(video=PacketVideoTrack(vp8_frames))
    observer = ClientPeer()
    peers = [
        await connect(room, applicant, "a", "applicant", "inspector"),
        await connect(room, inspector, "i", "inspector", "applicant"),
        await connect(room, observer, "o", "observer", "applicant"),
    ]
    try:
        assert await wait_for(lambda: inspector.video_sink.frames >= 40 and observer.video_sink.frames >= 40 and applicant.video_sink.frames >= 40, timeout=20)
        # every subscriber started on a keyframe
        for client in (inspector, observer, applicant):
            assert client.video_sink.keyframes >= 1
        up = room.publisher(("applicant", "video"))
        assert up is not None and up.frames >= 40
        assert codec_calls.calls == [], f"codec work happened: {set(codec_calls.calls)}"
        # the forwarded bytes are the publisher's bytes
        assert set(inspector.video_sink.sizes) <= {len(f) for f in vp8_frames}
    finally:
        for p in peers:
            await p.close()
        for c in (applicant, inspector, observer):
            await c.close()
        await room.close()


async def test_publisher_reconnect_resumes_for_subscriber(vp8_frames) -> None:
    room = MediaRoom("r2")
    inspector = ClientPeer()
    applicant = ClientPeer(video=PacketVideoTrack(vp8_frames))
    sub = await connect(room, inspector, "i", "inspector", "applicant")
    pub = await connect(room, applicant, "a", "applicant", "inspector")
    try:
        assert await wait_for(lambda: inspector.video_sink.frames >= 10, timeout=40)
        # the applicant's network drops: a new peer connection replaces the old one
        await pub.close()
        await applicant.close()
        before = inspector.video_sink.frames
        applicant2 = ClientPeer(video=PacketVideoTrack(vp8_frames))
        pub = await connect(room, applicant2, "a", "applicant", "inspector")
        assert await wait_for(lambda: inspector.video_sink.frames >= before + 20, timeout=40)
        await applicant2.close()
    finally:
        await pub.close()
        await sub.close()
        await inspector.close()
        await room.close()


async def test_close_is_idempotent() -> None:
    room = MediaRoom("r3")
    peer = ServerPeer("x", "applicant", room, RTCPeerConnection, True, "inspector")
    await peer.close()
    await peer.close()


@pytest.mark.parametrize(
    "sdp",
    [
        None,
        42,
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",  # no fingerprint
        "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 9,
        "v=0\r\nm=text 9 RTP/AVP 0\r\n",
        "v=0\r\n" + "a=x\r\n" * 20000,
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 00\r\na=ice-ufrag:x\r\n\x00",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=fingerprint:sha-256 zz\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=rtpmap:96 H265/90000\r\n",
    ],
)
async def test_hostile_offers_are_rejected(sdp) -> None:
    room = MediaRoom("r4")
    peer = ServerPeer("x", "applicant", room, RTCPeerConnection, True, "inspector")
    with pytest.raises(BadSdp):
        await peer.answer(sdp)
    await peer.close()


def test_pli_goes_to_the_media_ssrc_not_the_rtx_probe() -> None:
    """Chromium probes bandwidth with RTX padding; a PLI to the RTX SSRC is ignored."""
    from types import SimpleNamespace

    from aiortc import RTCRtpReceiver

    from media.tap import publisher_ssrc

    receiver = RTCRtpReceiver.__new__(RTCRtpReceiver)
    receiver._RTCRtpReceiver__rtx_ssrc = {2222: 1111}  # type: ignore[attr-defined]
    receiver.getSynchronizationSources = lambda: [  # type: ignore[method-assign]
        SimpleNamespace(source=2222, timestamp=20.0),
        SimpleNamespace(source=1111, timestamp=19.0),
    ]
    assert publisher_ssrc(receiver) == 1111


def test_frames_leave_the_jitter_buffer_at_the_marker_bit() -> None:
    from aiortc.rtp import RtpPacket

    from media.tap import _PassThroughJitterBuffer

    def packet(seq: int, ts: int, marker: int) -> RtpPacket:
        p = RtpPacket(sequence_number=seq, timestamp=ts, marker=marker)
        p._data = bytes([seq])  # type: ignore[attr-defined]
        return p

    video = _PassThroughJitterBuffer(capacity=128, is_video=True)
    assert video.add(packet(10, 3000, 0))[1] is None
    _, frame = video.add(packet(11, 3000, 1))  # complete: released now, not when frame 2 starts
    assert frame is not None and frame.data == bytes([10, 11]) and frame.timestamp == 3000
    assert video.add(packet(13, 6000, 1))[1] is None  # 12 missing: wait for it
    _, frame = video.add(packet(12, 6000, 0))
    assert frame is not None and frame.data == bytes([12, 13])
    audio = _PassThroughJitterBuffer(capacity=16, is_video=False)
    _, frame = audio.add(packet(1, 960, 0))
    assert frame is not None and frame.data == bytes([1])


async def test_concurrent_closes_wait_for_the_first() -> None:
    """A second close() while the first runs returns only once teardown has finished."""
    room = MediaRoom("r4")
    pc = RTCPeerConnection()
    peer = ServerPeer("x", "applicant", room, lambda: pc, True, "inspector")
    await asyncio.gather(peer.close(), peer.close(), peer.close())
    assert peer._closing.finished
    await room.close()
    await room.close()
    await pc.close()


def test_loopback_candidates_are_owned_and_given_back() -> None:
    import aioice.ice

    from media.ice import LoopbackCandidates

    original = aioice.ice.get_host_addresses
    first, second = LoopbackCandidates(), LoopbackCandidates()
    first.start()
    first.start()
    second.start()
    assert "127.0.0.1" in aioice.ice.get_host_addresses(True, False)
    first.close()
    assert aioice.ice.get_host_addresses is not original  # the second owner still needs it
    second.close()
    second.close()
    assert aioice.ice.get_host_addresses is original


def test_server_ice_rides_out_an_eight_second_outage() -> None:
    from media.ice import OUTAGE_TOLERANCE_S, check_consent_tolerance, consent_tolerance_s

    check_consent_tolerance()
    assert consent_tolerance_s() >= OUTAGE_TOLERANCE_S > 8


def _vp8_packet(seq: int, ts: int, start: bool, key: bool = False, marker: bool = False):
    from aiortc.rtp import RtpPacket

    p = RtpPacket(sequence_number=seq, timestamp=ts, marker=int(marker))
    body = bytes([0x00 if key else 0x01, seq & 0xFF]) if start else bytes([0xAA, seq & 0xFF])
    p.payload = bytes([0x10 if start else 0x00]) + body
    p._data = body  # type: ignore[attr-defined]  # what vp8_depayload would give
    return p


def test_vp8_frame_start_reads_the_payload_descriptor() -> None:
    from media.tap import vp8_frame_start

    assert vp8_frame_start(bytes([0x10, 0x00])) == (True, True)
    assert vp8_frame_start(bytes([0x10, 0x01])) == (True, False)
    assert vp8_frame_start(bytes([0x00, 0x00])) == (False, False)
    assert vp8_frame_start(bytes([0x11, 0x00])) == (False, False)  # partition 1
    # X, I with a 15-bit picture id, then the payload header of a keyframe (Chromium's shape)
    assert vp8_frame_start(bytes([0x90, 0x80, 0x81, 0x23, 0x9C])) == (True, True)
    assert vp8_frame_start(b"") == (False, False)


def test_a_lost_packet_is_given_up_and_inter_frames_wait_for_a_keyframe(monkeypatch) -> None:
    from media import tap

    clock = [100.0]
    monkeypatch.setattr(tap.time, "monotonic", lambda: clock[0])
    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    assert jb.add(_vp8_packet(1, 0, True, key=True, marker=True))[1] is not None
    # frame 2 loses packet 3 for good; frames 3 and 4 complete behind it
    jb.add(_vp8_packet(2, 3000, True))
    for seq, ts in ((4, 6000), (5, 9000)):
        pli, frame = jb.add(_vp8_packet(seq, ts, True, marker=True))
        assert frame is None and not pli
    clock[0] += tap.HOLE_TIMEOUT_S + 0.01
    pli, frame = jb.add(_vp8_packet(6, 12000, True, marker=True))
    assert pli and frame is None  # gave up on frame 2, asked for a keyframe, dropped inter frames
    assert jb.drain() == []
    assert jb.holes_skipped == 1 and jb.frames_dropped >= 1
    _, frame = jb.add(_vp8_packet(7, 15000, True, key=True, marker=True))
    assert frame is not None and frame.timestamp == 15000
    _, frame = jb.add(_vp8_packet(8, 18000, True, marker=True))
    assert frame is not None  # inter frames flow again after the keyframe


def test_a_late_retransmission_never_takes_the_stream_back_in_time(monkeypatch) -> None:
    """A keyframe answered seconds late arrives after newer frames: whether the buffer
    started afresh after a hole (nothing behind it) or its head is 100 or more packets
    ahead (aiortc restarts there), the old frame is dropped, not released after newer ones."""
    from media import tap

    clock = [100.0]
    monkeypatch.setattr(tap.time, "monotonic", lambda: clock[0])
    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    assert jb.add(_vp8_packet(10, 90_000, True, key=True, marker=True))[1] is not None
    jb.add(_vp8_packet(11, 93_000, True))  # 12 lost for good, nothing usable behind it
    assert jb.add(_vp8_packet(13, 93_000, False)) == (False, None)
    clock[0] += tap.HOLE_TIMEOUT_S + 0.01
    pli, frame = jb.add(_vp8_packet(14, 93_000, False, marker=True))
    assert pli and frame is None and jb.holes_skipped == 1
    # the buffer starts afresh; the retransmitted keyframe of 10 s ago (seq 2) comes first
    assert jb.add(_vp8_packet(2, 0, True, key=True, marker=True)) == (False, None)
    _, frame = jb.add(_vp8_packet(15, 96_000, True, key=True, marker=True))
    assert frame is not None and frame.timestamp == 96_000
    # 150 packets on, a retransmission of a frame older than the head by 150
    for seq in range(16, 166):
        _, frame = jb.add(_vp8_packet(seq, 96_000 + 3000 * (seq - 15), True, marker=True))
        assert frame is not None
    assert jb.add(_vp8_packet(14, 93_000, True, key=True, marker=True)) == (False, None)
    assert jb.add(_vp8_packet(15, 96_000, True, key=True, marker=True)) == (False, None)  # a duplicate, released already
    assert jb.stale_dropped == 3
    _, frame = jb.add(_vp8_packet(166, 96_000 + 3000 * 151, True, marker=True))
    assert frame is not None  # the stream goes on


def test_a_sender_whose_clock_restarts_is_followed() -> None:
    """Late retransmissions come a few at a time; a stream of packets older than the last
    frame is a sender whose RTP clock restarted, and so is a new SSRC."""
    from media import tap

    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    assert jb.add(_vp8_packet(10, 900_000, True, key=True, marker=True))[1] is not None
    released = []
    plis = 0
    for seq in range(11, 11 + tap.STALE_RESTART_PACKETS + 5):
        pli, frame = jb.add(_vp8_packet(seq, 3000 * (seq - 11), True, key=(seq % 4 == 0), marker=True))
        plis += pli
        if frame is not None:
            released.append(frame.timestamp)
    assert jb.stale_dropped == tap.STALE_RESTART_PACKETS - 1
    assert plis == 1  # asked for a keyframe of the new timeline, then followed it from one
    assert released and released == sorted(released) and released[-1] == 3000 * (tap.STALE_RESTART_PACKETS + 4)
    # a restart while the buffer is empty (a hole given up with nothing behind it)
    empty = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    assert empty.add(_vp8_packet(10, 900_000, True, key=True, marker=True))[1] is not None
    empty._skip_to(None)
    for seq in range(11, 11 + tap.STALE_RESTART_PACKETS):
        empty.add(_vp8_packet(seq, 3000 * (seq - 11), True, key=True, marker=True))
    assert empty.stale_dropped == tap.STALE_RESTART_PACKETS - 1
    # another SSRC starts its own timeline at once
    packet = _vp8_packet(500, 0, True, key=True, marker=True)
    packet.ssrc = 4242
    assert jb.add(packet)[1] is not None


def test_a_keyframe_with_a_hole_waits_longer_for_its_retransmission(monkeypatch) -> None:
    from media import tap

    clock = [100.0]
    monkeypatch.setattr(tap.time, "monotonic", lambda: clock[0])
    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    assert jb.add(_vp8_packet(1, 0, True, key=True, marker=True))[1] is not None
    jb.add(_vp8_packet(2, 3000, True, key=True))  # a keyframe; its packet 3 is lost
    jb.add(_vp8_packet(4, 3000, False, marker=True))
    clock[0] += tap.HOLE_TIMEOUT_S + 0.01
    pli, frame = jb.add(_vp8_packet(5, 6000, True, marker=True))
    assert frame is None and not pli and jb.holes_skipped == 0  # still waiting: an inter frame would not be
    pli, frame = jb.add(_vp8_packet(3, 3000, False))  # the retransmission
    assert frame is not None and frame.timestamp == 3000
    # a keyframe whose lost packet never comes back is given up after the longer wait
    jb.add(_vp8_packet(6, 9000, True, key=True))  # its packet 7 is lost for good
    jb.add(_vp8_packet(8, 9000, False, marker=True))
    clock[0] += tap.KEYFRAME_HOLE_TIMEOUT_S + 0.01
    pli, frame = jb.add(_vp8_packet(9, 12000, True, marker=True))
    assert pli and frame is None and jb.holes_skipped == 1


def test_a_keyframe_behind_a_hole_is_released_at_once() -> None:
    from media import tap

    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    jb.add(_vp8_packet(1, 0, True, key=True, marker=True))
    jb.add(_vp8_packet(2, 3000, True))  # 3 lost
    jb.add(_vp8_packet(4, 6000, True, key=True))
    pli, frame = jb.add(_vp8_packet(5, 6000, False, marker=True))
    assert frame is not None and frame.timestamp == 6000 and not pli


def test_a_retransmission_releases_every_frame_queued_behind_it() -> None:
    from media import tap

    jb = tap._PassThroughJitterBuffer(capacity=128, is_video=True)
    jb.add(_vp8_packet(1, 0, True, key=True, marker=True))
    for seq, ts in ((3, 6000), (4, 9000), (5, 12000)):
        jb.add(_vp8_packet(seq, ts, True, marker=True))  # 2 (frame at 3000) is late
    _, frame = jb.add(_vp8_packet(2, 3000, True, marker=True))
    assert frame is not None and frame.timestamp == 3000
    assert [f.timestamp for f in jb.drain()] == [6000, 9000, 12000]


def test_the_bounded_scans_release_what_the_full_scans_did(monkeypatch) -> None:
    """The jitter buffer scans only up to its newest packet and resumes its frame walk at the
    hole it last stopped at (per-packet costs); on a random stream with loss, reordering,
    duplicates, late retransmissions, keyframes and sequence wrap-around it must release and
    drop exactly what walking every slot from the head released and dropped."""
    import random

    from media import tap

    class FullScan(tap._PassThroughJitterBuffer):
        """Every scan and every frame walk from the head, over every slot."""

        def _scan_length(self) -> int:
            return self._capacity

        def _known_hole(self):  # type: ignore[no-untyped-def]
            return None

        def _remove_frame(self, sequence_number: int):  # type: ignore[no-untyped-def]
            self._walk = None
            return super()._remove_frame(sequence_number)

    clock = [100.0]
    monkeypatch.setattr(tap.time, "monotonic", lambda: clock[0])
    skipped = released = 0
    for seed in range(20):
        rng = random.Random(seed)
        fast, full = tap._PassThroughJitterBuffer(capacity=128, is_video=True), FullScan(capacity=128, is_video=True)
        seq, ts, late = rng.randrange(0x10000 - 300, 0x10000), 0, []
        for number in range(600):
            packets = rng.randint(1, 9)
            key = number % 40 == 0
            for k in range(packets):
                # seeds 16-19: a sender that never sets the marker bit (frames end on the next start)
                packet = _vp8_packet(seq & 0xFFFF, ts, k == 0, key=key and k == 0, marker=k == packets - 1 and seed < 16)
                seq += 1
                roll = rng.random()
                if roll < 0.04:
                    late.append(packet)  # retransmitted later, or never
                    continue
                arrivals = [packet]
                if late and roll > 0.9:
                    arrivals.append(late.pop(rng.randrange(len(late))))
                if roll > 0.97:
                    arrivals.reverse()
                if 0.5 < roll < 0.52:
                    arrivals.append(packet)  # a duplicate (a needless retransmission)
                for item in arrivals:
                    a, b = fast.add(item), full.add(item)
                    assert a[0] == b[0] and (a[1] is None) == (b[1] is None), (seed, number)
                    if a[1] is not None:
                        released += 1
                        assert b[1] is not None and (a[1].timestamp, a[1].data) == (b[1].timestamp, b[1].data)
                    assert [(f.timestamp, f.data) for f in fast.drain()] == [(f.timestamp, f.data) for f in full.drain()]
            ts += 3000
            clock[0] += rng.choice((0.05, 0.05, 0.05, 0.6))
        assert (fast.holes_skipped, fast.frames_dropped) == (full.holes_skipped, full.frames_dropped)
        skipped += fast.holes_skipped
    assert skipped > 20 and released > 5000  # the streams did exercise holes and releases


class _Source:
    kind = "video"

    def __init__(self) -> None:
        self.requests = 0

    def request_keyframe(self) -> None:
        self.requests += 1


def _frame(size: int, key: bool = False):
    import av

    from media.tap import VIDEO_TIME_BASE

    p = av.Packet(bytes(size))
    p.pts = 0
    p.time_base = VIDEO_TIME_BASE
    p.is_keyframe = key
    return p


def test_a_subscribers_keyframe_requests_are_paced(monkeypatch) -> None:
    from media import relay

    clock = [10.0]
    monkeypatch.setattr(relay.time, "monotonic", lambda: clock[0])
    track = relay.ForwardedTrack("video", "i<-a")
    source = _Source()
    track.attach(source)
    before = source.requests
    for _ in range(10):
        track.request_keyframe()
        clock[0] += 0.1
    assert source.requests - before == 1 and track.keyframe_requests_paced == 9
    clock[0] += relay.SUBSCRIBER_KEYFRAME_INTERVAL_S
    track.request_keyframe()
    assert source.requests - before == 2


async def test_a_link_that_cannot_carry_video_gets_audio_only_then_a_retry(monkeypatch) -> None:
    from media import relay

    clock = [10.0]
    monkeypatch.setattr(relay.time, "monotonic", lambda: clock[0])
    track = relay.ForwardedTrack("video", "i<-a")
    track.attach(_Source())
    track.write(_frame(5000, key=True))

    async def one_second() -> None:  # 20 fps of 2500-byte frames: 400 kb/s forwarded
        for _ in range(20):
            track.write(_frame(2500))
            while not track._queue.empty():
                await track.recv()
            clock[0] += 0.05

    await one_second()
    await one_second()
    assert 300_000 < track.forwarded_bps() < 500_000
    track.link_report(1_000_000, 0.0)
    assert not track.video_paused
    for _ in range(5):  # a low estimate without loss is our own send jitter: keep video
        track.link_report(100_000, 0.0)
        await one_second()
    assert not track.video_paused
    # 20 % lost: the link's cap comes down first (the publisher is asked to send less);
    # this publisher ignores it, so once it sends 1.5x the cap for LINK_WEAK_S, audio only
    for second in range(20):
        track.link_report(None, 0.2, ReceiverReport(20 * second, 1000 + 100 * second))  # 100 packets a second, 20 lost
        track.link_report(100_000, None)
        if track.video_paused:
            break
        if second >= 1:  # the first report only starts the count
            assert track.link_cap_bps is not None and track.link_cap_bps < 400_000
        await one_second()
    assert track.video_paused and track.pauses == 1 and second >= 4
    track.write(_frame(2500, key=True))
    assert track._queue.empty()  # paused: nothing queued
    clock[0] += relay.VIDEO_RETRY_S + 0.1
    track.write(_frame(2500))  # retry: waits for a keyframe again
    assert track._queue.empty() and not track.video_paused
    track.write(_frame(4000, key=True))
    assert track._queue.qsize() == 1
    # audio tracks ignore the link estimate
    audio = relay.ForwardedTrack("audio", "i<-a")
    audio.link_report(1000, 0.5)
    assert not audio.video_paused


async def test_with_transport_feedback_a_link_that_cannot_carry_video_gets_audio_only(monkeypatch) -> None:
    """Chromium sends no REMB once transport-cc is negotiated: what its feedback says the
    link delivered stands in for it, and a queue that keeps cutting the cap to its floor
    while the link loses 20 % and delivers a quarter of what is sent pauses video."""
    from media import relay
    from media.queue_estimator import QueueSample

    clock = [10.0]
    monkeypatch.setattr(relay.time, "monotonic", lambda: clock[0])
    track = relay.ForwardedTrack("video", "i<-a")
    track.attach(_Source())
    track.write(_frame(5000, key=True))

    async def one_second() -> None:  # 400 kb/s forwarded, feedback every 100 ms
        for step in range(20):
            track.write(_frame(2500))
            while not track._queue.empty():
                await track.recv()
            clock[0] += 0.05
            if step % 2:
                track.link_queue(QueueSample(queue_s, slope, through, loss))

    queue_s, slope, through, loss = 0.0, 0.0, 390_000.0, 0.0
    await one_second()
    await one_second()
    assert not track.video_paused and track.link_cap_bps is None
    queue_s, slope, through, loss = 0.3, 0.5, 100_000.0, 0.2
    for _ in range(8):
        await one_second()
        if track.video_paused:
            break
    assert track.video_paused and track.pauses == 1
    assert track.link_bps is not None and track.link_bps <= 100_000


@pytest.mark.parametrize("delivered_share, paused", [(0.6, True), (0.9, False)])
async def test_at_the_floor_a_link_that_delivers_little_of_its_video_gets_audio_only(monkeypatch, delivered_share, paused) -> None:
    """The publisher follows the cap down to its floor (40 kb/s) and the link still
    loses: one that delivers 60 % of that video cannot carry video (an 80 kbit/s link,
    the audio taking most of it: 10-20 of 30-40 kb/s in the field bench), one that
    delivers 90 % of it can (150 kbit/s), however long its queue stands."""
    from media import bitrate_cap, relay
    from media.queue_estimator import QueueSample

    clock = [10.0]
    monkeypatch.setattr(relay.time, "monotonic", lambda: clock[0])
    track = relay.ForwardedTrack("video", "i<-a")
    track.attach(_Source())
    track.write(_frame(5000, key=True))
    while not track._queue.empty():
        await track.recv()

    async def one_second() -> None:  # what the cap allows, feedback every 100 ms
        cap = track.link_cap_bps or 400_000
        for step in range(20):
            track.write(_frame(int(cap / 8 / 20)))
            while not track._queue.empty():
                await track.recv()
            clock[0] += 0.05
            if step % 2:
                sent = track.forwarded_bps()
                track.link_queue(QueueSample(0.3, 0.0, delivered_share * min(sent, 0.6 * 400_000), 0.2))

    for _ in range(3):
        await one_second()  # the standing queue cuts the cap to its floor, and clock moves on
    assert track.link_cap_bps == bitrate_cap.FLOOR_BPS and not track.video_paused
    for _ in range(8):
        await one_second()
        if track.video_paused:
            break
    assert track.video_paused is paused
    if not paused:
        return
    # A retry on a link no better: its first reading says "not weak" (the keyframe is still
    # on the way), and the next pause is still twice as long.
    clock[0] = track._paused_until + 0.1
    track.write(_frame(1000, key=True))
    assert not track.video_paused
    track.link_queue(QueueSample(0.0, 0.0, 40_000, 0.0))
    for _ in range(8):
        await one_second()
        if track.video_paused:
            break
    # paused within the last second for 2 x VIDEO_RETRY_S (it was VIDEO_RETRY_S again)
    assert track.video_paused and 2 * relay.VIDEO_RETRY_S - 1 <= track._paused_until - clock[0] <= 2 * relay.VIDEO_RETRY_S


async def test_missing_packets_are_nacked_again_until_repaired(monkeypatch) -> None:
    from media import relay, tap

    missing = {100, 101}
    sent: list[list[int]] = []

    async def send_nack(receiver, seqs):
        sent.append(sorted(seqs))
        missing.discard(100)  # the first retry repaired 100
        return True

    monkeypatch.setattr(relay, "NACK_RETRY_S", 0.01)
    monkeypatch.setattr(relay, "NACK_TICK_S", 0.01)
    monkeypatch.setattr(tap, "missing_packets", lambda receiver: set(missing))
    monkeypatch.setattr(tap, "send_nack", send_nack)
    up = relay.UpTrack("video", receiver=None, owner="a")  # type: ignore[arg-type]
    up._spawn(up._renack())
    await asyncio.sleep(0.3)
    await up.close()
    assert sent and sent[0] == [100, 101]
    assert all(seqs == [101] for seqs in sent[1:])
    assert sum(s.count(101) for s in sent) == relay.NACK_RETRIES - 1  # aiortc sent the first


async def test_a_missing_packet_is_nacked_again_once_per_round_trip(monkeypatch) -> None:
    """Not on a fixed period: once 1.2 round trips have passed since its last NACK, so a
    lost retransmission costs about a round trip more, not up to 300 ms."""
    from media import relay, tap

    missing = {7}
    sent: list[float] = []

    async def send_nack(receiver, seqs):
        sent.append(time.monotonic())
        return True

    monkeypatch.setattr(relay, "NACK_RETRY_S", 0.01)
    monkeypatch.setattr(relay, "NACK_TICK_S", 0.005)
    monkeypatch.setattr(tap, "missing_packets", lambda receiver: set(missing))
    monkeypatch.setattr(tap, "send_nack", send_nack)
    up = relay.UpTrack("video", receiver=None, owner="a", rtt=lambda: 0.1)  # type: ignore[arg-type]
    start = time.monotonic()
    up._spawn(up._renack())
    await asyncio.sleep(0.4)
    await up.close()
    # aiortc's own NACK at the gap, then one at ~0.12 s, ~0.24 s, ~0.36 s
    assert 2 <= len(sent) <= 3, [round(t - start, 3) for t in sent]
    assert sent[0] - start >= 0.12
    assert all(b - a >= 0.12 - 0.001 for a, b in zip(sent, sent[1:]))


async def test_state_reports_can_be_re_pointed() -> None:
    room = MediaRoom("r5")
    peer = ServerPeer("x", "inspector", room, RTCPeerConnection, True, "applicant")
    seen: list[str] = []

    async def report(state: str) -> None:
        seen.append(state)

    peer.set_on_state(report)
    assert peer._on_state is report and not peer.video_paused
    await peer.close()


def test_loss_based_cap_cuts_holds_and_grows() -> None:
    from media.bitrate_cap import FLOOR_BPS, MIN_PACKETS, LinkCap, RELEASE_BPS

    class Link:
        """Receiver reports of a link: cumulative lost and highest sequence number."""

        def __init__(self) -> None:
            self.cap, self.lost, self.seq, self.t = LinkCap(), 0, 5000, 0.0

        def report(self, packets: int, lost: int, sending: float, dt: float = 1.0) -> float | None:
            self.lost, self.seq, self.t = self.lost + lost, self.seq + packets, self.t + dt
            return self.cap.report(self.lost, self.seq, sending, now=self.t)

    link = Link()
    assert link.report(100, 0, 1e6) is None  # the first report starts the count
    assert link.report(100, 5, 1e6) is None  # 5 % random loss NACK repairs: no cap
    # 2 of 10 packets lost is 20 %, but too few packets to say so; with the next ones, 16 %
    assert link.report(10, 2, 1e6) is None
    assert link.report(MIN_PACKETS, 8, 1e6) == 1e6 * (1 - 0.5 * 10 / 60)
    first = link.cap.bps
    # the packets of the next 1.5 s were sent before the publisher could follow: not counted
    assert link.report(100, 90, 1e6, dt=0.1) == first and link.report(100, 90, 1e6) == first
    assert link.report(100, 90, 1e6) == first  # settled: counting starts here
    second = link.report(100, 30, 1e6)
    assert second is not None and abs(second - first * (1 - 0.5 * 0.3)) < 1  # from the cap, not the rate sent
    for _ in range(2):
        link.report(100, 0, 700_000)  # settling again
    assert link.report(100, 6, 700_000) == second  # in between: hold
    grown = link.report(100, 1, 700_000)
    assert grown is not None and abs(grown - second * 1.08) < 1  # under 2 %: grow
    assert link.report(100, 0, 100_000) == grown  # twice 100 kb/s sent is under the cap already: no growth
    assert link.cap.report(0, 10, 1e6, now=100.0) == grown  # a new stream (sequence numbers restart)
    for _ in range(100):  # a link that keeps losing ends at the floor
        link.report(100, 90, 1e6)
    assert link.cap.bps == FLOOR_BPS and link.cap.at_floor

    for _ in range(300):  # a clean one grows past RELEASE_BPS and is dropped
        if link.report(100, 0, link.cap.bps or RELEASE_BPS) is None:
            break
    assert link.cap.bps is None


def test_a_filling_queue_cuts_the_cap_to_what_got_through() -> None:
    """A deep queue (tbf, a carrier's buffer) delays before it drops: the RTT says so first."""
    from media.bitrate_cap import GROW_DELAY_S, QUEUE_DELAY_S, LinkCap

    cap, t, seq, lost = LinkCap(), 0.0, 1000, 0

    def report(packets: int, dropped: int, rtt: float | None, sending: float = 1e6) -> float | None:
        nonlocal t, seq, lost
        t, seq, lost = t + 1.0, seq + packets, lost + dropped
        return cap.report(lost, seq, sending, now=t, rtt_s=rtt)

    assert report(100, 0, 0.040) is None  # the first report starts the count
    assert report(100, 0, 0.045) is None  # a base RTT and some jitter: nothing to say
    # 300 ms of queue and 10 % of the last second's packets lost: cut at once, to what got
    # through less enough to drain the queue (0.7x)
    assert report(30, 3, 0.040 + 0.3) == pytest.approx(0.7 * 1e6 * 0.9)
    assert cap.queue_cuts == 1
    first = cap.bps
    report(100, 0, 0.3)  # settling: not counted
    report(100, 0, 0.3)
    assert cap.bps == first
    # no loss, but the queue has not drained below GROW_DELAY_S: hold
    assert report(100, 0, 0.040 + GROW_DELAY_S + 0.01, sending=first) == first
    assert report(100, 0, 0.041, sending=first) == pytest.approx(first * 1.08)  # drained: grow
    # a queue just over QUEUE_DELAY_S, and a fifth of the last second's packets lost
    second = report(100, 20, 0.040 + QUEUE_DELAY_S + 0.01, sending=first)
    assert second == pytest.approx((1 - QUEUE_DELAY_S - 0.01) * first * 0.8) and cap.queue_cuts == 2
    first = second
    report(100, 0, 0.041)
    report(100, 0, 0.041)
    # without RTTs (reports naming no sender report of ours) the loss rules alone apply
    assert first is not None and report(100, 0, None, sending=first) == pytest.approx(first * 1.08)


def test_report_rtt_reads_lsr_and_dlsr_against_our_sender_report() -> None:
    from media.tap import report_rtt

    lsr, sent_at = 0x12345678, 1000.0
    dlsr = int(0.100 * 65536)  # the subscriber held it 100 ms
    assert report_rtt(lsr, dlsr, lsr, sent_at, 1000.350) == pytest.approx(0.250, abs=1e-4)
    assert report_rtt(0, 0, lsr, sent_at, 1000.350) is None  # no sender report received yet
    assert report_rtt(lsr - 1, dlsr, lsr, sent_at, 1000.350) is None  # an older one: its send time is gone
    assert report_rtt(lsr, dlsr, None, None, 1000.350) is None


def test_remb_packet_parses_as_aiortc_reads_it() -> None:
    """The seam: the REMB we build is what aiortc (and libwebrtc) parse."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPacket, RtcpPsfbPacket, unpack_remb_fci

    from media.bitrate_cap import pack_remb

    for bps in (100_000, 437_123, 30_000_000):
        (packet,) = RtcpPacket.parse(pack_remb(0x1234, [0xABCD], bps))
        assert isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP and packet.ssrc == 0x1234
        bitrate, ssrcs = unpack_remb_fci(packet.fci)
        assert ssrcs == [0xABCD] and bps - bitrate < bps / 2**17


async def test_remb_sender_sends_the_cap_then_releases_it() -> None:
    from media import bitrate_cap

    sent: list[bytes] = []
    limit: list[int | None] = [None]

    async def send(data: bytes) -> None:
        sent.append(data)

    sender = bitrate_cap.RembSender(send, lambda: (1, 2), lambda: limit[0], interval_s=0.01)
    assert sender.next_value() is None  # never capped: nothing to say
    limit[0] = 250_000
    assert sender.next_value() == 250_000 + bitrate_cap.AUDIO_ALLOWANCE_BPS  # the REMB bounds audio and video
    limit[0] = None
    assert [sender.next_value() for _ in range(4)] == [bitrate_cap.UNCAPPED_BPS] * 3 + [None]
    limit[0] = 300_000
    sender.start()
    sender.start()  # idempotent
    for _ in range(200):
        if sent:
            break
        await asyncio.sleep(0.01)
    await sender.close()
    await sender.close()
    assert sent and sender.last_sent == 300_000 + bitrate_cap.AUDIO_ALLOWANCE_BPS


def test_remb_sender_says_a_change_at_once_and_repeats_it_each_second() -> None:
    from media import bitrate_cap

    limit: list[int | None] = [200_000]

    async def send(data: bytes) -> None:
        pass

    sender = bitrate_cap.RembSender(send, lambda: (1, 2), lambda: limit[0], interval_s=0.25, repeat_s=1.0)
    rounds = []
    for n in range(8):
        if n == 5:
            limit[0] = 150_000
        rounds.append(bool(sender.packets(1, 2)))
    # sent on the first round, again a second (4 rounds) later, and on the round the cap changed
    assert rounds == [True, False, False, False, True, True, False, False]


async def test_retransmissions_once_per_round_trip_and_within_the_cap(monkeypatch) -> None:
    from media import tap

    clock = [100.0]
    monkeypatch.setattr(tap.time, "monotonic", lambda: clock[0])
    sent: list[int] = []

    class Sender:
        async def _retransmit(self, sequence_number: int) -> None:
            sent.append(sequence_number)

    sender = Sender()
    rtt: list[float | None] = [0.3]
    cap: list[float | None] = [None]
    tap.paced_retransmission(sender, lambda: rtt[0], lambda: cap[0])  # type: ignore[arg-type]
    await sender._retransmit(7)
    await sender._retransmit(7)  # asked again within the round trip: the first is on its way
    clock[0] += 0.37
    await sender._retransmit(7)  # 1.2 round trips later: it may have been lost
    assert sent == [7, 7]
    # a capped link: retransmissions within RETRANSMIT_SHARE of the cap, a second deep
    cap[0] = 320_000  # 80 kb/s for retransmissions: ten packets a second
    sent.clear()
    clock[0] += 1.0
    for seq in range(100, 130):
        await sender._retransmit(seq)
    assert len(sent) == 10
    clock[0] += 0.5
    for seq in range(200, 230):
        await sender._retransmit(seq)
    assert len(sent) == 15


def test_retransmissions_are_budgeted_only_while_the_subscribers_queue_stands() -> None:
    """Random loss on a link with room: every NACK answered; an overfull link: the cap's budget."""
    from media import relay
    from media.queue_estimator import QueueSample

    track = relay.ForwardedTrack("video", "i<-a")
    assert track.retransmission_cap_bps() is None  # nothing known: uncapped
    track._bytes.append((0.0, 50_000))
    track._bytes_total = 50_000
    track.link_queue(QueueSample(0.3, 0.5, 150_000, 0.02), now=1.0)  # a rising queue cuts the cap
    cap = track.link_cap_bps
    assert cap is not None and track.retransmission_cap_bps() == cap
    track.link_queue(QueueSample(0.0, 0.0, 150_000, 0.15), now=1.1)  # the queue drained, 15 % random loss
    assert track.link_cap_bps is not None and track.retransmission_cap_bps() is None


def test_moderate_loss_alone_cuts_no_further_than_the_loss_floor() -> None:
    """15 % random loss, no queue: the cap comes down, but not under LOSS_FLOOR_BPS (NACK
    repairs such loss; it says nothing about the link's capacity)."""
    from media.bitrate_cap import LOSS_FLOOR_BPS, LinkCap

    cap, t, seq, lost = LinkCap(), 0.0, 1000, 0
    for _ in range(200):
        t, seq, lost = t + 1.0, seq + 100, lost + 15
        cap.report(lost, seq, 1e6, now=t)
    assert cap.bps == LOSS_FLOOR_BPS and not cap.at_floor
    cap.bps = 60_000  # the queue took it lower: loss alone does not lift it back
    for _ in range(5):
        t, seq, lost = t + 1.0, seq + 100, lost + 15
        cap.report(lost, seq, 60_000, now=t)
    assert cap.bps == 60_000
