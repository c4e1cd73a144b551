"""Socket.IO handlers: the signaling protocol of docs/protocol.md.

Thin: each ``on_<event>`` parses its payload into a :mod:`session.commands` record
(:mod:`signaling.messages`) and calls the :class:`~session.service.SessionService`.
:meth:`SessionNamespace.trigger_event` is the one gate every event passes: the rate limit,
the role table (deny by default) and the mapping of errors to acks (:mod:`signaling.acks`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Awaitable, Callable

import socketio
from http.cookies import CookieError, SimpleCookie

from errors import Disconnect, TakanError
from media.sdp import BadSdp
from session.service import SessionService
from storage.livestate import LiveState

from . import messages
from .acks import error_ack, error_body

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_SECOND = 50
#: Connection attempts per minute. Mobile carriers put a county's phones behind a few
#: addresses (CGNAT), and after a restart every page reconnects at once: the address limit
#: only stops floods; the link and inspection limits stop one link holder's loop.
MAX_CONNECTS_PER_ADDRESS = 1200
MAX_CONNECTS_PER_LINK = 30
MAX_CONNECTS_PER_INSPECTION = 300
#: The staff login cookie (web/auth.py sets it); the inspector's page sends it with the handshake.
SESSION_COOKIE = "takan_session"

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
    "stats": _ALL,
    "ping": _ALL,
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
    "draw": frozenset({"inspector"}),
    "draw_clear": frozenset({"inspector"}),
    "camera": frozenset({"inspector"}),
    "camera_result": frozenset({"applicant"}),
}

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]
#: Disconnect reasons that mean the network went away, not the participant. A "transport
#: close" is the page's own doing (a reload, a navigation, a closed tab): it leaves at once.
DROPPED = frozenset({"transport error", "ping timeout"})


class SessionNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # python-socketio is untyped
    """The default namespace: one connection per participant's page."""

    def __init__(self, session: SessionService, live: LiveState) -> None:
        super().__init__("/")
        self.session = session
        self.live = live
        self._rate: dict[str, tuple[float, int]] = {}

    # -- connection ---------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        peer = getattr(request, "remote", None) or environ.get("REMOTE_ADDR") or "?"
        try:
            if await self.live.hit(f"connect:{peer}", 60) > MAX_CONNECTS_PER_ADDRESS:
                raise Disconnect("too many connection attempts from this network; wait a minute and retry", code="rate_limited")
            if not isinstance(auth, dict):
                raise Disconnect("no link token was sent; open the link you were given", code="token_invalid")
            token = auth.get("token")
            link = hashlib.sha256(str(token).encode()).hexdigest()[:32]
            if await self.live.hit(f"connect-link:{link}", 60) > MAX_CONNECTS_PER_LINK:
                raise Disconnect("this link reconnected too often; wait a minute and retry", code="rate_limited")
            connection = await self.session.arrive(sid, token, auth.get("lang"))
            await self.session.authorise_staff(sid, staff_token(environ))
            if await self.live.hit(f"connect-inspection:{connection.inspection_id}", 60) > MAX_CONNECTS_PER_INSPECTION:
                await self.session.leave(sid)
                raise Disconnect("too many connections to this inspection; wait a minute and retry", code="rate_limited")
        except TakanError as exc:
            logger.info("connection %s refused: %s", sid, exc.code)
            raise socketio.exceptions.ConnectionRefusedError(exc.detail, error_body(exc)) from None

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._rate.pop(sid, None)
        if reason in DROPPED:
            await self.session.drop(sid)  # the network, not the person: keep the media a while
        else:
            await self.session.leave(sid)

    # -- the gate -----------------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Every event passes here: rate limit, role check and error mapping in one place."""
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
        role = self.session.role_of(sid)
        if role not in roles:
            return {"ok": False, "error": {"code": "forbidden", "message": f"the {role} cannot send {event!r}; only the {' or '.join(sorted(roles))}"}}
        if len(args) > 2:
            return {"ok": False, "error": {"code": "bad_request", "message": "send one payload object per event"}}
        handler: Handler = getattr(self, f"on_{event}")
        payload = args[1] if len(args) > 1 else None
        try:
            if role == "inspector":
                await self.session.check_staff(sid)
            return await handler(sid, payload)
        except (TakanError, BadSdp) as exc:
            logger.info("event %s from %s refused: %s", event, sid, exc)
            ack = error_ack(exc)
            if isinstance(exc, Disconnect):
                await self.disconnect(sid)
            return ack
        except Exception as exc:
            logger.exception("event %s from %s failed", event, sid)
            return error_ack(exc)

    def _within_rate(self, sid: str) -> bool:
        second = int(time.monotonic())
        start, count = self._rate.get(sid, (second, 0))
        if start != second:
            start, count = second, 0
        count += 1
        self._rate[sid] = (start, count)
        return count <= MAX_EVENTS_PER_SECOND

    # -- events (the role table above has already admitted the sender) ------------------------

    async def on_join(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.join(sid, messages.parse_join(payload))

    async def on_offer(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.offer(sid, messages.parse_offer(payload))

    async def on_ice(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.ice(sid, messages.parse_ice(payload))

    async def on_keyframe(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("keyframe", payload)
        return await self.session.keyframe(sid)

    async def on_ping(self, sid: str, payload: Any) -> dict[str, Any]:
        """Is this connection alive end to end? (the page's probe while its media is down)"""
        messages.parse_empty("ping", payload)
        return {"ok": True}

    async def on_stats(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.stats(sid, messages.parse_stats(payload))

    async def on_media(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.media(sid, messages.parse_media(payload))

    async def on_otp_send(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("otp_send", payload)
        return await self.session.otp_send(sid)

    async def on_otp_verify(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.otp_verify(sid, messages.parse_otp_verify(payload))

    async def on_prompt(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.prompt(sid, messages.parse_prompt(payload))

    async def on_capture(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.capture(sid, messages.parse_capture(payload))

    async def on_draw(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.draw(sid, messages.parse_draw(payload))

    async def on_draw_clear(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("draw_clear", payload)
        return await self.session.draw_clear(sid)

    async def on_camera(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.camera(sid, messages.parse_camera(payload))

    async def on_camera_result(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.camera_result(sid, messages.parse_camera_result(payload))

    async def on_note(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.note(sid, messages.parse_note(payload))

    async def on_chat(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.chat(sid, messages.parse_chat(payload))

    async def on_location(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.location(sid, messages.parse_location(payload))

    async def on_sign_request(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.sign_request(sid, messages.parse_sign_request(payload))

    async def on_signature(self, sid: str, payload: Any) -> dict[str, Any]:
        # the quota first (before any decoding), then the big payload off the event loop
        png = payload.get("png") if isinstance(payload, dict) else None
        await self.session.check_quota(sid, "signature", len(png) * 3 // 4 if isinstance(png, str) else 0)
        return await self.session.signature(sid, await asyncio.to_thread(messages.parse_signature, payload))

    async def on_overtime(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.session.overtime(sid, messages.parse_overtime(payload))

    async def on_end(self, sid: str, payload: Any) -> dict[str, Any]:
        messages.parse_empty("end", payload)
        return await self.session.end(sid)


def staff_token(environ: dict[str, Any]) -> str | None:
    """The staff login cookie of the Socket.IO handshake, if any."""
    request = environ.get("aiohttp.request")
    cookies = getattr(request, "cookies", None)
    if cookies is not None:
        value = cookies.get(SESSION_COOKIE)
        return str(value) if value else None
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        jar: SimpleCookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None
