"""The inspection session: the domain behind both doors (Socket.IO and REST).

Joins, media negotiation, checkpoints, captures, photos, signatures, notes, chat,
location, the 8.2.3 clock and the end. Every action becomes an event in the evidence log.
The service knows connections by id and tells the pages things through an
:class:`~session.audience.Audience`; it knows nothing of Socket.IO or HTTP. Callers
(:mod:`signaling.namespace`, :mod:`web.uploads`, :mod:`web.inspections_api`) parse
their input into :mod:`session.commands` records first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from approval.idempotency import KeyedLocks
from approval.inspections import (
    Inspection,
    InspectionBook,
    now_utc,
    parse_rfc3339,
    rfc3339,
)
from errors import BadRequest, Conflict, Elsewhere, Forbidden, NotAuthorised, Unavailable
from evidence.derived import Capture, DerivedWork
from evidence.journal import Journal
from evidence.sealer import Sealer
from recorder.stills import NoVideo

from . import commands
from .audience import Audience
from .annotations import camera_request_json, camera_result_json, drawing_json
from .geo import distance_m
from .images import checked_image
from .otp import OneTimeCodes
from .placement import Place, Placement
from .quality import QualityWatch
from .quotas import EVENT_KINDS, Usage, logged_size
from .recovery import Recovery
from .rooms import SINGLE_HOLDER_ROLES, Participant, Room, Rooms
from .staff import InspectorGate, StaffMember
from .timer import SessionTimer
from .tokens import RoleToken, TokenExpired, TokenInvalid, TokenSigner

logger = logging.getLogger(__name__)

#: Statuses in which a link no longer admits anyone, and what the page is told.
_CLOSED = {
    "cancelled": ("inspection_cancelled", "this inspection was cancelled"),
    "ended": ("inspection_ended", "this inspection has ended"),
    "judged": ("inspection_ended", "this inspection has ended"),
    "reviewed": ("inspection_ended", "this inspection has ended"),
    "expired": ("token_expired", "this inspection expired before anyone joined; ask for a new link"),
}


class NotJoined(Conflict):
    code = "not_joined"


class OvertimeReasonRequired(Conflict):
    code = "overtime_reason_required"


@dataclass
class Connection:
    """One page's connection, admitted by its link token."""

    id: str
    inspection_id: str
    role: str
    lang: str
    device: str
    #: The logged-in staff member holding an inspector link (session/staff.py).
    staff: Optional[StaffMember] = None
    #: An invited observer's name (their own link): {name, kind, user_id}.
    guest: Optional[dict[str, Any]] = None
    #: the page named its device (pages do): only then can a new connection be matched to it
    device_named: bool = False


#: How long a participant whose connection dropped keeps its media peer and its place (the
#: recording goes on): a phone that loses its network for a few seconds, or a reloaded
#: page, comes back to the same peer instead of starting over.
RECONNECT_GRACE_S = 30.0
# how long the seal waits for the display copies and readings of the last captures (an OCR
# takes a second or two; a queue of them longer, and then the late ones reseal)
DERIVED_WAIT_S = 15.0


@dataclass
class _Away:
    room: Room
    participant: Participant
    since: float
    task: "asyncio.Task[None]"


def short_code(head: str) -> str:
    """The code shown beside a signature: the first 8 hex digits of the bound log head."""
    return f"{head[:4]}-{head[4:8]}".upper()


