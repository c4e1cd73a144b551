"""Assembly of the aiohttp application from a :class:`~takan.config.Config`.

The composition root: it builds every subsystem, wires them together, and appends one
``cleanup_ctx`` per subsystem in dependency order (storage, records, approval, identity,
judgement, sessions, Socket.IO). aiohttp runs each context's teardown only if its start-up
ran, in reverse order, so a failed start-up tears down exactly what was started. Each
service is reachable as ``app[<KEY>]`` (a typed :class:`aiohttp.web.AppKey`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Optional, Protocol

import socketio
from aiohttp import web
from aiortc import RTCPeerConnection

from approval.apikeys import ApiKeys, IssuedKey
from approval.decisions import Decisions
from approval.evaluation import Evaluations
from approval.idempotency import IdempotencyKeys
from approval.inspections import InspectionBook
from approval.ledger import Ledger
from approval.notifications import Notifier
from approval.outbox import Outbox
from approval.prudent import WarningLists
from approval.publicity import Publicity
from approval.rules.rulebook import RuleBook
from approval.templates import Templates
from approval.webhooks import WebhookSender
from approval.workdays import WorkingCalendar
from evidence.access import AccessLog
from evidence.filing import SegmentFiling
from evidence.journal import Journal
from evidence.sealer import Sealer
from evidence.signing import SigningKeys
from evidence.tail import LogTail
from evidence.timestamper import Timestamper
from evidence.tsa import TsaClient
from identity.accounts import Accounts
from identity.oidc import OidcProvider
from identity.sessions import StaffSessions
from media.ice import (
    LoopbackCandidates,
    rtc_configuration,
    turn_rest_credentials,
)
from media.tap import check_aiortc_seams
from privacy.fieldcrypto import FieldCipher, FieldKeys
from recognition.engine import OcrEngine
from recognition.recognizer import Recognizer
from session.otp import ConsoleOtpSender, OneTimeCodes
from session.placement import Placement
from session.deliveries import DeliverySync
from session.recordsync import PUBLICITY_CHANNEL, RecordSync
from session.sms import HttpSmsGateway
from session.recording import Recording
from session.rooms import Rooms
from session.service import SessionService
from session.staff import InspectorGate
from session.sweeper import Sweeper
from session.tokens import TokenSigner
from session.watermarks import Watermarker
from signaling.audience import SocketAudience
from signaling.broadcast import LocalManager, RedisManager
from signaling.namespace import SessionNamespace
from signaling.server import SocketServer
from storage.livestate import LiveState, MemoryLiveState
from storage.spool import SpoolingStore
from storage.local import LocalObjectStore
from storage.objects import ObjectStore
from web import openapi, pages
from web.admin_api import AdminApi
from web.approval_api import ApprovalApi
from web.auth import Authenticator, authorization_middleware
from web.calendar_api import CalendarApi
from web.evidence_api import EvidenceApi
from web.headers import credentials_middleware, rate_limit_middleware, security_headers_middleware
from web.health import Health
from web.inspections_api import InspectionApi
from web.lookup import record_lookup_middleware
from web.metrics import MetricsEndpoint
from web.oidc_login import OidcLogin
from web.placement_api import PlacementApi
from web.problems import problems_middleware
from web.protocol import ProtocolDocument
from web.record_pdf_api import RecordPdfApi
from web.routes import ROUTE_TABLE, RouteTable
from web.staff_api import StaffApi
from web.uploads import PhotoUploads

from .config import Config, tsa_trust
from .metrics import TakanCollector, registry
from .protocol import constants as protocol_constants

logger = logging.getLogger(__name__)

MAX_SOCKET_MESSAGE = 3 * 1024 * 1024 // 2  # a signature event carries its PNG (base64) and strokes

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", ObjectStore)
LIVE = web.AppKey("live", LiveState)
BOOK = web.AppKey("book", InspectionBook)
KEYS = web.AppKey("keys", ApiKeys)
SIGNING = web.AppKey("signing", SigningKeys)
JOURNAL = web.AppKey("journal", Journal)
ACCESS = web.AppKey("access", AccessLog)
WARNING_LISTS = web.AppKey("warning_lists", WarningLists)
LEDGER = web.AppKey("ledger", Ledger)
PUBLICITY = web.AppKey("publicity", Publicity)
EVALUATIONS = web.AppKey("evaluations", Evaluations)
OUTBOX = web.AppKey("outbox", Outbox)
WEBHOOKS = web.AppKey("webhooks", WebhookSender)
ACCOUNTS = web.AppKey("accounts", Accounts)
STAFF_SESSIONS = web.AppKey("staff_sessions", StaffSessions)
OIDC: web.AppKey[Optional[OidcProvider]] = web.AppKey("oidc")
DECISIONS = web.AppKey("decisions", Decisions)
SESSIONS = web.AppKey("sessions", SessionService)
SWEEPER = web.AppKey("sweeper", Sweeper)
PLACEMENT = web.AppKey("placement", Placement)
#: Keeps the book coherent with other nodes' (only with Redis: one node needs nothing).
RECORD_SYNC: web.AppKey[Optional[RecordSync]] = web.AppKey("record_sync")
#: Sends a dead node's pending webhooks from this one (only with Redis, like RECORD_SYNC).
DELIVERY_SYNC: web.AppKey[Optional[DeliverySync]] = web.AppKey("delivery_sync")
#: Keeps publicity coherent with other nodes' (only with Redis).
PUBLICITY_SYNC: web.AppKey[Optional[RecordSync]] = web.AppKey("publicity_sync")
SIO = web.AppKey("sio", socketio.AsyncServer)
OTP_SENDER: web.AppKey[Optional[ConsoleOtpSender | HttpSmsGateway]] = web.AppKey("otp_sender")
#: Sends applicants their link (the SMS gateway if configured, else the log).
TEXT_SENDER: web.AppKey[ConsoleOtpSender | HttpSmsGateway] = web.AppKey("text_sender")
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyKeys)
CALENDAR = web.AppKey("calendar", WorkingCalendar)
RECOGNIZER = web.AppKey("recognizer", Recognizer)
WATERMARKER = web.AppKey("watermarker", Watermarker)
#: The API key printed at first start when none was configured (None afterwards).
BOOTSTRAP_KEY: web.AppKey[list[IssuedKey]] = web.AppKey("bootstrap_key")


def read_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """A per-deployment secret kept in the data directory (mode 0600)."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    return secret


