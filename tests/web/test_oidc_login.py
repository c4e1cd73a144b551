"""Staff login through an OpenID Connect provider (5.4), against a fake provider on loopback."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp

import tests.identity.test_oidc as fake
from testkit.server import running_server

STRONG = "Correct-Horse-42-Battery!"


async def test_oidc_login_opens_a_staff_session(tmp_path, monkeypatch) -> None:
    idp = fake.FakeProvider()
    await idp.start()
    try:
        settings = {"oidc_issuer": idp.issuer, "oidc_client_id": fake.CLIENT_ID, "oidc_client_secret": fake.CLIENT_SECRET}
        async with running_server(tmp_path / "d", **settings) as server, aiohttp.ClientSession() as http:
            monkeypatch.setattr(fake, "REDIRECT_URI", server.base_url + "/api/v1/auth/oidc/callback")
            await server.services.accounts.create("auditor.wang", "王审计", ["auditor"], STRONG, oidc_subject="gov-user-42")

            async def login(subject: str) -> aiohttp.ClientResponse:
                async with http.get(server.base_url + "/api/v1/auth/oidc/start?next=/audit", allow_redirects=False) as r:
                    assert r.status == 302
                    query = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()}
                assert query["redirect_uri"] == server.base_url + "/api/v1/auth/oidc/callback" and query["code_challenge_method"] == "S256"
                idp.grant("code-" + subject, query["nonce"], sub=subject)
                return await http.get(
                    f"{server.base_url}/api/v1/auth/oidc/callback?code=code-{subject}&state={query['state']}", allow_redirects=False
                )

            response = await login("gov-user-42")
            assert response.status == 302 and response.headers["Location"] == "/audit"
            token = response.cookies["takan_session"].value
            async with http.get(server.base_url + "/api/v1/auth/me", headers={"Authorization": f"Session {token}"}) as r:
                assert (await r.json())["user"]["user_id"] == "auditor.wang"
            # a person the provider knows but no admin bound to an account gets no session
            refused = await login("gov-user-99")
            assert refused.status == 403 and "takan_session" not in refused.cookies
            # a replayed or forged state is refused
            async with http.get(server.base_url + "/api/v1/auth/oidc/callback?code=x&state=forged", allow_redirects=False) as r:
                assert r.status == 400
    finally:
        await idp.stop()