class SessionService:
    """Every live inspection session on this node."""

    def __init__(
        self,
        rooms: Rooms,
        book: InspectionBook,
        journal: Journal,
        sealer: Sealer,
        signer: TokenSigner,
        audience: Audience,
        ice_servers: Callable[[str], list[dict[str, Any]]],
        session_limit_s: Optional[float] = None,
        otp: Optional[OneTimeCodes] = None,
        reconnect_grace_s: float = RECONNECT_GRACE_S,
    ) -> None:
        self.rooms = rooms
        self.book = book
        self.journal = journal
        self.sealer = sealer
        self.signer = signer
        self.audience = audience
        self.ice_servers = ice_servers
        self.session_limit_s = session_limit_s
        self.otp = otp
        self.warnings_for: Callable[[Inspection], list[dict[str, Any]]] = lambda record: []
        self._finish_listeners: list[Callable[[Inspection], Awaitable[None]]] = []
        # told (inspection id, checkpoint, key, bytes) after a still or photo is stored
        self._derived: list[DerivedWork] = []
        self._connections: dict[str, Connection] = {}
        self._participants: dict[str, tuple[Room, Participant]] = {}
        self._usage: dict[str, Usage] = {}
        #: photo uploads in progress by (inspection, upload_id): one try at a time (photo())
        self._photo_tries = KeyedLocks()
        self.recovery = Recovery(book, journal, sealer)
        self.reconnect_grace_s = reconnect_grace_s
        # (inspection, role, device) -> a participant whose connection dropped, for a while
        self._away: dict[tuple[str, str, str], _Away] = {}
        self.quality = QualityWatch(lambda: self.rooms, self._log, lambda *told: self.audience.to_room(*told))
        #: With a gate, an inspector link needs the assigned inspector's staff login.
        self.inspector_gate: Optional[InspectorGate] = None
        #: With several nodes, which node hosts each room (docs/nodes.md); None: this one.
        self.placement: Optional[Placement] = None

    def place_rooms(self, placement: Placement) -> None:
        """Serve only the rooms ``placement`` gives this node, and resume those it takes over."""
        self.placement = placement
        placement.on_adopt(self._adopt)
        placement.on_fence(self._step_aside)
        self.recovery.elsewhere = placement.elsewhere
        self.journal.fence = placement

    # -- connections ----------------------------------------------------------------------

    def _link_of(self, token: Any) -> RoleToken:
        """A valid link token, read (refusals carry a code)."""
        try:
            return self.signer.verify(token)
        except TokenExpired:
            raise NotAuthorised("this link has expired; ask for a new link", code="token_expired") from None
        except TokenInvalid as exc:
            raise NotAuthorised(f"this link is not valid ({exc}); check that it was copied whole", code="token_invalid") from None

    async def locate(self, token: Any) -> Place:
        """Which node serves the session of this link (this one if there is no placement).

        This node takes the room if no live node hosts it. Asking needs a valid link.
        """
        inspection_id = self._link_of(token).inspection_id
        if await self.book.fetch(inspection_id) is None:
            raise NotAuthorised("this inspection does not exist", code="inspection_unknown")
        if self.placement is None:
            raise Unavailable("this server runs alone; connect here")
        return await self.placement.locate(inspection_id)

    async def arrive(self, connection_id: str, token: Any, lang: Any = None) -> Connection:
        """:meth:`admit` a page's connection on this node, or send it to the node hosting its
        room (:class:`errors.Elsewhere`, with ``node_url``). A record created on another
        node is read from the store first."""
        await self.book.fetch(self._link_of(token).inspection_id)
        conn = self.admit(connection_id, token, lang)
        try:
            await self.serve_here(conn.inspection_id)
        except BaseException:
            self._connections.pop(connection_id, None)
            raise
        return conn

    async def serve_here(self, inspection_id: str) -> None:
        """Raise :class:`errors.Elsewhere` unless this node serves the inspection's session
        (it takes the room if no live node does). Whatever writes to an inspection's log
        calls this first: one node at a time appends to a log, or its chain would fork."""
        if self.placement is None:
            return
        place = await self.placement.locate(inspection_id)
        if not place.here:
            raise Elsewhere(
                f"inspection {inspection_id} is served by node {place.node_id}; send this to {place.url}",
                extra={"node_url": place.url, "node": place.node_id},
            )

    async def _adopt(self, inspection_id: str, previous: Optional[str]) -> None:
        """This node took the room: start from what the store holds (another node wrote the
        record and the log), and a session that was live elsewhere resumes as interrupted."""
        record = await self.book.reload(inspection_id)
        # a copy read earlier may lack the other node's events; this node's own unshipped
        # lines (it stepped aside and takes the room again) are kept only if they continue
        # what the store holds (Journal.drop), and so are the lines the node before
        # acknowledged and had not shipped when it died (Journal.take_over)
        await self.journal.take_over(inspection_id)
        if record is not None and record.status == "live" and self.rooms.find(inspection_id) is None:
            node = self.placement.node_id if self.placement is not None else "?"
            gone = f"node {previous}" if previous else "the node serving it"
            # this node again: it had stepped aside (lost its lease), or restarted
            stopped = "stepped aside" if previous == node else "stopped"
            await self.journal.log_strays(inspection_id, f"stored by {gone}, whose log tail was lost when it {stopped}")
            await self.recovery.adopt(
                inspection_id, f"{gone} {stopped} during the session; node {node} took the room over",
                node=node, previous_node=previous or "",
            )

    async def _step_aside(self, rooms: list[str]) -> None:
        """This node lost its lease (docs/nodes.md, "Fencing"): another node may take its
        rooms in a second. Disconnect every page (they ask the entry URL where the session
        went), close the rooms' peers, clocks and recorders (segments stored so far stay;
        nothing more is logged: the journal refuses) and forget their logs' unshipped tails.

        Nothing here waits for Redis (it may be unreachable) and nothing is sealed or marked
        interrupted: the node taking a room over does that from what the store holds.
        """
        for key, away in list(self._away.items()):
            away.task.cancel()
            del self._away[key]
        connections = list(self._connections)
        self._participants.clear()
        self._connections.clear()
        for connection_id in connections:
            try:
                await asyncio.wait_for(self.audience.drop_here(connection_id), 2.0)
            except Exception as exc:
                logger.warning("connection %s: not disconnected (%s)", connection_id, exc)
        for inspection_id in sorted({*rooms, *(room.inspection_id for room in self.rooms)}):
            try:
                await self.rooms.close_room(inspection_id, clear=False)  # the live state is the next node's
            except Exception:
                logger.exception("room %s: closing it failed", inspection_id)
            self.journal.drop(inspection_id)
            self._usage.pop(inspection_id, None)
        logger.warning("stepped aside from %d room(s) and %d connection(s)", len(rooms), len(connections))

    def admit(self, connection_id: str, token: Any, lang: Any = None) -> Connection:
        """Check a page's link token; the connection may then join. Refusals carry a code."""
        link = self._link_of(token)
        record = self.book.find(link.inspection_id)
        if record is None:
            raise NotAuthorised("this inspection does not exist", code="inspection_unknown")
        if record.status in _CLOSED:
            code, message = _CLOSED[record.status]
            raise NotAuthorised(message, code=code)
        connection = Connection(connection_id, link.inspection_id, link.role, lang if lang in ("zh", "en") else "zh", connection_id)
        invited = self.book.observer(link.inspection_id, link.nonce) if link.role == "observer" else None
        if invited is not None:
            connection.guest = {"name": invited["name"], "kind": invited["kind"], "user_id": invited.get("user_id")}
        self._connections[connection_id] = connection
        logger.info("connection %s: %s of inspection %s", connection_id, link.role, link.inspection_id)
        return connection

    async def authorise_staff(self, connection_id: str, session_token: Optional[str]) -> None:
        """An inspector connection must carry the assigned inspector's staff login."""
        conn = self.connection(connection_id)
        if self.inspector_gate is None or conn.role != "inspector":
            return
        try:
            conn.staff = await self.inspector_gate.admit(session_token, self.book.get(conn.inspection_id))
        except BaseException:
            self._connections.pop(connection_id, None)
            raise

    async def check_staff(self, connection_id: str) -> None:
        """Before an inspector's action: is their login still live? (Media is not touched.)"""
        conn = self._connections.get(connection_id)
        if self.inspector_gate is not None and conn is not None and conn.staff is not None:
            await self.inspector_gate.recheck(conn.staff)

    def _named(self, inspection_id: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with the staff member behind the inspector role, if one is known."""
        if actor != "inspector" or "staff" in data:
            return data
        room = self.rooms.find(inspection_id)
        for participant in room.by_role("inspector") if room is not None else ():
            conn = self._connections.get(participant.sid)
            if conn is not None and conn.staff is not None:
                return {**data, "staff": conn.staff.named()}
        return data

    def connection(self, connection_id: str) -> Connection:
        found = self._connections.get(connection_id)
        if found is None:
            raise NotAuthorised("this connection was not admitted; reconnect with the link", code="token_invalid")
        return found

    def role_of(self, connection_id: str) -> Optional[str]:
        found = self._connections.get(connection_id)
        return None if found is None else found.role

    def joined(self, connection_id: str) -> tuple[Room, Participant]:
        entry = self._participants.get(connection_id)
        if entry is None:
            raise NotJoined("send 'join' first")
        if self.placement is not None:
            self.placement.check_serving(entry[0].inspection_id)  # a fenced node refuses (node_fenced)
        return entry

    @property
    def connection_count(self) -> int:
        """Admitted connections (the memory test checks these leave with their pages)."""
        return len(self._connections)

    async def join(self, connection_id: str, join: commands.Join) -> dict[str, Any]:
        conn = self.connection(connection_id)
        if self.placement is not None:
            self.placement.check_serving(conn.inspection_id)
        await self.recovery.settle(conn.inspection_id)
        if join.device:
            conn.device, conn.device_named = join.device, True
        inspection_id, role = conn.inspection_id, conn.role
        record = self.book.get(inspection_id)
        if not record.is_open:
            raise Forbidden(f"inspection {inspection_id} is {record.status}")
        phone = record.applicant.get("contact_phone")
        if role == "applicant" and self.otp is not None and phone and not await self.otp.verified(inspection_id, conn.device):
            await self.otp.send(inspection_id, conn.device, phone)
            raise NotAuthorised(
                "enter the code sent to your phone", code="otp_required", extra={"sent_to": self.otp.masked_phone(phone)}
            )
        back = self._away.pop((inspection_id, role, conn.device), None)
        if back is not None and connection_id not in self._participants:
            back.task.cancel()
            return await self._rebind(connection_id, back.room, back.participant, back.since)
        if role in SINGLE_HOLDER_ROLES and connection_id not in self._participants:
            holder = await self.rooms.live.role_holder(inspection_id, role)
            holder_conn = self._connections.get(holder or "")
            same_page = holder_conn is not None and conn.device_named and holder_conn.device == conn.device
            if holder and holder != connection_id and same_page and holder in self._participants:
                # the same page reconnected before its old connection was seen to drop
                return await self._transfer(connection_id, holder)
            dropped = any(a.participant.sid == holder for a in self._away.values())
            if holder and holder != connection_id and not dropped and (holder_conn is None or holder_conn.device != conn.device):
                if not join.takeover:
                    raise Conflict(
                        "this link is open on another device; send join with takeover: true to continue here", code="in_use"
                    )
                await self._log(inspection_id, "participant.takeover", role, {"role": role})
        room = await self.rooms.get_or_create(inspection_id)
        if not room.restored:
            room.restored = True  # before the read: a join arriving meanwhile must not restore twice
            room.restore(await self.journal.events_of(inspection_id, *Room.RESTORED_FROM))
        if connection_id in self._participants:
            _, participant = self._participants[connection_id]
        else:
            participant_id = role if role in SINGLE_HOLDER_ROLES else f"{role}-{connection_id[:6]}"
            participant = Participant(sid=connection_id, id=participant_id, role=role, joined_at=now_utc())
            if role in SINGLE_HOLDER_ROLES:
                previous = await self.rooms.live.claim_role(inspection_id, role, connection_id)
                if previous and previous != connection_id:
                    await self._kick(previous, room)
                await self._end_away(inspection_id, role)  # taken over from a device that dropped
            room.participants[connection_id] = participant
            self._participants[connection_id] = (room, participant)
            await self.audience.enter(connection_id, inspection_id)
        await self.rooms.live.set_presence(inspection_id, participant.id, participant.presence())
        await self._log(inspection_id, "participant.joined", role, {"id": participant.id, **({"observer": conn.guest} if conn.guest else {})})
        await self._note_participant(conn, participant)
        await self._maybe_go_live(room)
        await self._broadcast_presence(room)
        return self._session_state(room, participant, self.book.get(inspection_id))

    async def _note_participant(self, conn: Connection, participant: Participant) -> None:
        """The record's ``participants`` (CONTRACT.md): who took part, once each, with when
        they first joined; the inspector and observers by name, the applicant by role only
        (the record holds the applicant's details already, masked where they must be)."""
        record = self.book.get(conn.inspection_id)
        if any(p.get("id") == participant.id for p in record.participants):
            return
        entry: dict[str, Any] = {"id": participant.id, "role": participant.role, "joined_at": rfc3339(participant.joined_at)}
        if conn.staff is not None:
            entry.update(user_id=conn.staff.user_id, name=conn.staff.name)
        elif participant.role == "inspector" and record.inspector_name:
            entry.update(user_id=record.inspector_user_id, name=record.inspector_name)
        elif conn.guest is not None:
            entry.update(name=conn.guest.get("name"), kind=conn.guest.get("kind"))
        await self.book.add_participant(conn.inspection_id, entry)

    def _session_state(self, room: Room, participant: Participant, record: Inspection) -> dict[str, Any]:
        """What a (re)loaded page needs to show the session as it stands."""
        timer = room.timer
        return {
            "ok": True,
            "me": {"id": participant.id, "role": participant.role},
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
            "timer": None
            if timer is None
            else {
                "limit_s": timer.limit_s,
                "elapsed_s": round(timer.elapsed_s, 1),
                "phases": list(timer.reached),
                "overtime_reason": room.overtime_reason,
            },
            "signatures": list(room.signatures),
            "drawing": room.drawing,
            "participants": [p.presence() for p in room.participants.values()],
            "warnings": self.warnings_for(record) if participant.role == "inspector" else [],
            "ice_servers": self.ice_servers(f"{record.id[-8:]}-{participant.id}"),
        }

    async def _kick(self, old: str, room: Room) -> None:
        """Another device took over the role: tell the old one, then drop it."""
        logger.info("room %s: connection %s replaced by a new one", room.inspection_id, old)
        await self.audience.to_connection(old, "kicked", {"code": "replaced", "message": "this session was opened on another device or tab"})
        await self.leave(old)
        await self.audience.drop(old)

    async def drop(self, connection_id: str) -> None:
        """The connection was lost (not closed on purpose): the participant keeps its media
        peer and its place for :attr:`reconnect_grace_s`, then leaves."""
        conn = self._connections.get(connection_id)
        entry = self._participants.get(connection_id)
        if (
            conn is None or entry is None or not conn.device_named or self.reconnect_grace_s <= 0
            or entry[1].role not in SINGLE_HOLDER_ROLES
        ):
            await self.leave(connection_id)
            return
        room, participant = entry
        self._connections.pop(connection_id, None)
        self._participants.pop(connection_id, None)
        key = (conn.inspection_id, conn.role, conn.device)
        task = asyncio.ensure_future(self._leave_after_grace(key, connection_id))
        self._away[key] = _Away(room, participant, time.monotonic(), task)
        participant.away = True
        await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
        await self._log(room.inspection_id, "participant.away", participant.role, {"id": participant.id})
        await self._broadcast_presence(room)
        logger.info("room %s: %s lost its connection; keeping its media for %.0f s", room.inspection_id, participant.id,
                    self.reconnect_grace_s)

    async def _end_away(self, inspection_id: str, role: str) -> None:
        """Whoever held ``role`` and dropped leaves now (another device took the role)."""
        for key in [k for k in self._away if k[:2] == (inspection_id, role)]:
            away = self._away.pop(key)
            away.task.cancel()
            self._participants[away.participant.sid] = (away.room, away.participant)
            await self.leave(away.participant.sid)

    async def _leave_after_grace(self, key: tuple[str, str, str], connection_id: str) -> None:
        await asyncio.sleep(self.reconnect_grace_s)
        away = self._away.get(key)
        if away is None or away.participant.sid != connection_id:
            return
        del self._away[key]
        self._participants[connection_id] = (away.room, away.participant)
        await self.leave(connection_id)

    async def _transfer(self, connection_id: str, old: str) -> dict[str, Any]:
        """Move a participant from its old connection (still open, or so it seems) to a new
        one of the same page, keeping its peer; then close the old connection quietly."""
        room, participant = self._participants.pop(old)
        self._connections.pop(old, None)
        answer = await self._rebind(connection_id, room, participant, time.monotonic())
        await self.audience.drop(old)
        return answer

    async def _rebind(self, connection_id: str, room: Room, participant: Participant, since: float) -> dict[str, Any]:
        """A participant is back on a new connection: same peer, same place."""
        old = participant.sid
        room.participants.pop(old, None)
        participant.sid = connection_id
        participant.away = False
        room.participants[connection_id] = participant
        self._participants[connection_id] = (room, participant)
        await self.rooms.live.claim_role(room.inspection_id, participant.role, connection_id)
        await self.audience.enter(connection_id, room.inspection_id)
        await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
        away_s = round(time.monotonic() - since, 1)
        await self._log(room.inspection_id, "participant.rejoined", participant.role, {"id": participant.id, "away_s": away_s})
        await self._maybe_go_live(room)
        await self._broadcast_presence(room)
        state = self._session_state(room, participant, self.book.get(room.inspection_id))
        # the page may keep its RTCPeerConnection: the server's peer for it is still there
        state["peer_kept"] = participant.peer is not None
        return state

    async def leave(self, connection_id: str) -> None:
        """The connection is gone (idempotent): its participant leaves the room."""
        self._connections.pop(connection_id, None)
        entry = self._participants.pop(connection_id, None)
        if entry is None:
            return
        room, participant = entry
        room.participants.pop(connection_id, None)
        await room.close_peer(participant)
        await self.rooms.live.remove_presence(room.inspection_id, participant.id)
        if participant.role in SINGLE_HOLDER_ROLES:
            await self.rooms.live.release_role(room.inspection_id, participant.role, connection_id)
        await self._log(room.inspection_id, "participant.left", participant.role, {"id": participant.id})
        await self._broadcast_presence(room)
        logger.info("room %s: %s left (%s)", room.inspection_id, participant.id, connection_id)

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
            await self.audience.to_room(
                room.inspection_id, "status", {"status": "live", "started_at": self.book.get(room.inspection_id).started_at}
            )
        if self.book.get(room.inspection_id).status == "live":
            self._start_timer(room)

    def _start_timer(self, room: Room) -> None:
        if room.timer is not None:
            return
        record = self.book.get(room.inspection_id)
        template = self.book.template_of(record)
        limit = self.session_limit_s or (template.time_limit_min * 60 if template else 30 * 60)

        async def on_phase(phase: str, elapsed_s: float, limit_s: float) -> None:
            await self._log(room.inspection_id, f"timer.{phase}", "system", {"elapsed_s": round(elapsed_s, 1), "limit_s": limit_s})
            await self.audience.to_room(room.inspection_id, "timer", {"phase": phase, "elapsed_s": round(elapsed_s, 1), "limit_s": limit_s})

        room.timer = SessionTimer(limit, on_phase)
        started = parse_rfc3339(record.started_at)
        room.timer.start((now_utc() - started).total_seconds() if started else 0.0)

    # -- media ------------------------------------------------------------------------------

    async def offer(self, connection_id: str, offer: commands.Offer) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        async with participant.lock:
            reconnect = participant.peer is not None
            await room.close_peer(participant)

            async def on_state(state: str) -> None:
                participant.connection = state
                if not participant.away:
                    await self.audience.to_connection(participant.sid, "peer", {"state": state})
                if participant.sid in room.participants:
                    await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
                    await self._broadcast_presence(room)

            peer = self.rooms.new_peer(room, participant, on_state)
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

    async def ice(self, connection_id: str, candidate: commands.IceCandidate) -> dict[str, Any]:
        _, participant = self.joined(connection_id)
        # The lock orders candidates after a concurrent offer's new peer connection.
        async with participant.lock:
            if participant.peer is None:
                raise NotJoined("send 'offer' before ICE candidates")
            await participant.peer.add_candidate(
                {"candidate": candidate.candidate, "sdpMid": candidate.sdp_mid, "sdpMLineIndex": candidate.sdp_mline_index}
            )
        return {"ok": True}

    async def media(self, connection_id: str, state: commands.MediaState) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        participant.audio, participant.video = state.audio, state.video
        await self.rooms.live.set_presence(room.inspection_id, participant.id, participant.presence())
        await self._log(room.inspection_id, "participant.media", participant.role, {"audio": state.audio, "video": state.video})
        await self._broadcast_presence(room)
        return {"ok": True}

    async def stats(self, connection_id: str, stats: commands.LinkStats) -> dict[str, Any]:
        """The page's own measurement of its link; kept for the operator (not evidence)."""
        _, participant = self.joined(connection_id)
        participant.link = stats
        return {"ok": True}

    async def keyframe(self, connection_id: str) -> dict[str, Any]:
        _, participant = self.joined(connection_id)
        if participant.peer is not None:
            participant.peer.request_keyframes()
        return {"ok": True}

    # -- the applicant's one-time code ------------------------------------------------------

    async def otp_send(self, connection_id: str) -> dict[str, Any]:
        conn = self.connection(connection_id)
        phone = self.book.get(conn.inspection_id).applicant.get("contact_phone")
        if self.otp is None or not phone:
            raise BadRequest("one-time codes are not in use for this inspection")
        await self.otp.send(conn.inspection_id, conn.device, phone, force=True)
        return {"ok": True, "sent_to": self.otp.masked_phone(phone)}

    async def otp_verify(self, connection_id: str, verify: commands.OtpVerify) -> dict[str, Any]:
        if self.otp is None:
            raise BadRequest("one-time codes are not in use")
        conn = self.connection(connection_id)
        await self.otp.verify(conn.inspection_id, conn.device, verify.code)
        await self._log(conn.inspection_id, "participant.verified", "applicant", {"method": "one-time code"})
        return {"ok": True}

    # -- evidence-producing actions (docs/protocol.md, "During the session") ----------------

    async def usage(self, inspection_id: str) -> Usage:
        """What the session has stored so far (rebuilt from its log once per process)."""
        usage = self._usage.get(inspection_id)
        if usage is None:
            usage = Usage.from_events(await self.journal.events_of(inspection_id, *EVENT_KINDS))
            usage = self._usage.setdefault(inspection_id, usage)
        return usage

    async def check_quota(self, connection_id: str, kind: str, size: int) -> None:
        """Refuse before the work if the participant's ``kind`` quota would be exceeded."""
        room, participant = self.joined(connection_id)
        (await self.usage(room.inspection_id)).check(kind, participant.role, size)

    async def check_photo_quota(self, inspection_id: str, size: int) -> None:
        (await self.usage(inspection_id)).check("photo", "applicant", size)

    def _require_within_time(self, room: Room) -> None:
        timer = room.timer
        if timer is not None and timer.over_limit and not room.overtime_reason:
            raise OvertimeReasonRequired(
                f"the {timer.limit_s / 60:g}-minute limit has passed: the inspector must give a reason to continue "
                "(event 'overtime')"
            )

    async def prompt(self, connection_id: str, prompt: commands.Prompt) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        checkpoint = self.book.get(room.inspection_id).checkpoint(prompt.checkpoint)
        await self._log_counted(room.inspection_id, participant.role, "prompt", "checkpoint.prompted", "inspector",
                                {"checkpoint": checkpoint["code"]})
        await self.audience.to_room(room.inspection_id, "prompt", {"checkpoint": checkpoint["code"], "title": checkpoint["title"]})
        return {"ok": True}

    async def capture(self, connection_id: str, capture: commands.Capture) -> dict[str, Any]:
        """A still of the applicant's video, taken by the server from the stream itself."""
        room, participant = self.joined(connection_id)
        self._require_within_time(room)
        record = self.book.get(room.inspection_id)
        code = record.checkpoint(capture.checkpoint)["code"]
        if room.stills is None:
            raise Unavailable("still capture is not available on this node")
        usage = await self.usage(room.inspection_id)
        usage.check("still", participant.role, 0)  # its size is known once it is taken
        # the phone keeps full resolution for the still (its pages give way on a weak link)
        await self.tell_role(room.inspection_id, "applicant", "sharpen", {"on": True})
        try:
            still = await room.stills.capture(sharpen=True)
        except NoVideo as exc:
            raise Conflict(f"no picture to capture: {exc}") from None
        finally:
            await self.tell_role(room.inspection_id, "applicant", "sharpen", {"on": False})
        key = await self._evidence_key(room.inspection_id, record, code, "stills", "jpg")
        event = await self.journal.record_blob(
            room.inspection_id, key, still.data, "image/jpeg", "still.captured", "inspector",
            {
                "checkpoint": code,
                "width": still.width,
                "height": still.height,
                "captured_at": still.captured_at.isoformat(timespec="milliseconds"),
                "source": "server",
            } | self._named(room.inspection_id, "inspector", {}),
        )
        usage.add("still", participant.role, len(still.data))
        await self.book.add_evidence(record.id, code, key)
        shown = {"checkpoint": code, "kind": "still", "key": key, "sha256": event["data"]["sha256"],
                 "width": still.width, "height": still.height, "at": event["at"]}
        await self.audience.to_room(room.inspection_id, "captured", shown)
        await self._captured(room.inspection_id, code, key, still.data)
        return {"ok": True, **shown}

    async def _evidence_key(self, inspection_id: str, record: Inspection, code: str, folder: str, extension: str) -> str:
        """The key of the checkpoint's next still or photo: the record's count says where to
        start, the log and the store which numbers are taken (evidence/journal.py)."""
        [key] = await self.journal.unused_keys(
            inspection_id, lambda n: (record.evidence_key(code, folder, n, extension),),
            len(record.checkpoint(code)["evidence"]) + 1,
        )
        return key

    async def photo(self, inspection_id: str, photo: commands.Photo) -> dict[str, Any]:
        """An applicant's own full-resolution photo (uploaded over HTTP), logged as a photo.

        A photo sent again with the ``upload_id`` of one already logged (the phone's retry
        after an answer lost on a weak link) is not stored twice: the answer is the first's."""
        upload_id = photo.details.get("upload_id")
        if upload_id is None:
            return await self._store_photo(inspection_id, photo)
        async with self._photo_tries.exclusive((inspection_id, str(upload_id))):  # a retry overtaking the first waits
            for event in await self.journal.events_of(inspection_id, "photo.uploaded"):
                if (event.get("data") or {}).get("upload_id") == upload_id:
                    return self._photo_shown(event)
            return await self._store_photo(inspection_id, photo)

    @staticmethod
    def _photo_shown(event: dict[str, Any]) -> dict[str, Any]:
        """What the uploader and the room are told of a logged photo."""
        data = dict(event["data"])
        shown = {"checkpoint": data.pop("checkpoint"), "kind": "photo", "key": data.pop("key"), "sha256": data.pop("sha256"),
                 "at": event["at"]}
        for name in ("size", "sm3", "source", "width", "height"):
            data.pop(name, None)
        return shown | data

    async def _store_photo(self, inspection_id: str, photo: commands.Photo) -> dict[str, Any]:
        record = self.book.get(inspection_id)
        code = record.checkpoint(photo.checkpoint)["code"]
        room = self.rooms.find(inspection_id)
        if room is not None:
            self._require_within_time(room)
        usage = await self.usage(inspection_id)
        usage.check("photo", "applicant", len(photo.data))
        image = await checked_image(photo.data)
        key = await self._evidence_key(inspection_id, record, code, "photos", image.extension)
        event = await self.journal.record_blob(
            inspection_id, key, photo.data, image.content_type, "photo.uploaded", "applicant",
            {"checkpoint": code, "source": "applicant", "width": image.width, "height": image.height, **photo.details},
        )
        usage.add("photo", "applicant", len(photo.data))
        await self.book.add_evidence(record.id, code, key)
        shown = self._photo_shown(event)
        await self.audience.to_room(inspection_id, "captured", shown)
        await self._captured(inspection_id, code, key, photo.data)
        return shown

    async def draw(self, connection_id: str, drawing: commands.Drawing) -> dict[str, Any]:
        """The inspector's marks over the applicant's view (logged; shown to the room)."""
        room, participant = self.joined(connection_id)
        shown = drawing_json(drawing)
        event = await self._log_counted(room.inspection_id, participant.role, "drawing", "drawing.shown", "inspector", shown)
        room.drawing = {**shown, "at": event["at"]}
        await self.audience.to_room(room.inspection_id, "drawing", room.drawing)
        return {"ok": True, "at": event["at"]}

    async def draw_clear(self, connection_id: str) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        event = await self._log_counted(room.inspection_id, participant.role, "drawing", "drawing.cleared", "inspector", {})
        room.drawing = None
        await self.audience.to_room(room.inspection_id, "drawing", {"shapes": [], "at": event["at"]})
        return {"ok": True, "at": event["at"]}

    async def camera(self, connection_id: str, request: commands.CameraRequest) -> dict[str, Any]:
        """Ask the applicant's phone to turn its torch on/off, zoom, or take a photo."""
        room, participant = self.joined(connection_id)
        usage = await self.usage(room.inspection_id)
        usage.check("camera", participant.role, 0)  # before an id is handed out; counted in full below
        # an unguessable id, remembered before the phone can answer it
        data = {**camera_request_json(request), "request_id": room.camera_requests.ask(request.action)}
        event = await self._log_counted(room.inspection_id, participant.role, "camera", "camera.requested", "inspector", data)
        message = {**data, "at": event["at"]}
        await self.tell_role(room.inspection_id, "applicant", "camera_request", message)
        return {"ok": True, "request_id": data["request_id"], "at": event["at"]}

    async def camera_result(self, connection_id: str, result: commands.CameraResult) -> dict[str, Any]:
        """The phone's answer to an outstanding request, once: logged and passed to the inspector."""
        room, participant = self.joined(connection_id)
        data = camera_result_json(result)
        size = logged_size(data)
        usage = await self.usage(room.inspection_id)
        usage.check("camera_result", participant.role, size)
        refused = room.camera_requests.answer(result.request_id, result.action)
        if refused is not None:
            raise Conflict(refused)
        try:
            event = await self._log(room.inspection_id, "camera.answered", "applicant", data)
        except BaseException:
            room.camera_requests.restore(result.request_id, result.action)  # not logged: it may answer again
            raise
        usage.add("camera_result", participant.role, size)
        await self.tell_role(room.inspection_id, "inspector", "camera_result", {**data, "at": event["at"]})
        return {"ok": True, "at": event["at"]}

    async def note(self, connection_id: str, note: commands.Note) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        usage = await self.usage(room.inspection_id)
        usage.check("note", participant.role, len(note.text.encode()))
        entry: dict[str, Any] = {"text": note.text}
        if note.checkpoint is not None:
            entry["checkpoint"] = self.book.get(room.inspection_id).checkpoint(note.checkpoint)["code"]
        event = await self._log(room.inspection_id, "note", "inspector", entry)
        usage.add("note", participant.role, len(note.text.encode()))
        return {"ok": True, "at": event["at"]}

    async def chat(self, connection_id: str, chat: commands.Chat) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        usage = await self.usage(room.inspection_id)
        usage.check("chat", participant.role, len(chat.text.encode()))
        event = await self._log(room.inspection_id, "chat", participant.role, {"text": chat.text})
        usage.add("chat", participant.role, len(chat.text.encode()))
        await self.audience.to_room(room.inspection_id, "chat", {"from": participant.role, "text": chat.text, "at": event["at"]})
        return {"ok": True, "at": event["at"]}

    async def location(self, connection_id: str, location: commands.Location) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        record = self.book.get(room.inspection_id)
        entry: dict[str, Any] = {"lat": location.lat, "lon": location.lon, "accuracy_m": location.accuracy_m}
        site_lat, site_lon = record.site.get("lat"), record.site.get("lon")
        if site_lat is not None and site_lon is not None:
            entry["distance_m"] = round(distance_m(location.lat, location.lon, site_lat, site_lon), 1)
            radius = record.site.get("radius_m")
            if radius is not None:
                entry["within_radius"] = entry["distance_m"] <= radius
        event = await self._log_counted(room.inspection_id, participant.role, "location", "location.updated", "applicant", entry)
        await self.audience.to_room(room.inspection_id, "location", {**entry, "at": event["at"]})
        return {"ok": True, **entry}

    async def sign_request(self, connection_id: str, request: commands.SignRequest) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        head = await self.journal.head(room.inspection_id)
        await self._log_counted(room.inspection_id, participant.role, "sign_request", "signature.requested", "inspector",
                                {"role": request.role})
        await self.audience.to_room(room.inspection_id, "sign_request", {"role": request.role, "code": short_code(head)})
        return {"ok": True}

    async def signature(self, connection_id: str, signature: commands.Signature) -> dict[str, Any]:
        """A hand signature: stroke data and a PNG, bound to the log head at signing."""
        room, participant = self.joined(connection_id)
        self._require_within_time(room)
        usage = await self.usage(room.inspection_id)
        usage.check("signature", participant.role, len(signature.png))
        await checked_image(signature.png, ("PNG",))
        head = await self.journal.head(room.inspection_id)
        code = short_code(head)
        role = participant.role
        strokes_key, png_key = await self.journal.unused_keys(
            room.inspection_id, lambda n: (f"signatures/{role}-{n}.json", f"signatures/{role}-{n}.png"),
            room.signature_count(role) + 1,
        )
        stroke_doc = {"role": participant.role, "binds_log_head": head, "code": code, "width": signature.width,
                      "height": signature.height, "strokes": signature.strokes}
        details = self._named(room.inspection_id, participant.role, {"role": participant.role, "binds_log_head": head, "code": code})
        await self.journal.record_blob(
            room.inspection_id, strokes_key, json.dumps(stroke_doc, separators=(",", ":"), allow_nan=False).encode(),
            "application/json", "signature.strokes", participant.role, details,
        )
        event = await self.journal.record_blob(
            room.inspection_id, png_key, signature.png, "image/png", "signature.signed", participant.role, details
        )
        usage.add("signature", participant.role, len(signature.png))
        room.signatures.append(participant.role)
        shown = {"role": participant.role, "code": code, "key": png_key, "at": event["at"]}
        await self.audience.to_room(room.inspection_id, "signed", shown)
        return {"ok": True, **shown}

    async def overtime(self, connection_id: str, overtime: commands.Overtime) -> dict[str, Any]:
        room, participant = self.joined(connection_id)
        elapsed = room.timer.elapsed_s if room.timer else None
        data = {"reason": overtime.reason, "elapsed_s": None if elapsed is None else round(elapsed, 1)}
        await self._log_counted(room.inspection_id, participant.role, "overtime", "timer.overtime_reason", "inspector", data)
        room.overtime_reason = overtime.reason
        await self.audience.to_room(room.inspection_id, "timer", {"phase": "overtime", "reason": overtime.reason})
        return {"ok": True}

    # -- the end ------------------------------------------------------------------------------

    async def end(self, connection_id: str) -> dict[str, Any]:
        room, _ = self.joined(connection_id)
        await self.end_inspection(room.inspection_id, actor="inspector")
        return {"ok": True, "status": "ended"}

    def on_finished(self, listener: Callable[[Inspection], Awaitable[None]]) -> None:
        """Be told (after sealing) when an inspection ends or is cancelled."""
        self._finish_listeners.append(listener)

    def on_captured(self, work: DerivedWork) -> None:
        """Hand ``work`` each still or photo after it is stored; the seal waits for it."""
        self._derived.append(work)

    async def _captured(self, inspection_id: str, code: str, key: str, data: bytes) -> None:
        capture = Capture(inspection_id, code, key, data)
        for work in self._derived:
            try:
                await work.on_captured(capture)
            except Exception:
                logger.exception("inspection %s: %s did not take a capture", inspection_id, work.name)

    async def tell_role(self, inspection_id: str, role: str, event: str, data: dict[str, Any]) -> None:
        """Tell the participants of ``role`` in the inspection's room on this node."""
        room = self.rooms.find(inspection_id)
        for participant in room.by_role(role) if room is not None else []:
            await self.audience.to_connection(participant.sid, event, data)

    async def end_inspection(
        self, inspection_id: str, actor: str, status: str = "ended", reason: Optional[str] = None, end_reason: Optional[str] = None
    ) -> None:
        """End (or cancel) the session: tell everyone, close the room, log it, seal.

        ``end_reason`` (the record's) is ``abandoned`` when nobody ended it (:mod:`session.sweeper`);
        otherwise it follows ``status``.

        The room closes before the final event so that the recorder's last segments are
        in the log ahead of ``session.ended`` and inside the manifest.
        """
        await self.serve_here(inspection_id)
        await self.recovery.settle(inspection_id)
        record = self.book.get(inspection_id)
        final: dict[str, Any] = self._named(inspection_id, actor, {"reason": reason} if reason else {})  # before the room closes
        end_reason = end_reason or ("cancelled" if status == "cancelled" else "ended")
        changes: dict[str, Any] = {"ended_at": record.ended_at or rfc3339(now_utc()), "end_reason": end_reason}
        if status == "cancelled":
            changes["cancel_reason"] = reason
        await self.book.transition(inspection_id, status, **changes)
        message: dict[str, Any] = {"status": status, "end_reason": end_reason}
        if reason:
            message["reason"] = reason
        await self.audience.to_room(inspection_id, "status", message)
        for key in [k for k in self._away if k[0] == inspection_id]:
            self._away.pop(key).task.cancel()
        room = self.rooms.find(inspection_id)
        if room is not None:
            for participant in list(room.participants.values()):
                self._participants.pop(participant.sid, None)
                await self.rooms.live.release_role(inspection_id, participant.role, participant.sid)
        if self.placement is not None:
            self.placement.release(inspection_id)  # its room key goes with the room: nothing to guard
        if room is not None:
            await self.rooms.close_room(inspection_id)
        if end_reason == "abandoned":
            final["end_reason"] = end_reason
        for work in self._derived:  # the display copies and readings of the last captures go in the manifest
            if not await work.settled(inspection_id, DERIVED_WAIT_S):
                logger.warning("inspection %s: %s still busy after %.0f s; it reseals when done", inspection_id, work.name, DERIVED_WAIT_S)
        await self.sealer.seal(inspection_id, ("session.ended" if status == "ended" else "session.cancelled", actor, final))
        self._usage.pop(inspection_id, None)
        for listener in self._finish_listeners:
            try:
                await listener(await self.book.load(inspection_id))
            except Exception:
                logger.exception("inspection %s: a finish listener failed", inspection_id)

    def start(self) -> None:
        """Start watching the rooms' links (audio first); idempotent."""
        self.quality.start()

    async def close(self) -> None:
        """Close every room this node serves (idempotent)."""
        await self.quality.close()
        for away in self._away.values():
            away.task.cancel()
        await asyncio.gather(*(away.task for away in self._away.values()), return_exceptions=True)
        self._away.clear()
        await self.rooms.close()
        self._participants.clear()
        self._connections.clear()
        self._usage.clear()

    # -- helpers ------------------------------------------------------------------------------

    async def _broadcast_presence(self, room: Room) -> None:
        await self.audience.to_room(room.inspection_id, "presence", {"participants": [p.presence() for p in room.participants.values()]})

    async def _log_counted(self, inspection_id: str, role: str, kind: str, event: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
        """:meth:`_log` within the participant's quota of ``kind`` (session/quotas.py): refused
        before anything is logged, counted once it is."""
        size = logged_size(data)
        usage = await self.usage(inspection_id)
        usage.check(kind, role, size)
        logged = await self._log(inspection_id, event, actor, data)
        usage.add(kind, role, size)
        return logged

    async def _log(self, inspection_id: str, event: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self.journal.record(inspection_id, event, actor, self._named(inspection_id, actor, data))
