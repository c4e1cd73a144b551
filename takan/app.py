"""Assembly of the aiohttp application from a :class:`~takan.config.Config`.

Each subsystem is started in order in one ``cleanup_ctx`` and closed in reverse, so a
failed start-up tears down only what was started.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import AsyncIterator, Optional

import socketio
from aiohttp import web
from aiortc import RTCPeerConnection

from approval.apikeys import ApiKeys, IssuedKey
from approval.idempotency import IdempotencyKeys
from approval.decisions import Decisions
from approval.evaluation import Evaluations
from approval.inspections import InspectionBook
from approval.ledger import Ledger
from approval.prudent import WarningLists
from approval.publicity import Publicity
from approval.rules.rulebook import RuleBook
from approval.notifications import Notifier
from approval.outbox import Outbox
from approval.webhooks import WebhookSender
from approval.templates import Templates
from evidence.access import AccessLog
from evidence.journal import Journal
from evidence.timestamper import Timestamper
from evidence.tsa import TsaClient
from evidence.signing import SigningKeys
from identity.accounts import Accounts
from privacy.fieldcrypto import FieldCipher, FieldKeys
from identity.oidc import OidcProvider
from identity.sessions import StaffSessions
from media.ice import offer_loopback_candidates, rtc_configuration, turn_rest_credentials
from media.tap import check_aiortc_seams
from signaling import openapi, pages
from signaling.admin_api import AdminApi
from signaling.api import InspectionApi
from signaling.approval_api import ApprovalApi
from signaling.auth import Authenticator, authorization_middleware
from signaling.evidence_api import EvidenceApi
from signaling.headers import rate_limit_middleware, security_headers_middleware
from signaling.uploads import PhotoUploads
from signaling.problems import problems_middleware
from signaling.oidc_login import OidcLogin
from signaling.otp import ConsoleOtpSender, OneTimeCodes
from signaling.recording import Recording
from signaling.rooms import Rooms
from signaling.sockets import SessionNamespace
from signaling.staff_api import StaffApi
from signaling.tokens import TokenSigner
from storage.livestate import LiveState, MemoryLiveState
from storage.local import LocalObjectStore
from storage.objects import ObjectStore

from .config import Config

logger = logging.getLogger(__name__)

MAX_SOCKET_MESSAGE = 2 * 1024 * 1024  # a signature event carries its PNG


@dataclass
class Services:
    """What the running app holds; reachable as ``app[SERVICES]``."""

    config: Config
    store: ObjectStore
    live: LiveState
    book: InspectionBook
    keys: ApiKeys
    rooms: Rooms
    signing: SigningKeys
    journal: Journal
    access: AccessLog
    warning_lists: WarningLists
    ledger: Ledger
    publicity: Publicity
    evaluations: Evaluations
    outbox: Outbox
    webhooks: WebhookSender
    accounts: Accounts
    staff_sessions: StaffSessions
    sessions: SessionNamespace
    sio: socketio.AsyncServer
    bootstrap_key: Optional[IssuedKey] = None
    otp_sender: Optional[ConsoleOtpSender] = None
    oidc: Optional[OidcProvider] = None
    decisions: Optional[Decisions] = None


SERVICES = web.AppKey("services", Services)


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


def browser_ice_servers(config: Config, user: str) -> list[dict[str, object]]:
    """The ICE servers a participant's browser gets; TURN logins are minted per join."""
    out = []
    for server in config.ice_servers:
        entry = server.to_browser()
        if config.turn_secret and server.username is None and any(u.startswith("turn") for u in server.urls):
            entry["username"], entry["credential"] = turn_rest_credentials(config.turn_secret, user, config.turn_ttl_s, time.time())
        out.append(entry)
    return out