def make_object_store(config: Config) -> ObjectStore:
    if config.s3 is None:
        return LocalObjectStore(config.data_dir / "objects")
    from storage.s3 import S3ObjectStore
    from storage.spool import SpoolingStore

    s3 = config.s3
    inner = S3ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, s3.bucket, s3.secure, s3.region)
    return SpoolingStore(inner, config.data_dir / "spool")


def make_live_state(config: Config) -> LiveState:
    if config.redis_url is None:
        return MemoryLiveState()
    from storage.redis_state import RedisLiveState

    return RedisLiveState(config.redis_url)


def browser_ice_servers(config: Config) -> Callable[[str], list[dict[str, object]]]:
    """The ICE servers a participant's browser gets; TURN logins are minted per join."""

    def servers(user: str) -> list[dict[str, object]]:
        out = []
        for server in config.ice_servers:
            entry = server.to_browser()
            if config.turn_secret and server.username is None and any(u.startswith("turn") for u in server.urls):
                entry["username"], entry["credential"] = turn_rest_credentials(config.turn_secret, user, config.turn_ttl_s, time.time())
            out.append(entry)
        return out

    return servers


def _origins_besides(url: str, own: str) -> tuple[str, ...]:
    """The origin of ``url`` if it is not the origin of ``own``."""
    origin = "/".join(url.split("/")[:3])
    return () if origin == "/".join(own.split("/")[:3]) else (origin,)


def bootstrap_key(app: web.Application) -> Optional[IssuedKey]:
    """The API key issued at this start because none existed, if any."""
    issued = app[BOOTSTRAP_KEY]
    return issued[0] if issued else None


