"""One participant's peer connection to the server (the SFU side)."""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable, Optional

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from aiortc.rtp import RtpPacket

from . import tap
from .bitrate_cap import RembSender
from .closing import CloseOnce
from .ice import count_late_consent_answers
from .pacer import Pacer
from .relay import ForwardedTrack, MediaRoom, UpTrack
from .sdp import BadSdp, check_offer, reason
from .queue_estimator import QueueEstimator
from .twcc import Feedback, TransportFeedback

logger = logging.getLogger(__name__)

#: The codecs Takan relays. One codec per kind means a publisher's frames suit every
#: subscriber unchanged.
RELAYED_MIME_TYPES = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}
KINDS = ("audio", "video")

StateCallback = Callable[[str], Awaitable[None]]


class ServerPeer:
    """The server end of one participant's RTCPeerConnection.

    A peer *publishes* its audio and video into the room's slots ``(role, kind)`` and
    *subscribes* to the slots of ``source_role``. Closing is idempotent.
    """

    def __init__(
        self,
        peer_id: str,
        role: str,
        room: MediaRoom,
        pc_factory: Callable[[], RTCPeerConnection],
        publishes: bool,
        source_role: Optional[str],
        on_state: Optional[StateCallback] = None,
    ) -> None:
        self.peer_id = peer_id
        self.role = role
        self._room = room
        self._pc_factory = pc_factory
        self._publishes = publishes
        self._source_role = source_role
        self._on_state = on_state
        self._pc: Optional[RTCPeerConnection] = None
        self._ups: list[UpTrack] = []
        self._forwarded: dict[str, ForwardedTrack] = {}
        self._pending_candidates: list[dict[str, object]] = []
        self._remote_set = False
        self._closed = False
        self._closing = CloseOnce()
        #: Transport-wide congestion control feedback to the publisher (None if the offer
        #: did not ask for it, or this peer publishes nothing).
        self.transport_feedback: Optional[TransportFeedback] = None
        #: The subscribers' links' cap on this publisher's bitrate, sent as REMB (beside
        #: transport feedback, which libwebrtc's send-side estimator runs on).
        self.bitrate_cap: Optional[RembSender] = None
        #: The subscriber's link read from its transport feedback on what we send it
        #: (None if its offer did not ask for transport-cc, or it subscribes to nothing).
        self.queue_estimator: Optional[QueueEstimator] = None
        #: Paces the video sent to this subscriber (media/pacer.py), once it has transport-cc.
        self.pacer: Optional[Pacer] = None
        self._media_ssrc: Optional[int] = None
        self._arrival: Callable[[], float] = time.monotonic

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState if self._pc is not None else "new"

    def set_on_state(self, on_state: Optional[StateCallback]) -> None:
        """Send state changes elsewhere: the participant's socket changed while this peer
        was kept (a signalling reconnection inside the session's grace window)."""
        self._on_state = on_state

    @property
    def video_paused(self) -> bool:
        """The video to this subscriber is paused because its link cannot carry it."""
        track = self._forwarded.get("video")
        return track.video_paused if track is not None else False

    @property
    def up_tracks(self) -> tuple[UpTrack, ...]:
        return tuple(self._ups)

    @property
    def forwarded_tracks(self) -> dict[str, ForwardedTrack]:
        return dict(self._forwarded)

    async def answer(self, offer_sdp: object) -> str:
        """Apply the browser's offer and return the server's answer SDP."""
        if self._pc is not None or self._closed:
            raise RuntimeError("a ServerPeer answers one offer; make a new one to renegotiate")
        sdp = check_offer(offer_sdp)
        tap.use_fast_clock()
        count_late_consent_answers()
        pc = self._pc_factory()
        self._pc = pc
        pc.on("connectionstatechange", self._state_changed)
        pc.on("track", self._track_received)
        for kind in KINDS:
            self._add_transceiver(pc, kind)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError, KeyError...
            raise BadSdp(f"the offer could not be applied: {reason(exc)}") from exc
        self._remote_set = True
        transport_cc = tap.negotiate_transport_cc(pc)
        if transport_cc and self._forwarded:
            # The subscriber's leg: number what we send, read the queue from its feedback.
            self.queue_estimator = QueueEstimator()
            video = self._forwarded.get("video")
            if video is not None:
                self.pacer = Pacer(lambda: video.pacing_bps)
            tap.send_transport_cc(pc, self.queue_estimator.sent, self._transport_feedback_received,
                                  self.pacer.wait if self.pacer is not None else None)
        if self._publishes and transport_cc:
            self.transport_feedback = TransportFeedback(
                self._send_feedback, self._feedback_ssrcs, name=self.peer_id
            )
            self.transport_feedback.start()
            self.bitrate_cap = RembSender(self._send_feedback, self._feedback_ssrcs, self._subscribers_cap, name=self.peer_id)
            self.bitrate_cap.start()
            self._arrival = tap.arrival_clock(pc.getTransceivers()[0].receiver)
        for up in self._ups:
            await self._room.publish(self.role, up)
        for candidate in self._pending_candidates:
            await self._add_candidate(candidate)
        self._pending_candidates.clear()
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        if self.transport_feedback is not None:
            # ICE has gathered: its sockets exist now.
            tap.use_kernel_timestamps(pc.getTransceivers()[0].receiver)
        return pc.localDescription.sdp

    def _add_transceiver(self, pc: RTCPeerConnection, kind: str) -> None:
        forwarded: Optional[ForwardedTrack] = None
        if self._source_role is not None:
            forwarded = ForwardedTrack(kind, name=f"{self.peer_id}<-{self._source_role}")
        if forwarded is not None and self._publishes:
            direction = "sendrecv"
        elif forwarded is not None:
            direction = "sendonly"
        else:
            direction = "recvonly"
        transceiver: RTCRtpTransceiver = pc.addTransceiver(
            forwarded if forwarded is not None else kind, direction=direction
        )
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities(kind).codecs
            if c.mimeType in RELAYED_MIME_TYPES[kind]
        ]
        transceiver.setCodecPreferences(codecs)
        if forwarded is not None:
            assert self._source_role is not None
            self._forwarded[kind] = forwarded
            tap.on_keyframe_request(transceiver.sender, forwarded.request_keyframe)
            tap.on_subscriber_feedback(transceiver.sender, forwarded.link_report)
            tap.paced_retransmission(transceiver.sender, forwarded.link_rtt_s, forwarded.retransmission_cap_bps)
            tap.report_capture_time(transceiver.sender, forwarded.last_capture)
            self._room.add_sink((self._source_role, kind), forwarded)

    def _track_received(self, track: object) -> None:
        if not self._publishes or self._pc is None:
            return
        for transceiver in self._pc.getTransceivers():
            if transceiver.receiver.track is track:
                up = UpTrack(transceiver.kind, transceiver.receiver, owner=self.peer_id, rtt=self._round_trip)
                up.start()
                self._ups.append(up)
                receiver = transceiver.receiver

                def on_packet(packet: RtpPacket) -> None:
                    seq = packet.extensions.transport_sequence_number
                    if seq is not None and self.transport_feedback is not None:
                        self.transport_feedback.on_packet(seq, self._arrival())
                    if not tap.is_rtx_ssrc(receiver, packet.ssrc):
                        self._media_ssrc = packet.ssrc

                tap.observe_rtp(receiver, on_packet)
                return

    def _round_trip(self) -> Optional[float]:
        """The round trip to this peer, from its receiver reports on the video we send it
        (one transport, so the same path its retransmissions take; only video's cap reads
        reports); None if it subscribes to no video or has not reported yet."""
        video = self._forwarded.get("video")
        return video.link_rtt_s() if video is not None else None

    def _transport_feedback_received(self, feedback: Feedback) -> None:
        assert self.queue_estimator is not None
        sample = self.queue_estimator.feedback(feedback)
        video = self._forwarded.get("video")
        if sample is not None and video is not None:
            video.link_queue(sample)

    def _subscribers_cap(self) -> Optional[int]:
        caps = [cap for up in self._ups if up.kind == "video" and (cap := up.bitrate_cap()) is not None]
        return min(caps) if caps else None

    async def _send_feedback(self, data: bytes) -> None:
        assert self._pc is not None
        for transceiver in self._pc.getTransceivers():
            await tap.send_rtcp(transceiver.receiver, data)  # one transport (BUNDLE)
            return

    def _feedback_ssrcs(self) -> Optional[tuple[int, int]]:
        """(our RTCP SSRC, one of the publisher's media SSRCs), once both are known."""
        if self._pc is None or self._media_ssrc is None:
            return None
        for transceiver in self._pc.getTransceivers():
            ssrc = tap.rtcp_ssrc(transceiver.receiver)
            if ssrc is not None:
                return ssrc, self._media_ssrc
        return None

    async def _state_changed(self) -> None:
        if self._pc is None:
            return
        state = self._pc.connectionState
        logger.info("peer %s (%s): %s", self.peer_id, self.role, state)
        if self._on_state is not None:
            await self._on_state(state)

    async def add_candidate(self, candidate: dict[str, object]) -> None:
        """Add one trickled remote candidate (buffered until the offer is applied)."""
        if not self._remote_set:
            self._pending_candidates.append(candidate)
            return
        await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: dict[str, object]) -> None:
        assert self._pc is not None
        text = candidate.get("candidate")
        if not text:
            return  # end of candidates: aiortc needs no marker
        assert isinstance(text, str)
        try:
            parsed = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        except (ValueError, IndexError, AssertionError) as exc:  # aiortc asserts on short lines
            raise BadSdp(f"bad ICE candidate {text[:80]!r}: {reason(exc)}") from exc
        parsed.sdpMid = candidate.get("sdpMid")  # type: ignore[assignment]
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")  # type: ignore[assignment]
        try:
            await self._pc.addIceCandidate(parsed)
        except Exception as exc:
            raise BadSdp(f"ICE candidate not accepted: {reason(exc)}") from exc

    def request_keyframes(self) -> None:
        """Ask the publishers this peer watches for a keyframe (e.g. after a glitch)."""
        for track in self._forwarded.values():
            track.request_keyframe()

    async def close(self) -> None:
        """Leave the room and close the peer connection; idempotent, and a concurrent
        second call returns only once the first has finished."""
        self._closed = True
        await self._closing.run(self._teardown)

    async def _teardown(self) -> None:
        if self.transport_feedback is not None:
            await self.transport_feedback.close()
        if self.bitrate_cap is not None:
            await self.bitrate_cap.close()
        for kind, track in self._forwarded.items():
            assert self._source_role is not None
            self._room.remove_sink((self._source_role, kind), track)
            track.stop()
        for up in self._ups:
            if self._room.publisher((self.role, up.kind)) is up:
                await self._room.unpublish(up)
            else:
                await up.close()
        if self._pc is not None:
            await self._pc.close()
        logger.info("peer %s (%s): closed", self.peer_id, self.role)