def build_app(config: Config) -> web.Application:
    check_aiortc_seams()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if config.ice_loopback:
        offer_loopback_candidates()

    link_secret = (
        config.link_secret.encode() if config.link_secret else read_or_create_secret(config.data_dir / "secrets" / "link.key")
    )
    store = make_object_store(config)
    live = make_live_state(config)
    templates = Templates(*(d for d in [config.templates_dir] if d))
    field_keys = FieldKeys(config.data_dir / "field-keys")
    field_keys.start()
    cipher = FieldCipher(field_keys)
    book = InspectionBook(store, templates, cipher)
    keys = ApiKeys(store)
    rtc_config = rtc_configuration(config.ice_servers)
    rooms = Rooms(live, lambda: RTCPeerConnection(rtc_config), config.node_id)
    signer = TokenSigner(link_secret)
    signing = SigningKeys(config.data_dir / "keys", store)
    tsa = TsaClient(config.tsa_urls, config.tsa_timeout_s) if config.tsa_urls else None
    journal = Journal(store, signing, config.data_dir / "journal", timestamper=Timestamper(store, tsa))
    access = AccessLog(store, config.data_dir / "journal" / "access")
    Recording(rooms, journal)
    warning_lists = WarningLists(store)
    ledger = Ledger(store, cipher)
    publicity = Publicity(store, cipher=cipher)
    evaluations = Evaluations(store)
    outbox = Outbox(store)
    notifier = Notifier(outbox, keys)
    webhooks = WebhookSender(outbox, notifier.secret_for)
    otp_sender = ConsoleOtpSender() if config.applicant_otp else None
    sessions = SessionNamespace(
        rooms, book, signer, partial(browser_ice_servers, config), journal, config.base_url, config.session_limit_s,
        otp=OneTimeCodes(otp_sender) if otp_sender else None,
    )

    manager = socketio.AsyncRedisManager(config.redis_url) if config.redis_url else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        max_http_buffer_size=MAX_SOCKET_MESSAGE,
        logger=False,
        engineio_logger=False,
    )
    sio.register_namespace(sessions)

    accounts = Accounts(store, cipher=cipher)
    staff_sessions = StaffSessions(accounts, store)
    auth = Authenticator(keys, staff_sessions, secure_cookies=config.tls != "off")
    app = web.Application(
        middlewares=[
            security_headers_middleware(config.tls != "off"),
            problems_middleware,
            rate_limit_middleware(live, config.api_rate_per_minute),
            authorization_middleware(auth),
        ],
        client_max_size=16 * 1024 * 1024,
    )
    services = Services(
        config, store, live, book, keys, rooms, signing, journal, access, warning_lists, ledger, publicity, evaluations,
        outbox, webhooks, accounts, staff_sessions, sessions, sio,
    )

    decisions = Decisions(book, journal, RuleBook(*(d for d in [config.rules_dir] if d)), warning_lists, notifier, ledger, sessions.seal)
    sessions.warnings_for = decisions.prudent_warnings
    sessions.on_finished(decisions.on_finished)
    services.decisions = decisions
    services.otp_sender = otp_sender
    app.add_routes(ApprovalApi(book, decisions, ledger, publicity, evaluations, warning_lists, access, signer).routes())
    app[SERVICES] = services
    sio.attach(app)

    api = InspectionApi(
        book,
        keys,
        IdempotencyKeys(store),
        signer,
        sessions,
        config.base_url,
        datetime.timedelta(hours=config.link_ttl_hours),
        config.webhook_allowed_hosts,
    )
    app.add_routes(api.routes())
    app.add_routes(EvidenceApi(book, keys, store, signing, access, journal).routes())
    app.add_routes(PhotoUploads(book, signer, sessions).routes())
    app.add_routes(AdminApi(keys, outbox).routes())
    app.add_routes(openapi.routes())
    app.add_routes(StaffApi(accounts, staff_sessions, auth, live).routes())
    provider = (
        OidcProvider(config.oidc_issuer, config.oidc_client_id or "", config.oidc_client_secret or "", f"{config.base_url}/api/v1/auth/oidc/callback")
        if config.oidc_issuer
        else None
    )
    services.oidc = provider
    app.add_routes(OidcLogin(provider, accounts, staff_sessions, auth).routes())
    app.add_routes([web.get("/healthz", healthz)])
    app.add_routes(pages.routes())
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    config = services.config
    await services.store.start()
    try:
        await services.live.start()
        try:
            await services.book.start()
            await services.keys.start()
            await services.signing.start()
            await services.journal.start()
            await services.access.start()
            await services.warning_lists.start()
            await services.publicity.start()
            await services.outbox.start()
            await services.webhooks.start()
            await services.accounts.start()
            await services.staff_sessions.start()
            if services.oidc is not None:
                await services.oidc.start()
            await _mark_interrupted(services)
            assert services.decisions is not None
            await services.decisions.start()
            if config.api_key:
                await services.keys.seed(config.api_key, config.webhook_secret)
            elif len(services.keys) == 0:
                services.bootstrap_key = await services.keys.issue("bootstrap")
            yield
        finally:
            await services.rooms.close()
            if services.decisions is not None:
                await services.decisions.close()
            if services.oidc is not None:
                await services.oidc.close()
            await services.staff_sessions.close()
            await services.accounts.close()
            await services.webhooks.close()
            await services.outbox.close()
            await services.publicity.close()
            await services.warning_lists.close()
            await services.access.close()
            await services.journal.close()
            await services.signing.close()
            await services.book.close()
            await services.keys.close()
            await services.live.close()
    finally:
        await services.store.close()


async def _mark_interrupted(services: Services) -> None:
    """Sessions that were live when the process died are interrupted, not live."""
    for record in services.book.all():
        if record.status == "live":
            await services.book.transition(record.id, "interrupted")
            await services.journal.record(record.id, "session.interrupted", "system", {"reason": "the server restarted during the session"})
            await services.sessions.seal(record.id)
            logger.warning("inspection %s was live at start-up; marked interrupted and sealed", record.id)


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body: dict[str, object] = {"status": "ok", "node": services.config.node_id}
    depth = getattr(services.store, "depth", None)
    if depth is not None:
        body["spool_depth"] = depth
    return web.json_response(body)