def build_app(config: Config) -> web.Application:
    check_aiortc_seams()
    config.data_dir.mkdir(parents=True, exist_ok=True)

    link_secret = (
        config.link_secret.encode() if config.link_secret else read_or_create_secret(config.data_dir / "secrets" / "link.key")
    )
    # -- storage
    store = make_object_store(config)
    live = make_live_state(config)
    field_keys = FieldKeys(config.data_dir / "field-keys")
    field_keys.start()
    cipher = FieldCipher(field_keys)
    # -- records and evidence
    templates = Templates(*(d for d in [config.templates_dir] if d))
    book = InspectionBook(store, templates, cipher)
    keys = ApiKeys(store)
    signing = SigningKeys(config.data_dir / "keys", store, require_sm2=config.require_sm2)
    tsa = TsaClient(config.tsa_urls, config.tsa_timeout_s) if config.tsa_urls else None
    journal = Journal(store, signing, config.data_dir / "journal", timestamper=Timestamper(store, tsa))
    if config.redis_url:  # another node may take a room over: keep each log's unshipped tail in Redis too
        journal.tail = LogTail(live)
    access = AccessLog(store, config.data_dir / "journal" / "access")
    sealer = Sealer(journal, config.base_url, book.load, book.set_manifest)
    # -- approval
    warning_lists = WarningLists(store)
    ledger = Ledger(store, cipher)
    calendar = WorkingCalendar(store)  # imported years (docs/calendar.md), then chinese-calendar
    publicity = Publicity(store, cipher=cipher, calendar=calendar)
    evaluations = Evaluations(store)
    outbox = Outbox(store)
    notifier = Notifier(outbox, keys)
    webhooks = WebhookSender(outbox, notifier.secret_for)
    decisions = Decisions(book, journal, RuleBook(*(d for d in [config.rules_dir] if d)), warning_lists, notifier, ledger, sealer.seal)
    # -- identity
    accounts = Accounts(store, cipher=cipher)
    staff_sessions = StaffSessions(accounts, store)
    auth = Authenticator(keys, staff_sessions, secure_cookies=config.tls != "off")
    provider = (
        OidcProvider(config.oidc_issuer, config.oidc_client_id or "", config.oidc_client_secret or "", f"{config.base_url}/api/v1/auth/oidc/callback")
        if config.oidc_issuer
        else None
    )
    # -- the session domain and its Socket.IO door
    manager = RedisManager(config.redis_url) if config.redis_url else LocalManager()
    sio = SocketServer(
        async_mode="aiohttp", client_manager=manager, max_http_buffer_size=MAX_SOCKET_MESSAGE, logger=False, engineio_logger=False,
    )
    rtc_config = rtc_configuration(config.ice_servers)
    rooms = Rooms(live, lambda: RTCPeerConnection(rtc_config), config.node_id)
    Recording(rooms, SegmentFiling(journal))
    signer = TokenSigner(link_secret)
    text_sender: ConsoleOtpSender | HttpSmsGateway = (
        HttpSmsGateway(config.sms_gateway_url, config.sms_gateway_secret or "", config.sms_timeout_s)
        if config.sms_gateway_url
        else ConsoleOtpSender()
    )
    otp_sender = text_sender if config.applicant_otp else None
    sessions = SessionService(
        rooms, book, journal, sealer, signer, SocketAudience(sio), browser_ice_servers(config), config.session_limit_s,
        otp=OneTimeCodes(otp_sender, live) if otp_sender else None,
    )
    sessions.warnings_for = decisions.prudent_warnings
    # fencing needs other nodes to fence against: one node without Redis never steps aside
    placement = Placement(live, config.node_id, config.node_base_url, fencing=bool(config.redis_url))
    sessions.place_rooms(placement)
    if config.redis_url and isinstance(store, SpoolingStore):
        # a write spooled by a node that then lost the room must not overwrite the next node's
        store.tagger, store.gate = placement.spool_tag, placement.spool_gate
    record_sync = RecordSync(live, book, config.node_id) if config.redis_url else None
    delivery_sync = DeliverySync(outbox, placement, record_sync) if record_sync is not None else None
    publicity_sync = RecordSync(live, publicity, config.node_id, PUBLICITY_CHANNEL) if config.redis_url else None
    if config.inspector_login == "required":
        sessions.inspector_gate = InspectorGate(staff_sessions, accounts, book, journal)
    sessions.on_finished(decisions.on_finished)
    recognizer = Recognizer(
        OcrEngine(threads=1), book, journal, sealer,
        lambda inspection_id, entry: sessions.tell_role(inspection_id, "inspector", "recognized", entry),
    )
    sessions.on_captured(recognizer)
    watermarker = Watermarker(book, journal, sealer)
    sessions.on_captured(watermarker)
    sio.register_namespace(SessionNamespace(sessions, live))
    sweeper = Sweeper(sessions, config.abandon_after_s, lambda record: notifier.notify(record, "inspection.expired"))

    # -- the web door
    table = RouteTable()
    app = web.Application(
        middlewares=[
            # a node's pages may ask the entry URL where their room went (docs/nodes.md)
            security_headers_middleware(config.tls != "off", _origins_besides(config.base_url, config.node_base_url)),
            problems_middleware,
            credentials_middleware(),  # before the rate limit and the keys read them
            rate_limit_middleware(live, config.api_rate_per_minute),
            authorization_middleware(auth, table),
            record_lookup_middleware(book),  # after authorization: only callers make it read the store
        ],
        client_max_size=16 * 1024 * 1024,
    )
    idempotency = IdempotencyKeys(store)
    calendar_api = CalendarApi(calendar)
    for routes in (
        InspectionApi(book, keys, idempotency, signer, sessions, config.base_url,
                      datetime.timedelta(hours=config.link_ttl_hours), config.webhook_allowed_hosts, accounts, text_sender).routes(),
        ApprovalApi(book, decisions, ledger, publicity, evaluations, warning_lists, access, signer).routes(),
        EvidenceApi(book, keys, store, signing, access, journal, tsa_trust(config)).routes(),
        RecordPdfApi(book, journal, store, sealer, access, config.base_url).routes(),
        PhotoUploads(book, signer, sessions).routes(),
        PlacementApi(sessions, config.base_url).routes(),
        AdminApi(keys, outbox).routes(),
        StaffApi(accounts, staff_sessions, auth, live).routes(),
        OidcLogin(provider, accounts, staff_sessions, auth).routes(),
        openapi.routes(),
        ProtocolDocument(protocol_constants()).routes(),
        calendar_api.routes(),
        Health(config.node_id, store, calendar).routes(),
        MetricsEndpoint(registry(TakanCollector(sessions, store, outbox, decisions, journal))).routes(),
        pages.routes(),
    ):
        table.add(app, routes)
    sio.attach(app)

    for key, value in (
        (CONFIG, config), (STORE, store), (LIVE, live), (BOOK, book), (KEYS, keys), (SIGNING, signing),
        (JOURNAL, journal), (ACCESS, access), (WARNING_LISTS, warning_lists), (LEDGER, ledger),
        (PUBLICITY, publicity), (EVALUATIONS, evaluations), (OUTBOX, outbox), (WEBHOOKS, webhooks),
        (ACCOUNTS, accounts), (STAFF_SESSIONS, staff_sessions), (OIDC, provider), (DECISIONS, decisions),
        (SESSIONS, sessions), (SWEEPER, sweeper), (PLACEMENT, placement), (RECORD_SYNC, record_sync), (DELIVERY_SYNC, delivery_sync), (PUBLICITY_SYNC, publicity_sync), (SIO, sio), (OTP_SENDER, otp_sender), (TEXT_SENDER, text_sender), (IDEMPOTENCY, idempotency),
        (ROUTE_TABLE, table), (BOOTSTRAP_KEY, []), (CALENDAR, calendar),
        (RECOGNIZER, recognizer), (WATERMARKER, watermarker),
    ):
        app[key] = value  # each pair is typed by its key above

    if config.ice_loopback:
        app.cleanup_ctx.append(_loopback_candidates)
    app.cleanup_ctx.extend(
        [_storage, calendar_api.lifecycle, _records, _approval, _identity, _judgement, _recognition, _sessions, _sweeper, _socketio]
    )
    return app


