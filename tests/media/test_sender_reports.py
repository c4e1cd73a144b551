"""The subscriber's sender reports carry the publisher's capture clock (media/capture_clock.py).

Real aiortc peers: a publisher whose clock runs 1000 s behind the server's (its sender
reports say so), the relay, a subscriber that records the sender reports it gets. aiortc's
own sender would stamp them with the server's clock; lip sync needs the publisher's.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpPacket, RtcpSrPacket

from media import tap
from media.capture_clock import CaptureClock
from media.peer import ServerPeer
from media.relay import MediaRoom
from testkit.media import ClientPeer, PacketAudioTrack, PacketVideoTrack, encode_opus, encode_vp8, wait_for

BEHIND_S = 1000


def test_the_capture_clock_maps_pts_through_the_latest_report() -> None:
    clock = CaptureClock(90_000)
    assert clock.ntp_at(0) is None
    clock.report(100 << 32, 9000)  # pts 9000 (0.1 s) was captured at NTP 100 s
    assert clock.ntp_at(9000) == 100 << 32
    assert clock.ntp_at(9000 + 90_000) == 101 << 32
    assert clock.ntp_at(9000 - 45_000) == (100 << 32) - (1 << 31)  # half a second before


def _ntp_s(ntp: int) -> float:
    return ntp / (1 << 32)


async def test_the_subscriber_gets_the_publishers_clock_in_its_sender_reports() -> None:
    room = MediaRoom("sr")
    applicant = ClientPeer(video=PacketVideoTrack(encode_vp8(320, 240, frames=20)),
                           audio=PacketAudioTrack(encode_opus(1.0)), receive=False)
    inspector = ClientPeer()
    pub = ServerPeer("a", "applicant", room, RTCPeerConnection, publishes=True, source_role=None)
    sub = ServerPeer("i", "inspector", room, RTCPeerConnection, publishes=False, source_role="applicant")
    published: list[float] = []
    received: dict[int, list[tuple[float, int]]] = {}
    try:
        for transceiver in applicant.pc.getTransceivers():
            sender = transceiver.sender
            send_rtcp = sender._send_rtcp

            async def behind(packets: list, send_rtcp=send_rtcp) -> None:  # type: ignore[no-untyped-def]
                for packet in packets:
                    if isinstance(packet, RtcpSrPacket):
                        packet.sender_info.ntp_timestamp -= BEHIND_S << 32
                        published.append(_ntp_s(packet.sender_info.ntp_timestamp))
                await send_rtcp(packets)

            sender._send_rtcp = behind  # type: ignore[method-assign]
        await applicant.accept(await pub.answer(await applicant.offer()))
        await inspector.accept(await sub.answer(await inspector.offer()))
        transport = inspector.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtcp_data

        async def record(data: bytes) -> None:
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpSrPacket):
                    received.setdefault(packet.ssrc, []).append(
                        (_ntp_s(packet.sender_info.ntp_timestamp), packet.sender_info.rtp_timestamp))
            await handle(data)

        transport._handle_rtcp_data = record  # type: ignore[method-assign]
        # both forwarded tracks report, each more than once
        assert await wait_for(lambda: len(received) == 2 and all(len(v) >= 2 for v in received.values()), timeout=30)
        assert published
        for reports in received.values():
            for ntp, _ in reports:
                # the publisher's clock, 1000 s behind: aiortc's own would read the server's
                assert abs(ntp - published[-1]) < 5, (ntp, published[-1])
            (t0, r0), (t1, r1) = reports[-2], reports[-1]
            assert t1 > t0 and r1 != r0
        # the subscriber's receiver reports name those reports: the round trip is measured
        video = sub.forwarded_tracks["video"]
        assert await wait_for(lambda: video.link_rtt_s() is not None, timeout=15)
        rtt = video.link_rtt_s()
        assert rtt is not None and 0 <= rtt < 1
    finally:
        for closable in (pub, sub, applicant, inspector):
            await closable.close()
        await room.close()


def test_frame_pts_reads_the_mapper_without_advancing_it() -> None:
    from aiortc.rtcrtpreceiver import TimestampMapper

    class Receiver:
        pass

    receiver = Receiver()
    mapper = TimestampMapper()
    setattr(receiver, tap._TIMESTAMPS_ATTR, mapper)
    assert tap.frame_pts(receiver, 5) is None  # type: ignore[arg-type]
    mapper.map(0xFFFFFF00)
    assert mapper.map(0xFFFFFFF0) == 0xF0
    assert tap.frame_pts(receiver, 0x10) == 0x110  # across the wrap  # type: ignore[arg-type]
    assert tap.frame_pts(receiver, 0xFFFFFF80) == 0x80  # type: ignore[arg-type]
    assert mapper.map(0x20) == 0x120  # the mapper itself unchanged by the reads
