"""`takan` as users run it: serve (plain and TLS), config errors, keys."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from testkit.server import free_port

TAKAN = [sys.executable, "-m", "takan"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")}
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(TAKAN + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_healthy(url: str, context: ssl.SSLContext | None = None, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", context=context, timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> tuple[str, str]:
    process.terminate()
    out, err = process.communicate(timeout=20)
    return out, err


def test_serve_prints_urls_and_a_bootstrap_key(tmp_path) -> None:
    port = free_port()
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)], clean_env())
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}")["status"] == "ok"
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    token = next(line.split("Bearer ", 1)[1] for line in out.splitlines() if "Bearer " in line)
    # the key works
    port = free_port()
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)], clean_env())
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/inspections", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200
    finally:
        out, _ = stop(process)
    assert "Bearer" not in out  # shown once only


def test_serve_with_self_signed_tls(tmp_path) -> None:
    port = free_port()
    env = clean_env(TAKAN_API_KEY="k" * 20, TAKAN_TLS="self-signed")
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)], env)
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "self-signed.crt")) if False else ssl._create_unverified_context()
        assert wait_healthy(f"https://127.0.0.1:{port}", context)["status"] == "ok"
        # the generated certificate names localhost and 127.0.0.1
        strict = ssl.create_default_context(cafile=str(tmp_path / "tls" / "self-signed.crt"))
        with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=strict, timeout=5) as r:
            assert r.status == 200
    finally:
        stop(process)


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--port", "abc"], {}, "--port='abc' is not a port number"),
        ([], {"TAKAN_PORT": "70000"}, "TAKAN_PORT='70000' is not a port number"),
        ([], {"TAKAN_API_KEY": "short"}, "TAKAN_API_KEY must be at least 16 characters"),
        ([], {"TAKAN_REDIS_URL": "http://x"}, "TAKAN_REDIS_URL='http://x' must be a URL starting with redis://"),
        ([], {"TAKAN_TLS": "maybe"}, "TAKAN_TLS='maybe' must be off, self-signed or files"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], {}, "does not exist"),
        ([], {"TAKAN_TURN_URLS": "turn:x:3478"}, "TURN needs TAKAN_TURN_SECRET"),
        ([], {"TAKAN_STUN_URLS": "http://x"}, "is not a stun:"),
        ([], {"TAKAN_ICE_SERVERS": "[{]"}, "TAKAN_ICE_SERVERS must be a JSON list"),
        ([], {"TAKAN_S3_ENDPOINT": "minio:9000"}, "S3 needs TAKAN_S3_ACCESS_KEY"),
        ([], {"TAKAN_ICE_LOOPBACK": "perhaps"}, "is not a boolean"),
        ([], {"TAKAN_LOG_LEVEL": "LOUD"}, "must be DEBUG, INFO, WARNING or ERROR"),
        (["--tsa-ca", "/nonexistent.pem"], {}, "--tsa-ca='/nonexistent.pem': cannot read"),
        ([], {"TAKAN_TSA_CA_FILE": "/etc/passwd"}, "TAKAN_TSA_CA_FILE='/etc/passwd': /etc/passwd is not a PEM bundle of certificates"),
    ],
)
def test_bad_configuration_is_named(tmp_path, args, env, message) -> None:
    result = subprocess.run(TAKAN + ["serve", "--data-dir", str(tmp_path)] + args, env=clean_env(**env), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_explained(tmp_path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(TAKAN + ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)],
                                env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_apikey_create_and_keys_rotate(tmp_path) -> None:
    created = subprocess.run(TAKAN + ["apikey", "--data-dir", str(tmp_path), "create", "--name", "approval-core"], env=clean_env(), capture_output=True, text=True, timeout=30)
    assert created.returncode == 0 and "Bearer tk_" in created.stdout
    first = subprocess.run(TAKAN + ["keys", "--data-dir", str(tmp_path), "list"], env=clean_env(), capture_output=True, text=True, timeout=30)
    rotated = subprocess.run(TAKAN + ["keys", "--data-dir", str(tmp_path), "rotate"], env=clean_env(), capture_output=True, text=True, timeout=30)
    assert rotated.returncode == 0 and rotated.stdout.count("created") == 4 and rotated.stdout.count("(current)") == 2  # Ed25519 and SM2, twice each
    assert rotated.stdout.count("SM2") == 3
    assert first.stdout.split()[0] in rotated.stdout
    bad = subprocess.run(TAKAN + ["apikey", "--data-dir", str(tmp_path), "revoke", "nope"], env=clean_env(), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "no API key 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_storage_flags_follow_the_action_too(tmp_path) -> None:
    """As the README writes it, `takan apikey create --name N --data-dir D`, as well as
    before the action; `keys list` likewise."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(TAKAN + list(args), env=clean_env(), capture_output=True, text=True, timeout=30)

    created = run("apikey", "create", "--name", "after", "--data-dir", str(tmp_path))
    assert created.returncode == 0 and "Bearer tk_" in created.stdout, created.stderr
    listed = run("apikey", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0 and "after" in listed.stdout, listed.stderr
    assert "after" in run("apikey", "--data-dir", str(tmp_path), "list").stdout
    key_id = listed.stdout.split()[0]
    revoked = run("apikey", "revoke", key_id, "--data-dir", str(tmp_path))
    assert revoked.returncode == 0, revoked.stderr
    keys = run("keys", "list", "--data-dir", str(tmp_path))
    assert keys.returncode == 0 and "(current)" in keys.stdout, keys.stderr
    assert (tmp_path / "keys").is_dir()  # the data dir named after the action was the one used


def test_first_admin_is_created_by_the_cli_and_can_log_in(tmp_path) -> None:
    import urllib.parse

    from identity.totp import code_at, step_at

    base = TAKAN + ["account", "--data-dir", str(tmp_path)]
    weak = subprocess.run(base + ["create", "--user-id", "admin.li", "--name", "李管理", "--roles", "admin", "--password-stdin"],
                          input="password\n", env=clean_env(), capture_output=True, text=True, timeout=60)
    assert weak.returncode == 1 and "Traceback" not in weak.stderr
    assert "takan: the password does not meet the rules" in weak.stderr
    made = subprocess.run(base + ["create", "--user-id", "admin.li", "--name", "李管理", "--roles", "admin", "--password-stdin"],
                          input="Correct-Horse-42-Battery!\n", env=clean_env(), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    uri = next(line.strip() for line in made.stdout.splitlines() if "otpauth://" in line)
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    listed = subprocess.run(base + ["list"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert "admin.li" in listed.stdout and "enabled" in listed.stdout

    port = free_port()
    process = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)], clean_env(TAKAN_API_KEY="k" * 20))
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        body = json.dumps({"user_id": "admin.li", "password": "Correct-Horse-42-Battery!", "totp": code_at(secret, step_at(time.time()))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            cookie = r.headers["Set-Cookie"]
            assert "takan_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        token = cookie.split("takan_session=", 1)[1].split(";", 1)[0]
        me = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/me", headers={"Authorization": f"Session {token}"})
        with urllib.request.urlopen(me, timeout=10) as r:
            assert json.loads(r.read())["user"]["user_id"] == "admin.li"
        # the first password must be changed before anything else
        listing = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/admin/accounts", headers={"Authorization": f"Session {token}"})
        try:
            urllib.request.urlopen(listing, timeout=10)
            raise AssertionError("an unchanged first password opened the admin API")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403 and "change your password first" in exc.read().decode()
    finally:
        stop(process)


def test_field_key_rotation_keeps_old_records_readable_and_retention_reports(tmp_path) -> None:
    import asyncio

    import aiohttp

    from testkit.server import create_inspection, running_server

    async def create() -> str:
        async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
            return (await create_inspection(server, http))["id"]

    async def read(inspection_id: str) -> dict:
        async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
            async with http.get(f"{server.base_url}/api/v1/inspections/{inspection_id}", headers=server.headers()) as r:
                return await r.json()

    first = asyncio.run(create())
    rotated = subprocess.run(TAKAN + ["keys", "--data-dir", str(tmp_path), "rotate-fields"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0 and "is now current" in rotated.stdout
    assert asyncio.run(read(first))["applicant"]["id_number"] == "91350100M000100Y43"
    report = subprocess.run(TAKAN + ["retention", "--data-dir", str(tmp_path)], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and "past their retention period" in report.stdout


def test_a_key_issued_or_revoked_by_the_cli_counts_on_a_running_server_within_seconds(tmp_path) -> None:
    """The contract: keys are revocable, and a key without the permission a call needs is a 403.
    The server reads the keys again every few seconds (approval/apikeys.py REFRESH_S)."""
    import asyncio
    import re

    import aiohttp

    from approval.apikeys import REFRESH_S
    from testkit.server import running_server

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(TAKAN + ["apikey", "--data-dir", str(tmp_path / "data"), *args], env=clean_env(), capture_output=True, text=True, timeout=60)

    async def until(http: aiohttp.ClientSession, url: str, token: str, status: int) -> float:
        started = time.monotonic()
        while True:
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                if r.status == status:
                    assert r.content_type == "application/problem+json" or status == 200
                    return time.monotonic() - started
            assert time.monotonic() - started < 3 * REFRESH_S, f"still not {status}"
            await asyncio.sleep(0.25)

    async def scenario() -> None:
        async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
            created = cli("create", "--name", "reader", "--permissions", "query")
            assert created.returncode == 0, created.stderr
            token = re.search(r"Bearer (\S+)", created.stdout).group(1)  # type: ignore[union-attr]
            key_id = created.stdout.split()[2]
            listing = server.base_url + "/api/v1/inspections"
            await until(http, listing, token, 200)
            async with http.post(listing, json={}, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 403 and "entry" in (await r.json())["detail"]
            revoked = cli("revoke", key_id)
            assert revoked.returncode == 0, revoked.stderr
            assert await until(http, listing, token, 401) <= 2 * REFRESH_S
            async with http.get(listing, headers={"Authorization": "Bearer t\u00e9st"}) as r:
                assert r.status == 401

    asyncio.run(scenario())
    bad = cli("create", "--name", "x", "--permissions", "query,sudo")
    assert bad.returncode == 2 and "unknown permission(s) sudo" in bad.stderr
