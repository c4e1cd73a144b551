"""The ``takan`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from typing import Any, Optional, Sequence

from aiohttp import web

from .config import Config, ConfigError, load_config, tsa_trust

logger = logging.getLogger("takan")


def _server_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every verb that opens the deployment's data (serve, verify...)."""
    add = parser.add_argument
    add("--data-dir", help="data directory (TAKAN_DATA_DIR, default ./data)")
    add("--redis-url", help="Redis for live state and Socket.IO fan-out (TAKAN_REDIS_URL)")
    add("--s3-endpoint", help="S3/MinIO endpoint host:port or URL (TAKAN_S3_ENDPOINT)")
    add("--s3-access-key", help="TAKAN_S3_ACCESS_KEY")
    add("--s3-secret-key", help="TAKAN_S3_SECRET_KEY")
    add("--s3-bucket", help="TAKAN_S3_BUCKET (default takan)")
    add("--s3-secure", help="true for https to S3 (TAKAN_S3_SECURE)")
    add("--log-level", help="DEBUG, INFO, WARNING or ERROR (TAKAN_LOG_LEVEL)")
    add("--log-format", help="text, or json: one JSON object per line with the inspection id (TAKAN_LOG_FORMAT)")
    add("--tsa-urls", help="RFC 3161 timestamp authorities, comma-separated, tried in order (TAKAN_TSA_URLS)")
    add("--tsa-ca", dest="tsa_ca_file", metavar="FILE",
        help="PEM bundle of the CA certificates trusted to vouch for the TSA; timestamps are verified against it (TAKAN_TSA_CA_FILE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="takan", description="Takan (踏勘) remote site inspection")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    serve = verbs.add_parser("serve", help="run the server")
    _server_flags(serve)
    add = serve.add_argument
    add("--host", help="address to listen on (TAKAN_HOST, default 0.0.0.0)")
    add("--port", help="port (TAKAN_PORT, default 8080)")
    add("--public-url", help="URL browsers use to reach this server (TAKAN_PUBLIC_URL)")
    add("--tls", help="off, self-signed or files (TAKAN_TLS)")
    add("--tls-cert", help="PEM certificate chain (TAKAN_TLS_CERT)")
    add("--tls-key", help="PEM private key (TAKAN_TLS_KEY)")
    add("--stun-urls", help="comma-separated stun: URLs (TAKAN_STUN_URLS)")
    add("--turn-urls", help="comma-separated turn: URLs (TAKAN_TURN_URLS)")
    add("--turn-username", help="TAKAN_TURN_USERNAME")
    add("--turn-credential", help="TAKAN_TURN_CREDENTIAL")
    add("--turn-secret", help="coturn static-auth-secret: mint short-lived TURN logins per participant (TAKAN_TURN_SECRET)")
    add("--ice-loopback", help="offer 127.0.0.1 ICE candidates (TAKAN_ICE_LOOPBACK)")
    add("--link-ttl-hours", help="how long participant links stay valid (TAKAN_LINK_TTL_HOURS, default 72)")
    add("--session-limit-s", help="session time limit in seconds (TAKAN_SESSION_LIMIT_S; default: the item's template, 30 min)")
    add("--inspector-login", help="required: inspector links need the assigned inspector's staff login; link: the link alone (TAKAN_INSPECTOR_LOGIN, default required)")
    add("--sms-gateway-url", help="HTTP SMS gateway for applicant invites and one-time codes (TAKAN_SMS_GATEWAY_URL, with TAKAN_SMS_GATEWAY_SECRET; default: the log)")
    add("--sms-timeout-s", help="seconds one SMS gateway request may take (TAKAN_SMS_TIMEOUT_S, default 5)")
    add("--abandon-after-s", help="an open inspection with nobody in it this long ends as abandoned (TAKAN_ABANDON_AFTER_S, default 600)")
    add("--webhook-allowed-hosts", help="comma-separated hosts (or .suffixes) callbacks may target (TAKAN_WEBHOOK_ALLOWED_HOSTS)")
    add("--applicant-otp", help="true: applicants enter a one-time code sent to their phone before joining (TAKAN_APPLICANT_OTP)")
    add("--require-sm2", help="true: refuse to start without SM2 signing, and verification fails a manifest without a valid SM2 signature (TAKAN_REQUIRE_SM2)")
    add("--oidc-issuer", help="staff login through this OpenID Connect provider (TAKAN_OIDC_ISSUER, _CLIENT_ID, _CLIENT_SECRET)")
    add("--oidc-client-id")
    add("--oidc-client-secret")
    add("--node-id", help="name of this node (TAKAN_NODE_ID)")
    add("--node-url", help="URL browsers use to reach this node itself, not the load balancer (TAKAN_NODE_URL; default: the public URL)")
    add("--templates-dir", help="directory of checklist templates overriding the built-in ones (TAKAN_TEMPLATES_DIR)")
    add("--rules-dir", help="directory of <item>.rules.yaml files overriding the built-in rules (TAKAN_RULES_DIR)")

    verify = verbs.add_parser("verify", help="verify an inspection's evidence (exit 1 on any difference)")
    _server_flags(verify)
    verify.add_argument("inspection", nargs="+", help="inspection id(s)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--quiet", action="store_true", help="no progress output")
    verify.add_argument(
        "--require-sm2", action="store_true", default=None,
        help="a manifest without a valid SM2 signature fails (also TAKAN_REQUIRE_SM2=true)",
    )

    backup = verbs.add_parser("backup", help="back up every record and all evidence to one file")
    _server_flags(backup)
    backup.add_argument("out", help="the backup file to write (.tar or .tar.gz)")
    restore = verbs.add_parser("restore", help="restore a backup into an empty store, then verify every inspection")
    _server_flags(restore)
    restore.add_argument("backup_file")
    restore.add_argument("--overwrite", action="store_true", help="restore into a store that already holds objects")
    export = verbs.add_parser("export", help="export one inspection as a self-contained archive package (zip)")
    _server_flags(export)
    export.add_argument("inspection")
    export.add_argument("out", help="the .zip to write")
    export.add_argument("--authority", help="the authority named in the package metadata")

    keys = verbs.add_parser("keys", help="manifest signing keys")
    _server_flags(keys)
    keys_verbs = keys.add_subparsers(dest="keys_verb", metavar="ACTION")
    # storage flags before or after the action, as for calendar below
    for action, text in (("list", "list the public keys"), ("rotate", "make a new current signing key (old manifests stay valid)"),
                         ("rotate-fields", "make a new current key for personal-data fields (old values still decrypt)")):
        _server_flags(keys_verbs.add_parser(action, help=text, argument_default=argparse.SUPPRESS))

    retention = verbs.add_parser("retention", help="report inspections whose retention period has run out (never deletes)")
    _server_flags(retention)
    retention.add_argument("--policy", help="a JSON or YAML retention policy overriding the built-in one")

    account = verbs.add_parser("account", help="staff accounts (the first admin is created here)")
    _server_flags(account)
    account_verbs = account.add_subparsers(dest="account_verb", metavar="ACTION")
    create_account = account_verbs.add_parser("create", help="create an account; prints the TOTP enrolment URI once")
    create_account.add_argument("--user-id", required=True)
    create_account.add_argument("--name", required=True, help="real name")
    create_account.add_argument("--roles", required=True, help="comma-separated: inspector, reviewer, approver, auditor, admin")
    create_account.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of prompting")
    account_verbs.add_parser("list", help="list accounts")
    for action in ("disable", "enable", "unlock"):
        sub = account_verbs.add_parser(action, help=f"{action} an account")
        sub.add_argument("user_id")
    reset = account_verbs.add_parser("reset-password", help="set a new password (the owner must change it at next login)")
    reset.add_argument("user_id")
    reset.add_argument("--new-totp", action="store_true", help="also enrol a new TOTP secret")
    reset.add_argument("--password-stdin", action="store_true")

    calendar = verbs.add_parser("calendar", help="the working-day calendar: load a year's State Council holiday arrangement")
    _server_flags(calendar)
    calendar_verbs = calendar.add_subparsers(dest="calendar_verb", metavar="ACTION")
    # The storage flags are taken before or after the action (`takan calendar import FILE --data-dir D`).
    calendar_import = calendar_verbs.add_parser(
        "import", help="load a year's holidays and make-up working days (docs/calendar.md)", argument_default=argparse.SUPPRESS
    )
    calendar_import.add_argument("file", help="the arrangement as YAML or JSON")
    calendar_import.add_argument("--by", dest="imported_by", default=None, help="who is loading it (default: the login name)")
    calendar_show = calendar_verbs.add_parser("show", help="show a year's holidays and where they come from", argument_default=argparse.SUPPRESS)
    calendar_show.add_argument("year", type=int)
    calendar_show.add_argument("--json", action="store_true", default=False, help="print the arrangement in the import format")
    calendar_list = calendar_verbs.add_parser("list", help="list the years known and where each comes from", argument_default=argparse.SUPPRESS)
    for sub in (calendar_import, calendar_show, calendar_list):
        _server_flags(sub)

    apikey = verbs.add_parser("apikey", help="issue or revoke approval-core API keys")
    _server_flags(apikey)
    apikey_verbs = apikey.add_subparsers(dest="apikey_verb", metavar="ACTION")
    # storage flags before or after the action (`takan apikey create --name N --data-dir D`)
    create = apikey_verbs.add_parser("create", help="issue a key (shown once)", argument_default=argparse.SUPPRESS)
    create.add_argument("--name", required=True, help="who the key is for")
    create.add_argument("--permissions", default=None,
                        help="comma-separated, of: query, entry, review, approve, admin, personal_data "
                             "(default: all); a call needing another is refused with 403")
    apikey_list = apikey_verbs.add_parser("list", help="list keys (ids, names, permissions, revocation)", argument_default=argparse.SUPPRESS)
    revoke = apikey_verbs.add_parser("revoke", help="revoke a key", argument_default=argparse.SUPPRESS)
    revoke.add_argument("key_id")
    for sub in (create, apikey_list, revoke):
        _server_flags(sub)
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    local = ("verb", "apikey_verb", "keys_verb", "account_verb", "inspection", "json", "quiet", "name", "key_id",
             "user_id", "roles", "password_stdin", "new_totp", "out", "backup_file", "overwrite", "authority", "policy",
             "calendar_verb", "file", "imported_by", "year")
    return {k: v for k, v in vars(args).items() if k not in local}


def setup_logging(level: str, log_format: str = "text") -> None:
    from privacy.masking import install_scrubbing

    from .logs import JsonLogFormatter

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    install_scrubbing()  # no ID or phone number reaches a log in clear (5.11)
    for noisy in ("aioice", "aiortc", "engineio", "socketio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        config = load_config(_flags(args))
    except ConfigError as exc:
        print(f"takan: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    if args.verb == "serve":
        return asyncio.run(serve(config))
    if args.verb == "apikey":
        if args.apikey_verb is None:
            parser.parse_args(["apikey", "--help"])
        return asyncio.run(apikey(config, args))
    if args.verb == "account":
        if args.account_verb is None:
            parser.parse_args(["account", "--help"])
        return asyncio.run(account(config, args))
    if args.verb == "verify":
        return asyncio.run(verify(config, args))
    if args.verb == "calendar":
        if args.calendar_verb is None:
            parser.parse_args(["calendar", "--help"])
        return asyncio.run(calendar_verb(config, args))
    if args.verb == "retention":
        return asyncio.run(retention_report(config, args))
    if args.verb in ("backup", "restore", "export"):
        return asyncio.run(archive_verb(config, args))
    if args.verb == "keys":
        if args.keys_verb is None:
            parser.parse_args(["keys", "--help"])
        return asyncio.run(keys(config, args))
    return 2


async def serve(config: Config) -> int:
    from web.server import GuardedAppRunner

    from .app import bootstrap_key, build_app
    from .tls import ensure_self_signed, server_context

    ssl_context = None
    if config.tls == "self-signed":
        cert, key = ensure_self_signed(config.data_dir / "tls")
        ssl_context = server_context(cert, key)
    elif config.tls == "files":
        assert config.tls_cert and config.tls_key
        ssl_context = server_context(config.tls_cert, config.tls_key)

    try:
        app = build_app(config)
    except Exception as exc:
        print(f"takan: cannot start: {exc}", file=sys.stderr)
        return 1
    runner = GuardedAppRunner(app)
    try:
        await runner.setup()
    except Exception as exc:
        print(f"takan: cannot start: {exc}", file=sys.stderr)
        return 1
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context, shutdown_timeout=5)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"takan: cannot listen on {config.host}:{config.port}: {exc.strerror}; choose another --port", file=sys.stderr)
        return 1

    base = config.base_url
    lines = [
        f"Takan is serving on {base}  (data: {config.data_dir.resolve()})",
        f"  health:        {base}/healthz",
        f"  API:           {base}/api/v1/inspections",
        "  inspector/applicant links come back from POST /api/v1/inspections",
    ]
    issued = bootstrap_key(app)
    if issued is not None:
        lines += [
            "  bootstrap API key (shown once; keep it):",
            f"    Authorization: Bearer {issued.token}",
            f"    webhook secret: {issued.key.webhook_secret}",
        ]
    elif config.api_key:
        lines.append("  API key: the one in TAKAN_API_KEY")
    print("\n".join(lines), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down")
    await runner.cleanup()
    return 0


async def apikey(config: Config, args: argparse.Namespace) -> int:
    from approval.apikeys import PERMISSIONS, REFRESH_S, ApiKeys
    from errors import TakanError

    from .app import make_object_store

    store = make_object_store(config)
    await store.start()
    try:
        keys = ApiKeys(store, refresh_s=0)  # read once: the servers read the change within seconds
        await keys.start()
        if args.apikey_verb == "create":
            permissions = PERMISSIONS
            if args.permissions is not None:
                permissions = tuple(p.strip() for p in args.permissions.split(",") if p.strip())
                unknown = [p for p in permissions if p not in PERMISSIONS]
                if unknown or not permissions:
                    print(f"takan: unknown permission(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PERMISSIONS)}", file=sys.stderr)
                    return 2
            issued = await keys.issue(args.name, permissions)
            print(f"API key {issued.key.id} for {args.name!r} (shown once; keep it):")
            print(f"  Authorization: Bearer {issued.token}")
            print(f"  webhook secret: {issued.key.webhook_secret}")
        elif args.apikey_verb == "list":
            for key in keys.all():
                state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
                print(f"{key.id:14} {state:30} {','.join(key.permissions):28} {key.name}")
        else:
            try:
                await keys.revoke(args.key_id)
            except TakanError as exc:
                print(f"takan: {exc.detail}; `takan apikey list` shows the key ids", file=sys.stderr)
                return 1
            print(f"API key {args.key_id} revoked (running servers refuse it within {REFRESH_S:.0f} s)")
        return 0
    finally:
        await store.close()


class _ProgressBar:
    """Progress of long verifications on stderr: a bar on a terminal, else a line per quarter."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._quarter = -1

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        share = done / total if total else 1.0
        if not self.tty:
            quarter = int(share * 4)
            if quarter != self._quarter:
                self._quarter = quarter
                print(f"  {share:4.0%} checked ({done / 1e6:.1f} of {total / 1e6:.1f} MB)", file=sys.stderr, flush=True)
            return
        now = time.monotonic()
        if now - self._last < 0.2 and done < total:
            return
        self._last = now
        bar = "#" * int(share * 30)
        print(f"\r  [{bar:<30}] {share:6.1%} {done / 1e6:8.1f} MB  {what[-40:]:<40}", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)


async def verify(config: Config, args: argparse.Namespace) -> int:
    import json

    from evidence.verify import verify_inspection

    from .app import make_object_store

    trust = tsa_trust(config)
    store = make_object_store(config)
    await store.start()
    failed = 0
    try:
        for inspection_id in args.inspection:
            if not args.quiet and not args.json:
                print(f"verifying inspection {inspection_id}", file=sys.stderr)
            report = await verify_inspection(
                store, inspection_id, _ProgressBar(not args.quiet and not args.json), require_sm2=config.require_sm2,
                tsa_trust=trust,
            )
            if args.json:
                print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
            elif report.ok:
                print(
                    f"OK {inspection_id}: {report.objects_checked} objects ({report.bytes_checked / 1e6:.1f} MB), "
                    f"{report.events_checked} events, signature by key {report.key_id}"
                    + (f", SM2 signature by key {report.sm2_key_id}" if report.sm2_key_id else "")
                    + _timestamp_words(report)
                )
            else:
                print(f"FAILED {inspection_id}: first difference: {report.first_problem}")
                for problem in report.problems[1:]:
                    print(f"  also: {problem}")
            failed += 0 if report.ok else 1
    finally:
        await store.close()
    return 1 if failed else 0


def _timestamp_words(report: Any) -> str:
    """The trusted timestamp, as the OK line says it (a failed one is among the problems)."""
    if report.timestamp == "pending":
        return "; timestamp pending (no token from the TSA yet)"
    if report.timestamp_trust == "trusted":
        return f"; timestamp {report.timestamp} verified against the configured TSA CA ({report.timestamp_ca}), signed by {report.timestamp_tsa}"
    if report.timestamp_trust == "untrusted":
        return f"; timestamp {report.timestamp} {report.timestamp_note}"
    return ""


async def archive_verb(config: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from archive.backup import BackupError, backup, restore, verify_all
    from archive.package import ExportError, export_package
    from privacy.fieldcrypto import FieldCipher, FieldKeys

    from .app import make_object_store

    progress = _ProgressBar(True)
    store = make_object_store(config)
    await store.start()
    try:
        if args.verb == "backup":
            info = await backup(store, Path(args.out), progress)
            print(f"backed up {info.objects} objects ({info.bytes / 1e6:.1f} MB) to {info.path} (sha256 {info.sha256})")
            print("keep the data directory's keys/ and field-keys/ in a separate, offline backup")
            return 0
        if args.verb == "restore":
            restored = await restore(store, Path(args.backup_file), progress, overwrite=args.overwrite)
            print(f"restored {restored.objects} objects ({restored.bytes / 1e6:.1f} MB); verifying every inspection")
            failed = 0
            for inspection_id, report in await verify_all(store, progress, require_sm2=config.require_sm2, tsa_trust=tsa_trust(config)):
                print(f"  {'OK    ' if report.ok else 'FAILED'} {inspection_id}" + ("" if report.ok else f": {report.first_problem}"))
                failed += 0 if report.ok else 1
            return 1 if failed else 0
        keys = FieldKeys(config.data_dir / "field-keys")
        keys.start()
        package = await export_package(
            store, args.inspection, Path(args.out), authority=args.authority, cipher=FieldCipher(keys), progress=progress,
            require_sm2=config.require_sm2, tsa_trust=tsa_trust(config),
        )
        print(f"archive package {package.path}: {package.files} files, {package.bytes / 1e6:.1f} MB, sha256 {package.sha256}; "
              "authenticity, integrity, usability and security checks passed")
        return 0
    except (BackupError, ExportError) as exc:
        print(f"takan: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def keys(config: Config, args: argparse.Namespace) -> int:
    from evidence.signing import SigningKeys

    from .app import make_object_store

    store = make_object_store(config)
    await store.start()
    try:
        from evidence.sm2 import SM2Error

        signing = SigningKeys(config.data_dir / "keys", store, require_sm2=config.require_sm2)
        try:
            await signing.start()
        except SM2Error as exc:
            print(f"takan: {exc}", file=sys.stderr)
            return 1
        if args.keys_verb == "rotate":
            kid = await signing.rotate()
            try:
                sm2_kid = await signing.rotate_sm2()
            except SM2Error as exc:
                # Without SM2 (a libcrypto built without it) the Ed25519 key still rotates;
                # a deployment that requires SM2 never gets here (start() refused).
                print(f"signing key {kid} (Ed25519) is now current; restart running servers to use it")
                print(f"takan: no SM2 key was made: {exc}; manifests stay signed with Ed25519 only "
                      "(install a libcrypto with SM2, e.g. Debian's libssl3, and rotate again)", file=sys.stderr)
            else:
                print(f"signing keys {kid} (Ed25519) and {sm2_kid} (SM2) are now current; restart running servers to use them")
        elif args.keys_verb == "rotate-fields":
            from privacy.fieldcrypto import FieldKeys

            field_keys = FieldKeys(config.data_dir / "field-keys")
            field_keys.start()
            kid = field_keys.rotate()
            print(f"field key {kid} is now current for new writes; older values keep decrypting with their key ids")
            return 0
        for info in await signing.public.all(signing.current_kid, *[k for k in [signing.current_sm2_kid] if k]):
            print(f"{info.kid}  {info.alg:7}  created {info.created_at}{'  (current)' if info.current else ''}")
        return 0
    finally:
        await store.close()


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("takan: the two passwords differ; nothing was changed")
    return first


async def account(config: Config, args: argparse.Namespace) -> int:
    from errors import TakanError
    from identity.accounts import Accounts

    from .app import make_object_store

    store = make_object_store(config)
    await store.start()
    accounts = Accounts(store)
    await accounts.start()
    try:
        if args.account_verb == "create":
            created, uri = await accounts.create(
                args.user_id, args.name, [r.strip() for r in args.roles.split(",") if r.strip()], _read_password(args)
            )
            print(f"account {created.user_id} ({', '.join(sorted(created.roles))}) created; the password must be changed at first login")
            print("enrol this in the owner's authenticator app (shown once):")
            print(f"  {uri}")
        elif args.account_verb == "list":
            for item in await accounts.list():
                state = "enabled" if item.enabled else "disabled"
                print(f"{item.user_id:24} {state:9} {','.join(sorted(item.roles)):30} {item.real_name}")
        elif args.account_verb == "reset-password":
            new_uri = await accounts.reset_password(args.user_id, _read_password(args), new_totp=args.new_totp)
            print(f"password of {args.user_id} reset; it must be changed at next login")
            if new_uri:
                print(f"  new TOTP enrolment (shown once): {new_uri}")
        else:
            await getattr(accounts, args.account_verb)(args.user_id)
            print(f"account {args.user_id}: {args.account_verb}d")
        return 0
    except TakanError as exc:
        print(f"takan: {exc.detail}", file=sys.stderr)
        for error in exc.errors:
            if error["message"] not in exc.detail:
                print(f"  {error['field']}: {error['message']}", file=sys.stderr)
        return 1
    finally:
        await accounts.close()
        await store.close()


async def retention_report(config: Config, args: argparse.Namespace) -> int:
    import datetime
    from pathlib import Path

    from approval.inspections import InspectionBook
    from approval.templates import Templates
    from archive.retention import RetentionPolicy
    from privacy.fieldcrypto import FieldCipher, FieldKeys

    from .app import make_object_store

    policy = RetentionPolicy.load(Path(args.policy)) if args.policy else RetentionPolicy.defaults()
    store = make_object_store(config)
    await store.start()
    try:
        keys = FieldKeys(config.data_dir / "field-keys")
        keys.start()
        book = InspectionBook(store, Templates(), FieldCipher(keys))
        await book.start()
        # retention needs only each record's id, item, status and dates: its summary
        due = policy.due_for_disposal([summary.as_json() for summary in book.summaries()], datetime.date.today())
        await book.close()
        print(f"{len(due)} inspection(s) past their retention period (report only; nothing is deleted)")
        for item in due:
            print(f"  {item.inspection_id}  {item.case_no}  {item.item_code}  closed {item.closed_on}")
        return 0
    finally:
        await store.close()


async def calendar_verb(config: Config, args: argparse.Namespace) -> int:
    """``takan calendar import FILE | show YEAR [--json] | list``."""
    import datetime
    import json
    from pathlib import Path

    from approval.calendar_file import CalendarFileError, parse_arrangement
    from errors import NotFound
    from approval.workdays import WorkingCalendar

    from .app import make_object_store

    store = make_object_store(config)
    await store.start()
    try:
        calendar = WorkingCalendar(store)
        await calendar.start()
        if args.calendar_verb == "import":
            path = Path(args.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"takan: cannot read {path}: {exc.strerror}", file=sys.stderr)
                return 1
            try:
                arrangement = parse_arrangement(data, name=str(path))
            except CalendarFileError as exc:
                print(f"takan: {path}: {len(exc.errors)} problem(s); nothing was loaded", file=sys.stderr)
                for error in exc.errors:
                    print(f"  {error['field']}: {error['message']}", file=sys.stderr)
                return 1
            stored, previous = await calendar.import_year(arrangement, args.imported_by or _login_name())
            days_off = len(arrangement.days_off())
            print(
                f"calendar {stored.year} imported as version {stored.version}"
                + (f" (replaces version {previous.version}, which is kept)" if previous else "")
                + f": {len(arrangement.holidays)} holidays ({days_off} days off), "
                f"{len(arrangement.makeup_working_days)} make-up working days; source: {arrangement.source}"
            )
            print("running servers pick it up within a minute")
            return 0
        if args.calendar_verb == "list":
            for entry in calendar.years():
                detail = (
                    f"imported version {entry.stored.version} {entry.stored.imported_at} by {entry.stored.imported_by}"
                    if entry.stored
                    else "package"
                )
                print(f"{entry.year}  {detail:60}  {entry.source}")
            warning = calendar.warning()
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            return 0
        try:
            arrangement = calendar.arrangement(args.year)
        except NotFound as exc:
            print(f"takan: {exc.detail}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(arrangement.as_json(), ensure_ascii=False, indent=2))
            return 0
        source = calendar.source_of(args.year)
        assert source is not None
        if source.stored is not None:
            print(f"{args.year}: imported version {source.stored.version} ({source.stored.imported_at}, by {source.stored.imported_by})")
        else:
            print(f"{args.year}: from the package {source.source}")
        print(f"  source: {arrangement.source}")
        for name in ("published_on", "url", "notes"):
            value = getattr(arrangement, name)
            if value is not None:
                print(f"  {name}: {value}")
        print("  holidays (days off):")
        for holiday in arrangement.holidays:
            span = holiday.start.isoformat() if holiday.start == holiday.end else f"{holiday.start} to {holiday.end}"
            print(f"    {span:26} {len(holiday.days())} day(s)  {holiday.name}")
        print("  make-up working days (调休上班):" + ("" if arrangement.makeup_working_days else " none"))
        for day in arrangement.makeup_working_days:
            print(f"    {day.date} {day.date.strftime('%A'):9}  {day.name or ''}".rstrip())
        first = datetime.date(args.year, 1, 1)
        days = (datetime.date(args.year + 1, 1, 1) - first).days
        working = sum(calendar.is_working_day(first + datetime.timedelta(days=i)) for i in range(days))
        print(f"  {working} working days in {args.year}")
        for stored in await calendar.history(args.year):
            marker = "  (in force)" if source.stored and stored.version == source.stored.version else ""
            print(f"  version {stored.version}: {stored.imported_at} by {stored.imported_by}: {stored.arrangement.source}{marker}")
        return 0
    finally:
        await store.close()


def _login_name() -> str:
    """``cli:<login>`` naming who ran a command (``cli`` if the login cannot be told)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