# -- lifecycles, in dependency order ----------------------------------------------------------


async def _loopback_candidates(app: web.Application) -> AsyncIterator[None]:
    """--ice-loopback: the server's ICE offers 127.0.0.1 while this app runs."""
    loopback = LoopbackCandidates()
    loopback.start()
    try:
        yield
    finally:
        loopback.close()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].start()
    try:
        await app[LIVE].start()
        try:
            yield
        finally:
            await app[LIVE].close()
    finally:
        await app[STORE].close()


class Lifecycle(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...


@contextlib.asynccontextmanager
async def _started(services: list[Lifecycle]) -> AsyncIterator[None]:
    """Start ``services`` in order; close (in reverse) those that started."""
    started: list[Lifecycle] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        yield
    finally:
        for service in reversed(started):
            await service.close()


async def _records(app: web.Application) -> AsyncIterator[None]:
    """Inspection records, API keys, signing keys, and the evidence journal and access log
    (which ship what a previous process left in their local files)."""
    sync = app[RECORD_SYNC]  # with several nodes it starts the book, once it hears the others
    async with _started([sync or app[BOOK], app[KEYS], app[SIGNING], app[JOURNAL], app[ACCESS]]):
        config = app[CONFIG]
        if config.api_key:
            await app[KEYS].seed(config.api_key, config.webhook_secret)
        elif len(app[KEYS]) == 0:
            app[BOOTSTRAP_KEY].append(await app[KEYS].issue("bootstrap"))
        yield


async def _approval(app: web.Application) -> AsyncIterator[None]:
    """Warning lists, publicity and the webhook outbox with its sender."""
    publicity = app[PUBLICITY_SYNC] or app[PUBLICITY]  # with several nodes the sync starts publicity
    deliveries = app[DELIVERY_SYNC]
    async with _started([app[WARNING_LISTS], publicity, app[OUTBOX], app[WEBHOOKS], *([deliveries] if deliveries else [])]):
        yield


async def _identity(app: web.Application) -> AsyncIterator[None]:
    """Staff accounts, their sessions, and the OpenID Connect provider if configured."""
    provider = app[OIDC]
    services: list[Lifecycle] = [app[ACCOUNTS], app[STAFF_SESSIONS]]
    if provider is not None:
        services.append(provider)
    async with _started(services):
        yield


async def _judgement(app: web.Application) -> AsyncIterator[None]:
    """Judge what a previous process ended but did not judge; finish judgements at exit."""
    decisions = app[DECISIONS]
    await decisions.start()
    try:
        yield
    finally:
        await decisions.close()


async def _recognition(app: web.Application) -> AsyncIterator[None]:
    """The OCR worker (its model loads on the first capture, not at start)."""
    async with _started([app[RECOGNIZER], app[WATERMARKER]]):
        yield


async def _sessions(app: web.Application) -> AsyncIterator[None]:
    """Sessions left live by the last process are settled in the background."""
    sessions = app[SESSIONS]
    await app[PLACEMENT].start()  # other nodes see this one alive before it takes a room
    try:
        sessions.start()
        sessions.recovery.start()
        try:
            yield
        finally:
            await sessions.recovery.close()
            await sessions.close()
    finally:
        # the rooms are closed; once their last events are in the store, other nodes may
        # take them at once (they continue the logs from the store)
        await app[JOURNAL].ship()
        await app[PLACEMENT].close()


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Abandoned sessions end and unjoined scheduled inspections expire, by themselves."""
    async with _started([app[SWEEPER]]):
        yield


async def _socketio(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        # disconnect the pages cleanly (they reconnect to the next process)
        await app[SIO].shutdown()
