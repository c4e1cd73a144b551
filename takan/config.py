"""Configuration: command-line flags over ``TAKAN_*`` environment variables over defaults.

Everything is validated once, at start, into a frozen :class:`Config`; a bad value stops
the server with a message that names the flag or variable and says what is expected.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

from evidence.tsa_token import TsaTrust
from media.ice import IceServer


class ConfigError(ValueError):
    """A setting is missing or invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    secure: bool
    region: Optional[str]


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 8080
    data_dir: Path = Path("data")
    public_url: Optional[str] = None
    api_key: Optional[str] = None
    webhook_secret: Optional[str] = None
    link_secret: Optional[str] = None
    redis_url: Optional[str] = None
    s3: Optional[S3Settings] = None
    tls: str = "off"  # off | self-signed | files
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    ice_servers: tuple[IceServer, ...] = field(default_factory=tuple)
    ice_loopback: bool = False
    link_ttl_hours: float = 72.0
    session_limit_s: Optional[float] = None
    #: An open inspection with nobody in it this long ends as abandoned (session/sweeper.py).
    abandon_after_s: float = 600.0
    #: required: an inspector link needs the assigned inspector's staff login (issue 11);
    #: link: the link alone admits (deployments without staff accounts, older tests).
    inspector_login: str = "required"
    #: An HTTP SMS gateway for invites and one-time codes (session/sms.py); None: the log.
    sms_gateway_url: Optional[str] = None
    sms_gateway_secret: Optional[str] = None
    sms_timeout_s: float = 5.0
    webhook_allowed_hosts: Optional[tuple[str, ...]] = None
    turn_secret: Optional[str] = None
    turn_ttl_s: int = 4 * 3600
    api_rate_per_minute: int = 1200
    applicant_otp: bool = False
    #: Every manifest must carry a valid SM2 signature beside Ed25519 (GB/T 39786 deployments).
    require_sm2: bool = False
    oidc_issuer: Optional[str] = None
    oidc_client_id: Optional[str] = None
    oidc_client_secret: Optional[str] = None
    node_id: str = "node-1"
    #: Where browsers reach this node itself, bypassing the load balancer (docs/nodes.md).
    node_url: Optional[str] = None
    tsa_urls: tuple[str, ...] = ()  # RFC 3161 TSAs, tried in order
    tsa_timeout_s: float = 10.0
    #: PEM bundle of the CA certificates trusted to vouch for TSAs; None: timestamps are
    #: checked for integrity but reported as not trusted.
    tsa_ca_file: Optional[Path] = None
    log_level: str = "INFO"
    log_format: str = "text"
    templates_dir: Optional[Path] = None
    rules_dir: Optional[Path] = None

    @property
    def scheme(self) -> str:
        return "http" if self.tls == "off" else "https"

    @property
    def base_url(self) -> str:
        """Where browsers reach this server (links, QR codes)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def node_base_url(self) -> str:
        """Where browsers reach this node (the room's pages move here, docs/nodes.md)."""
        return self.node_url.rstrip("/") if self.node_url else self.base_url


# (setting, env var, parser); flags use the same names with dashes.
def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")


def _port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a port number (1-65535)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={value!r} is not a port number (1-65535)")
    return port


def _positive(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number <= 0:
        raise ConfigError(f"{name}={value!r} must be greater than 0")
    return number


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(value: str, name: str) -> str:
        if value.strip().lower() not in choices:
            raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
        return value.strip().lower()

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(value: str, name: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(f"{name}={value!r} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def _ice_urls(value: str, name: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        if not re.match(r"^(stun|stuns|turn|turns):[^\s]+$", url):
            raise ConfigError(f"{name}: {url!r} is not a stun:, stuns:, turn: or turns: URL")
    return urls


def load_config(flags: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> Config:
    """Merge flags (already parsed by argparse; ``None`` = not given) over the environment."""

    def pick(name: str) -> tuple[Optional[str], str]:
        flag = flags.get(name)
        if flag is not None:
            return str(flag), "--" + name.replace("_", "-")
        var = "TAKAN_" + name.upper()
        return env.get(var), var

    values: dict[str, Any] = {}
    for name, parser in (
        ("host", None),
        ("port", _port),
        ("public_url", _url(("http", "https"))),
        ("node_url", _url(("http", "https"))),
        ("api_key", None),
        ("webhook_secret", None),
        ("link_secret", None),
        ("redis_url", _url(("redis", "rediss", "unix"))),
        ("ice_loopback", _bool),
        ("link_ttl_hours", _positive),
        ("session_limit_s", _positive),
        ("abandon_after_s", _positive),
        ("inspector_login", _choice("required", "link")),
        ("sms_gateway_url", _url(("http", "https"))),
        ("sms_gateway_secret", None),
        ("sms_timeout_s", _positive),
        ("applicant_otp", _bool),
        ("require_sm2", _bool),
        ("node_id", None),
        ("log_level", None),
        ("log_format", None),
    ):
        raw, source = pick(name)
        if raw is None or raw == "":
            continue
        values[name] = parser(raw, source) if parser else raw

    raw, source = pick("data_dir")
    if raw:
        values["data_dir"] = Path(raw).expanduser()
    for name in ("templates_dir", "rules_dir"):
        raw, source = pick(name)
        if raw:
            path = Path(raw).expanduser()
            if not path.is_dir():
                raise ConfigError(f"{source}={raw!r} is not a directory")
            values[name] = path

    if "api_key" in values and len(values["api_key"]) < 16:
        raise ConfigError("TAKAN_API_KEY must be at least 16 characters (use a random string)")
    if "sms_gateway_url" in values and len(values.get("sms_gateway_secret", "")) < 16:
        raise ConfigError("TAKAN_SMS_GATEWAY_URL needs TAKAN_SMS_GATEWAY_SECRET (at least 16 characters) to sign its messages")
    if "link_secret" in values and len(values["link_secret"]) < 32:
        raise ConfigError("TAKAN_LINK_SECRET must be at least 32 characters")
    level = str(values.get("log_level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log level {level!r} must be DEBUG, INFO, WARNING or ERROR")
    values["log_level"] = level
    if values.get("log_format", "text") not in ("text", "json"):
        raise ConfigError(f"log format {values['log_format']!r} must be text or json")
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", str(values.get("node_id", "node-1"))):
        raise ConfigError("TAKAN_NODE_ID may hold only letters, digits and _ . -")

    rate, source = pick("api_rate_per_minute")
    if rate:
        values["api_rate_per_minute"] = int(_positive(rate, source))
    issuer, source = pick("oidc_issuer")
    if issuer:
        client_id, _ = pick("oidc_client_id")
        client_secret, _ = pick("oidc_client_secret")
        if not client_id or not client_secret:
            raise ConfigError("OIDC needs TAKAN_OIDC_CLIENT_ID and TAKAN_OIDC_CLIENT_SECRET with TAKAN_OIDC_ISSUER")
        values.update(oidc_issuer=_url(("https", "http"))(issuer, source), oidc_client_id=client_id, oidc_client_secret=client_secret)
    turn_secret, _ = pick("turn_secret")
    if turn_secret:
        values["turn_secret"] = turn_secret
    tsa, source = pick("tsa_urls")
    if tsa:
        values["tsa_urls"] = tuple(_url(("http", "https"))(u.strip(), source) for u in tsa.split(",") if u.strip())
    ca_file, source = pick("tsa_ca_file")
    if ca_file:
        values["tsa_ca_file"] = _tsa_ca_file(ca_file, "--tsa-ca" if source.startswith("--") else source)
    hosts, _ = pick("webhook_allowed_hosts")
    if hosts:
        values["webhook_allowed_hosts"] = tuple(h.strip().lower() for h in hosts.split(",") if h.strip())

    values.update(_tls(pick))
    values["ice_servers"] = _ice(pick, env)
    s3 = _s3(pick)
    if s3 is not None:
        values["s3"] = s3
    return Config(**values)


def _tsa_ca_file(raw: str, source: str) -> Path:
    path = Path(raw).expanduser()
    try:
        TsaTrust.from_pem_file(path)  # read once here so that a bad bundle stops the start
    except ValueError as exc:
        raise ConfigError(f"{source}={raw!r}: {exc}; give a PEM file of the TSA's CA certificate(s)") from None
    return path


def tsa_trust(config: Config) -> Optional[TsaTrust]:
    """The configured TSA trust anchors (``TAKAN_TSA_CA_FILE``), or None."""
    return TsaTrust.from_pem_file(config.tsa_ca_file) if config.tsa_ca_file else None


def _tls(pick: Callable[[str], tuple[Optional[str], str]]) -> dict[str, Any]:
    mode, source = pick("tls")
    cert, cert_source = pick("tls_cert")
    key, key_source = pick("tls_key")
    mode = (mode or ("files" if cert or key else "off")).lower()
    if mode not in ("off", "self-signed", "files"):
        raise ConfigError(f"{source}={mode!r} must be off, self-signed or files")
    if mode != "files":
        return {"tls": mode}
    if not cert or not key:
        raise ConfigError("TLS with files needs both --tls-cert and --tls-key (TAKAN_TLS_CERT, TAKAN_TLS_KEY)")
    for path, src in ((cert, cert_source), (key, key_source)):
        if not Path(path).is_file():
            raise ConfigError(f"{src}={path!r} does not exist or is not a file")
    return {"tls": "files", "tls_cert": Path(cert), "tls_key": Path(key)}


def _ice(pick: Callable[[str], tuple[Optional[str], str]], env: Mapping[str, str]) -> tuple[IceServer, ...]:
    servers: list[IceServer] = []
    raw_json = env.get("TAKAN_ICE_SERVERS")
    if raw_json:
        try:
            entries = json.loads(raw_json)
            for entry in entries:
                urls = entry["urls"]
                urls = (urls,) if isinstance(urls, str) else tuple(urls)
                servers.append(IceServer(_ice_urls(",".join(urls), "TAKAN_ICE_SERVERS"), entry.get("username"), entry.get("credential")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                'TAKAN_ICE_SERVERS must be a JSON list like [{"urls": ["turn:host:3478"], '
                f'"username": "u", "credential": "p"}}]: {exc}'
            ) from None
    stun, source = pick("stun_urls")
    if stun:
        servers.append(IceServer(_ice_urls(stun, source)))
    turn, source = pick("turn_urls")
    if turn:
        user, _ = pick("turn_username")
        credential, _ = pick("turn_credential")
        secret, _ = pick("turn_secret")
        if secret:
            servers.append(IceServer(_ice_urls(turn, source)))  # credentials minted per participant
        elif not user or not credential:
            raise ConfigError(
                "TURN needs TAKAN_TURN_SECRET (coturn use-auth-secret, short-lived logins) "
                "or TAKAN_TURN_USERNAME and TAKAN_TURN_CREDENTIAL"
            )
        else:
            servers.append(IceServer(_ice_urls(turn, source), user, credential))
    return tuple(servers)


def _s3(pick: Callable[[str], tuple[Optional[str], str]]) -> Optional[S3Settings]:
    endpoint, _ = pick("s3_endpoint")
    if not endpoint:
        return None
    access, _ = pick("s3_access_key")
    secret, _ = pick("s3_secret_key")
    if not access or not secret:
        raise ConfigError("S3 needs TAKAN_S3_ACCESS_KEY and TAKAN_S3_SECRET_KEY with TAKAN_S3_ENDPOINT")
    bucket, bucket_source = pick("s3_bucket")
    bucket = bucket or "takan"
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
        raise ConfigError(f"{bucket_source}={bucket!r} is not a valid bucket name")
    secure_raw, secure_source = pick("s3_secure")
    region, _ = pick("s3_region")
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        secure_default = parts.scheme == "https"
        endpoint = parts.netloc
    else:
        secure_default = False
    return S3Settings(
        endpoint=endpoint,
        access_key=access,
        secret_key=secret,
        bucket=bucket,
        secure=_bool(secure_raw, secure_source) if secure_raw else secure_default,
        region=region or None,
    )
