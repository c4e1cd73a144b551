"""RFC 6238 TOTP: the appendix B vectors, verification windows, replay refusal, URIs."""

from __future__ import annotations

import base64
import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from identity import totp

# RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "code"), RFC_SHA1_VECTORS)
def test_rfc6238_appendix_b_sha1(unix_time: int, code: str) -> None:
    assert totp.code_at(RFC_SECRET, totp.step_at(unix_time), digits=8) == code
    # Six digits are the last six of the same truncated value.
    assert totp.code_at(RFC_SECRET, totp.step_at(unix_time)) == code[-6:]
    assert totp.verify(RFC_SECRET, code[-6:], unix_time) == totp.step_at(unix_time)


def test_rfc4226_appendix_d_hotp() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    assert [totp.hotp(b"12345678901234567890", i) for i in range(10)] == expected


def test_datetime_and_unix_time_agree() -> None:
    at = datetime.datetime.fromtimestamp(1111111109, datetime.timezone.utc)
    assert totp.step_at(at) == totp.step_at(1111111109) == 37037036
    with pytest.raises(ValueError, match="aware"):
        totp.step_at(datetime.datetime(2026, 1, 1))


def test_new_secret_is_160_bits_of_base32() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32 and secret.isupper()
    assert len(base64.b32decode(secret)) == 20
    assert totp.new_secret() != secret


def test_window_allows_one_step_of_drift_either_way() -> None:
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = totp.step_at(now)
    for offset in (-1, 0, 1):
        assert totp.verify(secret, totp.code_at(secret, step + offset), now) == step + offset
    for offset in (-2, 2):
        assert totp.verify(secret, totp.code_at(secret, step + offset), now) is None
    assert totp.verify(secret, totp.code_at(secret, step + 2), now, window=2) == step + 2
    assert totp.verify(secret, totp.code_at(secret, step + 1), now, window=0) is None


def test_a_code_at_or_before_the_last_accepted_step_is_refused() -> None:
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = totp.step_at(now)
    code = totp.code_at(secret, step)
    accepted = totp.verify(secret, code, now)
    assert accepted == step
    assert totp.verify(secret, code, now, after_step=accepted) is None  # replay
    earlier = totp.code_at(secret, step - 1)
    assert totp.verify(secret, earlier, now, after_step=accepted) is None  # older code
    later = totp.code_at(secret, step + 1)
    assert totp.verify(secret, later, now, after_step=accepted) == step + 1


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12345a", "１２３４５６", "-12345"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert totp.verify(RFC_SECRET, bad, 59) is None


def test_spaces_in_code_are_ignored() -> None:
    code = totp.code_at(RFC_SECRET, totp.step_at(59))
    assert totp.verify(RFC_SECRET, f" {code[:3]} {code[3:]} ", 59) == 1


def test_provisioning_uri() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "zhang.san", issuer="Takan 踏勘")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert parts.path == "/Takan%20%E8%B8%8F%E5%8B%98:zhang.san"
    query = parse_qs(parts.query)
    assert query == {
        "secret": [secret],
        "issuer": ["Takan 踏勘"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
    with pytest.raises(ValueError, match="base32"):
        totp.provisioning_uri("not base32!", "zhang.san")
