"""Socket.IO handlers: the signaling protocol of docs/protocol.md."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any, Awaitable, Callable, Optional

import socketio

from approval.errors import BadRequest, Forbidden, TakanError
from approval.inspections import Inspection, InspectionBook, now_utc, parse_rfc3339, rfc3339
from evidence.journal import Journal
from media.sdp import BadSdp

from . import messages
from .actions import SessionActions
from .otp import OneTimeCodes
from .problems import error_ack
from .rooms import SINGLE_HOLDER_ROLES, Participant, Room, Rooms
from .timer import SessionTimer
from .tokens import TokenExpired, TokenInvalid, TokenSigner

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_SECOND = 50

_ALL = frozenset({"inspector", "applicant", "observer"})
_PUBLISHERS = frozenset({"inspector", "applicant"})
#: Which link roles may send each client event. Only these events are dispatched
#: (deny by default); tests/signaling/test_permissions.py checks every handler is listed.
EVENT_ROLES: dict[str, frozenset[str]] = {
    "join": _ALL,
    "offer": _ALL,
    "ice": _ALL,
    "keyframe": _ALL,
    "media": _PUBLISHERS,
    "chat": _PUBLISHERS,
    "signature": _PUBLISHERS,
    "location": frozenset({"applicant"}),
    "otp_send": frozenset({"applicant"}),
    "otp_verify": frozenset({"applicant"}),
    "end": frozenset({"inspector"}),
    "prompt": frozenset({"inspector"}),
    "capture": frozenset({"inspector"}),
    "note": frozenset({"inspector"}),
    "sign_request": frozenset({"inspector"}),
    "overtime": frozenset({"inspector"}),
}
MAX_CONNECTS_PER_MINUTE = 60

class NotJoined(TakanError):
    status, code, title = 409, "not_joined", "Not joined"


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SessionNamespace(socketio.AsyncNamespace):
    """The default namespace: one connection per participant's page."""

    def __init__(
        self,
        rooms: Rooms,
        book: InspectionBook,
        signer: TokenSigner,
        ice_servers: Callable[[str], list[dict[str, Any]]],
        journal: Journal,
        base_url: str,
        session_limit_s: Optional[float] = None,
        warnings_for: Optional[Callable[[Inspection], list[dict[str, Any]]]] = None,
        otp: Optional[OneTimeCodes] = None,
    ) -> None:
        super().__init__("/")
        self.rooms = rooms
        self.book = book
        self.signer = signer
        self.ice_servers = ice_servers
        self.journal = journal
        self.base_url = base_url
        self.session_limit_s = session_limit_s
        self.actions = SessionActions(self)
        self.warnings_for = warnings_for or (lambda record: [])
        self.otp = otp
        self._devices: dict[str, str] = {}
        self._finish_listeners: list[Callable[[Inspection], Awaitable[None]]] = []
        self._participants: dict[str, tuple[Room, Participant]] = {}
        self._rate: dict[str, tuple[float, int]] = {}

    # -- connection -------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            await self._admit(sid, environ, auth)
        except _Refused as exc:
            logger.info("connection %s refused: %s", sid, exc.code)
            raise socketio.exceptions.ConnectionRefusedError(exc.message, {"code": exc.code, "message": exc.message})

    async def _admit(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        request = environ.get("aiohttp.request")
        peer = getattr(request, "remote", None) or environ.get("REMOTE_ADDR") or "?"
        if await self.rooms.live.hit(f"connect:{peer}", 60) > MAX_CONNECTS_PER_MINUTE:
            raise _Refused("rate_limited", "too many connection attempts; wait a minute and retry")
        if not isinstance(auth, dict):
            raise _Refused("token_invalid", "no link token was sent; open the link you were given")
        try:
            token = self.signer.verify(auth.get("token"))
        except TokenExpired:
            raise _Refused("token_expired", "this link has expired; ask for a new link") from None
        except TokenInvalid as exc:
            raise _Refused("token_invalid", f"this link is not valid ({exc}); check that it was copied whole") from None
        record = self.book.find(token.inspection_id)
        if record is None:
            raise _Refused("inspection_unknown", "this inspection does not exist")
        if record.status == "cancelled":
            raise _Refused("inspection_cancelled", "this inspection was cancelled")
        if record.status in ("ended", "judged", "reviewed"):
            raise _Refused("inspection_ended", "this inspection has ended")
        lang = auth.get("lang") if auth.get("lang") in ("zh", "en") else "zh"
        await self.save_session(sid, {"inspection_id": token.inspection_id, "role": token.role, "lang": lang})
        logger.info("connection %s: %s of inspection %s", sid, token.role, token.inspection_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._rate.pop(sid, None)
        self._devices.pop(sid, None)
        entry = self._participants.pop(sid, None)
        if entry is None:
            return
        room, participant = entry
        room.participants.pop(sid, None)
        await room.close_peer(participant)
        await self.rooms.live.remove_presence(room.inspection_id, participant.id)
        if participant.role in SINGLE_HOLDER_ROLES:
            await self.rooms.live.release_role(room.inspection_id, participant.role, sid)
        await self._log(room.inspection_id, "participant.left", participant.role, {"id": participant.id})
        await self._broadcast_presence(room)
        logger.info("room %s: %s left (%s)", room.inspection_id, participant.id, sid)

    # -- events -----------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Every event passes here: rate limit and error mapping in one place."""
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0]
        if not self._within_rate(sid):
            logger.warning("connection %s exceeded %d events/s; disconnecting", sid, MAX_EVENTS_PER_SECOND)
            await self.disconnect(sid)
            return {"ok": False, "error": {"code": "rate_limited", "message": "too many events"}}
        roles = EVENT_ROLES.get(event)
        if roles is None:
            return {"ok": False, "error": {"code": "bad_request", "message": f"unknown event {str(event)[:40]!r}"}}
        role = (await self.get_session(sid)).get("role")
        if role not in roles:
            return {"ok": False, "error": {"code": "forbidden", "message": f"the {role} cannot send {event!r}; only the {' or '.join(sorted(roles))}"}}
        handler = getattr(self, f"on_{event}", None) or getattr(self.actions, f"on_{event}")
        payload = args[1] if len(args) > 1 else None
        if len(args) > 2:
            return {"ok": False, "error": {"code": "bad_request", "message": "send one payload object per event"}}
        try:
            result = await handler(sid, payload)
        except (TakanError, BadSdp) as exc:
            logger.info("event %s from %s refused: %s", event, sid, exc)
            return error_ack(exc)
        except Exception as exc:
            logger.exception("event %s from %s failed", event, sid)
            return error_ack(exc)
        return result

    def _within_rate(self, sid: str) -> bool:
        second = int(time.monotonic())
        start, count = self._rate.get(sid, (second, 0))
        if start != second:
            start, count = second, 0
        count += 1
        self._rate[sid] = (start, count)
        return count <= MAX_EVENTS_PER_SECOND

    def joined(self, sid: str) -> tuple[Room, Participant]:
        entry = self._participants.get(sid)
        if entry is None:
            raise NotJoined("send 'join' first")
        return entry

    async def on_join(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("join", payload, {"device", "takeover"})
        device = data.get("device") or sid
        if not isinstance(device, str) or len(device) > 64:
            raise BadRequest("'join'.device must be a string of at most 64 characters")
        self._devices[sid] = device
        session = await self.get_session(sid)
        inspection_id, role = session["inspection_id"], session["role"]
        record = self.book.get(inspection_id)
        if not record.is_open and record.status != "interrupted":
            raise Forbidden(f"inspection {inspection_id} is {record.status}")
        phone = record.applicant.get("contact_phone")
        if role == "applicant" and self.otp is not None and phone and not self.otp.verified(inspection_id, device):
            await self.otp.send(inspection_id, device, phone)
            return {"ok": False, "error": {"code": "otp_required", "message": "enter the code sent to your phone",
                                           "sent_to": self.otp.masked_phone(phone)}}
        if role in SINGLE_HOLDER_ROLES and sid not in self._participants:
            holder = await self.rooms.live.role_holder(inspection_id, role)
            holder_device = self._devices.get(holder or "")
            if holder and holder != sid and holder_device != device:
                if not data.get("takeover"):
                    return {"ok": False, "error": {"code": "in_use", "message": "this link is open on another device; "
                                                   "send join with takeover: true to continue here"}}
                await self._log(inspection_id, "participant.takeover", role, {"role": role})
        room = await self.rooms.get_or_create(inspection_id)
        if sid in self._participants:
            _, participant = self._participants[sid]
        else:
            participant_id = role if role in SINGLE_HOLDER_ROLES else f"{role}-{sid[:6]}"
            participant = Participant(sid=sid, id=participant_id, role=role, joined_at=now_utc())
            if role in SINGLE_HOLDER_ROLES:
                previous = await self.rooms.live.claim_role(inspection_id, role, sid)
                if previous and previous != sid:
                    await self._kick(previous, room)
            room.participants[sid] = participant
            self._participants[sid] = (room, participant)
            await self.enter_room(sid, inspection_id)
        await self.rooms.live.set_presence(inspection_id, participant.id, participant.presence())
        await self._log(inspection_id, "participant.joined", role, {"id": participant.id})
        await self._maybe_go_live(room)
        await self._broadcast_presence(room)
        record = self.book.get(inspection_id)
        return {
            "ok": True,
            "me": {"id": participant.id, "role": role},
            "inspection": {
                "id": record.id,
                "case_no": record.case_no,
                "item_name": record.item_name,
                "status": record.status,
                "site_address": record.site.get("address"),
                "started_at": record.started_at,
                "checkpoints": [
                    {"code": c["code"], "title": c["title"], "required": c["required"], "captured": c["captured"], "evidence": c["evidence"]}
                    for c in record.checkpoints
                ],
            },
            # what a reloaded page needs to show the session as it stands
            "timer": None
            if room.timer is None
            else {
                "limit_s": room.timer.limit_s,
                "elapsed_s": round(room.timer.elapsed_s, 1),
                "phases": list(room.timer.reached),
                "overtime_reason": room.overtime_reason,
            },
            "signatures": list(room.signatures),
            "participants": [p.presence() for p in room.participants.values()],
            "warnings": self.warnings_for(record) if role == "inspector" else [],
            "ice_servers": self.ice_servers(f"{inspection_id[-8:]}-{participant.id}"),
        }

    async def _kick(self, old_sid: str, room: Room) -> None:
        """Another device took over the role: tell the old one, then drop it."""
        logger.info("room %s: connection %s replaced by a new one", room.inspection_id, old_sid)
        await self.emit(
            "kicked",
            {"code": "replaced", "message": "this session was opened on another device or tab"},
            to=old_sid,
        )
        entry = self._participants.get(old_sid)
        if entry is not None:
            await self.on_disconnect(old_sid)
        await self.disconnect(old_sid)

    async def _maybe_go_live(self, room: Room) -> None:
        record = self.book.get(room.inspection_id)
        roles = {p.role for p in room.participants.values()}
        if record.status in ("scheduled", "interrupted") and {"inspector", "applicant"} <= roles:
            changes = {} if record.started_at else {"started_at": rfc3339(now_utc())}
            previous = record.status
            await self.book.transition(room.inspection_id, "live", **changes)
            await self._log(room.inspection_id, "session.live", "system", {"previous": previous})
            if previous == "scheduled":
                # 8.1.8: list matches are logged once, when the session starts
                for match in self.warnings_for(record):
                    await self._log(room.inspection_id, "prudent.warning", "system", match)
            await self.emit("status", {"status": "live", "started_at": self.book.get(room.inspection_id).started_at}, room=room.inspection_id)
        if self.book.get(room.inspection_id).status == "live":
            self._start_timer(room)

    def _start_timer(self, room: Room) -> None:
        if room.timer is not None:
            return
        record = self.book.get(room.inspection_id)
        template = self.book.template_of(record)
        limit = self.session_limit_s or (template.time_limit_min * 60 if template else 30 * 60)

        async def on_phase(phase: str, elapsed: float, limit_s: float) -> None:
            await self.actions.on_timer_phase(room, phase, elapsed, limit_s)

        room.timer = SessionTimer(limit, on_phase)
        started = parse_rfc3339(record.started_at)
        room.timer.start((now_utc() - started).total_seconds() if started else 0.0)

    async def on_offer(self, sid: str, payload: Any) -> dict[str, Any]:
        offer = messages.parse_offer(payload)
        room, participant = self.joined(sid)
        async with participant.lock:
            reconnect = participant.peer is not None
            await room.close_peer(participant)

            async def on_state(state: str) -> None:
                participant.connection = state
                await self.emit("peer", {"state": state}, to=sid)
                if participant.sid in room.participants:
                    await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
                    await self._broadcast_presence(room)

            peer = self.rooms.new_peer(room, participant, on_state)  # type: ignore[arg-type]
            participant.peer = peer
            try:
                answer = await peer.answer(offer.sdp)
            except BaseException:
                participant.peer = None
                await peer.close()
                raise
        if reconnect:
            await self._log(room.inspection_id, "participant.reconnected", participant.role, {"id": participant.id})
        return {"ok": True, "type": "answer", "sdp": answer}

    async def on_ice(self, sid: str, payload: Any) -> dict[str, Any]:
        candidate = messages.parse_ice(payload)
        _, participant = self.joined(sid)
        # The lock orders candidates after a concurrent offer's new peer connection.
        async with participant.lock:
            if participant.peer is None:
                return {"ok": False, "error": {"code": "not_joined", "message": "send 'offer' before ICE candidates"}}
            await participant.peer.add_candidate(
                {"candidate": candidate.candidate, "sdpMid": candidate.sdp_mid, "sdpMLineIndex": candidate.sdp_mline_index}
            )
        return {"ok": True}

    async def on_media(self, sid: str, payload: Any) -> dict[str, Any]:
        state = messages.parse_media(payload)
        room, participant = self.joined(sid)
        participant.audio, participant.video = state.audio, state.video
        await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
        await self._log(room.inspection_id, "participant.media", participant.role, {"audio": state.audio, "video": state.video})
        await self._broadcast_presence(room)
        return {"ok": True}

    async def on_otp_send(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("otp_send", payload)
        session = await self.get_session(sid)
        phone = self.book.get(session["inspection_id"]).applicant.get("contact_phone")
        if self.otp is None or not phone:
            raise BadRequest("one-time codes are not in use for this inspection")
        await self.otp.send(session["inspection_id"], self._devices.get(sid, sid), phone, force=True)
        return {"ok": True, "sent_to": self.otp.masked_phone(phone)}

    async def on_otp_verify(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("otp_verify", payload, {"code"})
        if self.otp is None:
            raise BadRequest("one-time codes are not in use")
        session = await self.get_session(sid)
        self.otp.verify(session["inspection_id"], self._devices.get(sid, sid), data.get("code"))
        await self._log(session["inspection_id"], "participant.verified", "applicant", {"method": "one-time code"})
        return {"ok": True}

    async def on_keyframe(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("keyframe", payload)
        _, participant = self.joined(sid)
        if participant.peer is not None:
            participant.peer.request_keyframes()
        return {"ok": True}

    async def on_end(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("end", payload)
        room, participant = self.joined(sid)
        if participant.role != "inspector":
            raise Forbidden("only the inspector can end the inspection")
        await self.end_inspection(room.inspection_id, actor="inspector")
        return {"ok": True, "status": "ended"}

    # -- used by the REST side too ----------------------------------------------------

    def on_finished(self, listener: Callable[[Inspection], Awaitable[None]]) -> None:
        """Be told (after sealing) when an inspection ends or is cancelled."""
        self._finish_listeners.append(listener)

    async def end_inspection(self, inspection_id: str, actor: str, status: str = "ended", reason: Optional[str] = None) -> None:
        """End (or cancel) the session: tell everyone, close the room, log it, seal.

        The room closes before the final event so that the recorder's last segments are
        in the log ahead of ``session.ended`` and inside the manifest.
        """
        record = self.book.get(inspection_id)
        changes: dict[str, Any] = {"ended_at": record.ended_at or rfc3339(now_utc())}
        if status == "cancelled":
            changes["cancel_reason"] = reason
        await self.book.transition(inspection_id, status, **changes)
        message: dict[str, Any] = {"status": status}
        if reason:
            message["reason"] = reason
        await self.emit("status", message, room=inspection_id)
        room = self.rooms.find(inspection_id)
        if room is not None:
            for participant in list(room.participants.values()):
                self._participants.pop(participant.sid, None)
                await self.rooms.live.release_role(inspection_id, participant.role, participant.sid)
            await self.rooms.close_room(inspection_id)
        await self.seal(
            inspection_id, ("session.ended" if status == "ended" else "session.cancelled", actor, {"reason": reason} if reason else {})
        )
        for listener in self._finish_listeners:
            try:
                await listener(self.book.get(inspection_id))
            except Exception:
                logger.exception("inspection %s: a finish listener failed", inspection_id)

    async def _broadcast_presence(self, room: Room) -> None:
        await self.emit(
            "presence",
            {"participants": [p.presence() for p in room.participants.values()]},
            room=room.inspection_id,
        )

    async def _log(self, inspection_id: str, event: str, actor: str, data: dict[str, Any]) -> None:
        await self.journal.record(inspection_id, event, actor, data)

    async def seal(self, inspection_id: str, final_event: Optional[tuple[str, str, dict[str, Any]]] = None) -> None:
        """Sign the evidence as it stands (after ``final_event``) and point the record at it."""
        record = self.book.get(inspection_id)
        sha256 = await self.journal.seal(
            inspection_id, record.evidence_summary(), record.verdict, (record.verdict or {}).get("rules_version"), final_event
        )
        record.manifest = {"sha256": sha256, "url": f"{self.base_url}/api/v1/inspections/{inspection_id}/manifest"}
        await self.book.update(record)
