"""The applicant's own photos: uploaded over HTTP with the link token, logged as photos."""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any, Awaitable, Optional, TypeVar

from aiohttp import BodyPartReader, web

from approval.inspections import InspectionBook, now_utc, rfc3339
from errors import BadRequest, Forbidden, RequestTimeout, TooLarge, Unauthorized, UnsupportedMediaType
from session.commands import Photo
from session.service import SessionService
from session.tokens import TokenExpired, TokenInvalid, TokenSigner

from .bodies import BODY_PAUSE_S
from .routes import LINK, Route, post

T = TypeVar("T")

MAX_PHOTO_BYTES = 15 * 1024 * 1024
async def _within_pause(step: Awaitable[T]) -> T:
    """One step of reading the body, refused with 408 if the client stops sending."""
    try:
        return await asyncio.wait_for(step, BODY_PAUSE_S)
    except asyncio.TimeoutError:
        raise RequestTimeout(f"the upload stopped arriving for {BODY_PAUSE_S:g} s; send it again") from None


def _number(fields: dict[str, str], name: str, low: float, high: float) -> Optional[float]:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"field {name!r} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"field {name!r} must be between {low} and {high}")
    return value


#: The page's id for one photo, the same for each try (a retry after a lost answer).
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class PhotoUploads:
    def __init__(self, book: InspectionBook, signer: TokenSigner, session: SessionService) -> None:
        self.book = book
        self.signer = signer
        self.session = session

    def routes(self) -> list[Route]:
        return [post("/api/v1/session/photos", self.upload, LINK)]

    async def upload(self, request: web.Request) -> web.Response:
        """multipart/form-data: file, checkpoint, taken_at, lat, lon, accuracy_m.

        Authorised by the participant's link token in ``X-Takan-Token``.
        """
        try:
            token = self.signer.verify(request.headers.get("X-Takan-Token"))
        except TokenExpired:
            raise Unauthorized("the link has expired; ask for a new link") from None
        except TokenInvalid as exc:
            raise Unauthorized(f"send the link token in X-Takan-Token ({exc})") from None
        if token.role != "applicant":
            raise Forbidden("only the applicant uploads photos; the inspector captures stills")
        record = await self.book.load(token.inspection_id)
        if record.status not in ("live", "interrupted"):
            raise Forbidden(f"photos can be added only while the inspection is live; it is {record.status}")
        if request.content_length is not None and request.content_length > MAX_PHOTO_BYTES + 64 * 1024:
            raise TooLarge(f"a photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
        await self.session.check_photo_quota(record.id, request.content_length or 0)
        if not request.content_type.startswith("multipart/"):
            raise UnsupportedMediaType("send the photo as multipart/form-data with a 'file' part")
        fields: dict[str, str] = {}
        data: Optional[bytes] = None
        reader = await request.multipart()
        while True:
            part = await _within_pause(reader.next())
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not accepted; send one 'file' part")
            name = part.name or ""
            if name == "file":
                chunks = bytearray()
                while chunk := await _within_pause(part.read_chunk(256 * 1024)):
                    chunks += chunk
                    if len(chunks) > MAX_PHOTO_BYTES:
                        raise TooLarge(f"a photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
                data = bytes(chunks)
            elif name in ("checkpoint", "taken_at", "lat", "lon", "accuracy_m", "held", "upload_id"):
                value = await _within_pause(part.text())
                if len(value) > 200:
                    raise BadRequest(f"field {name!r} is too long")
                fields[name] = value
            else:
                raise BadRequest(f"unknown form field {name[:40]!r}")
        if not data:
            raise BadRequest("the 'file' part is missing or empty")
        # taken_at is the device's capture time; received_at is when the whole file got here
        details: dict[str, Any] = {"size_original": len(data), "received_at": rfc3339(now_utc())}
        if fields.get("held") == "1":
            details["held_on_device"] = True  # it waited on the phone while the network was down
        upload_id = fields.get("upload_id")
        if upload_id is not None:
            if not _UPLOAD_ID.fullmatch(upload_id):
                raise BadRequest("upload_id must be 8-64 letters, digits, '-' or '_' (the same for every try of one photo)")
            details["upload_id"] = upload_id  # a retry of a photo already stored answers as the first did
        taken_at = fields.get("taken_at")
        if taken_at:
            try:
                moment = datetime.datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
            except ValueError:
                raise BadRequest(f"taken_at {taken_at!r} is not an RFC 3339 date-time") from None
            details["taken_at"] = moment.isoformat()
        lat = _number(fields, "lat", -90, 90)
        lon = _number(fields, "lon", -180, 180)
        if (lat is None) != (lon is None):
            raise BadRequest("lat and lon must be sent together")
        if lat is not None:
            details.update({"lat": lat, "lon": lon, "accuracy_m": _number(fields, "accuracy_m", 0, 100000)})
        # the service decodes the image (JPEG, PNG or WebP) before storing it
        shown = await self.session.photo(record.id, Photo(fields.get("checkpoint", ""), data, details))
        return web.json_response(shown, status=201)
