"""The browser pages (web_client/static): strings, roles, recovery, camera switch, error views.

tests/e2e covers the happy path (two pages decode each other, reload, end); these drive the
parts of the pages themselves through the window.takan hook and the DOM.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from testkit.browser import CHROMIUM, CHROMIUM_ARGS, artifact, chromium_available
from testkit.server import create_inspection, running_server
from tests.web_client.catalogues import keys, page_scripts

STATIC = Path(__file__).resolve().parents[2] / "web_client" / "static"



def browser_test(fn):
    """Marks a test that drives real Chromium (skipped where it is not installed)."""
    fn = pytest.mark.browser(fn)
    return pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed")(fn)


STATS = "async () => await window.takan.stats()"
JOINED = "window.takan.state.joined && window.takan.session.pcState === 'connected'"


# ---- strings (no browser) ----------------------------------------------------------------


def _tables() -> tuple[set[str], set[str]]:
    return keys("zh"), keys("en")


def test_chinese_and_english_tables_have_the_same_keys() -> None:
    zh, en = _tables()
    assert zh, "no strings found in static/i18n/zh.json"
    assert sorted(zh - en) == [], "missing in en"
    assert sorted(en - zh) == [], "missing in zh"


def test_every_string_the_pages_use_is_in_the_table() -> None:
    zh, _ = _tables()
    used: set[str] = set()
    for html in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-title|-aria)?="([\w.]+)"', html.read_text(encoding="utf-8")))
        used |= set(re.findall(r'data-title-key="([\w.]+)"', html.read_text(encoding="utf-8")))
    prefixes = "app|lang|role|status|conn|info|conninfo|participants|ctl|end|stage|remote|local|line|join|warn|btn|err|final"
    literal = re.compile(rf'"((?:{prefixes})\.[A-Za-z_]+(?:\.[A-Za-z_]+)?)"')
    for js in page_scripts():
        used |= set(literal.findall(js.read_text(encoding="utf-8")))
    # keys built at run time from protocol values
    codes = ["token_invalid", "token_expired", "inspection_unknown", "inspection_cancelled", "inspection_ended", "rate_limited"]
    used |= {f"err.{c}.{part}" for c in codes + ["no_token", "join_failed", "unknown"] for part in ("title", "body")}
    used |= {f"err.media_{k}.{part}" for k in ("denied", "notfound", "inuse", "insecure", "other") for part in ("title", "body")}
    used |= {f"status.{s}" for s in ("scheduled", "live", "ended", "cancelled", "unknown")}
    used |= {f"conn.{s}" for s in ("new", "connecting", "connected", "disconnected", "failed", "closed", "none")}
    used |= {f"final.{k}.{part}" for k in ("ended", "cancelled", "kicked") for part in ("title", "body")}
    used |= {f"role.{r}" for r in ("inspector", "applicant", "observer")}
    assert sorted(used - zh) == []


# ---- browser helpers ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def browser(extra_args: tuple[str, ...] = ()) -> AsyncIterator[object]:
    """Chromium with three fake cameras (the second one is Y16, which no encoder takes)."""
    from playwright.async_api import async_playwright

    args = [a for a in CHROMIUM_ARGS if not a.startswith("--use-fake-device-for-media-stream")]
    args += ["--use-fake-device-for-media-stream=device-count=3", *extra_args]
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield b
        finally:
            await b.close()


async def until(page, expression: str, timeout_s: float = 25.0) -> None:
    """Poll a JS expression (may be async) until it is truthy.

    An expression that throws counts as not yet true: a page's modules start once its
    string catalogues have loaded, so ``window.takan`` may not exist on the first polls;
    so does a poll cut short by a navigation.
    """
    from playwright.async_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await page.evaluate(f"async () => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }}"):
                return
        except PlaywrightError as exc:
            # the page navigated while being asked (it moved to its room's node): not yet
            if "Execution context was destroyed" not in str(exc):
                raise
        await asyncio.sleep(0.2)
    state = await page.evaluate("() => JSON.stringify(window.takan && [window.takan.state, window.takan.session.pcState])")
    raise AssertionError(f"not true after {timeout_s}s: {expression}; state {state}")


async def decoding(page, timeout_s: float = 25.0) -> None:
    """Wait until new video frames are being decoded right now."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = (await page.evaluate(STATS))["videoFramesDecoded"]
        await asyncio.sleep(0.6)
        if (await page.evaluate(STATS))["videoFramesDecoded"] > before:
            return
    raise AssertionError(f"no video decoded for {timeout_s}s: {await page.evaluate(STATS)}")


async def sending(page, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = (await page.evaluate(STATS))["videoFramesSent"]
        await asyncio.sleep(0.6)
        if (await page.evaluate(STATS))["videoFramesSent"] > before:
            return
    raise AssertionError(f"no video sent for {timeout_s}s: {await page.evaluate(STATS)}")


async def open_page(b, url: str, mobile: bool = False, init_script: str | None = None):
    if mobile:
        ctx = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    else:
        ctx = await b.new_context(viewport={"width": 1366, "height": 768})
    if init_script:
        await ctx.add_init_script(init_script)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


def with_lang(url: str, lang: str) -> str:
    path, _, fragment = url.partition("#")
    return f"{path}?lang={lang}#{fragment}"


# ---- browser tests -----------------------------------------------------------------------


@browser_test
async def test_roles_languages_and_media_flags(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            inspector = await open_page(b, with_lang(created["inspector_url"], "en"))
            applicant = await open_page(b, created["applicant_url"], mobile=True)
            observer = await open_page(b, created["observer_url"])
            for page in (inspector, applicant, observer):
                await until(page, JOINED)
            await decoding(inspector)
            await decoding(observer)

            # the hook: state, events, stats
            state = await inspector.evaluate("() => window.takan.state")
            assert state == {"socket": "connected", "peer": "connected", "status": "live", "role": "inspector", "joined": True, "error": None}
            names = await inspector.evaluate("() => window.takan.events.map(e => e.name)")
            assert "presence" in names and "status" in names and "peer" in names
            stats = await observer.evaluate(STATS)
            assert set(stats) == {"videoFramesDecoded", "audioPacketsReceived", "videoFramesSent", "connectionState"}
            assert stats["videoFramesSent"] == 0 and stats["connectionState"] == "connected"

            # ?lang=en on the console, Chinese by default on the phone
            assert await inspector.inner_text("#btn-end") == "End inspection"
            assert "Applicant" in await inspector.inner_text("#participants")
            assert "检查" in await applicant.inner_text("#status-text")

            # the observer page hides the inspector's controls and own preview
            assert await observer.evaluate("() => window.takan.state.role") == "observer"
            for selector in ("#btn-end", "#btn-mic", "#local-preview"):
                assert not await observer.is_visible(selector), selector
            assert await observer.is_visible(".badge-observer")
            assert await inspector.is_visible("#btn-end")

            # the applicant turns the camera off and mutes: the console says so
            await applicant.click("#btn-cam")
            await applicant.click("#btn-mic")
            await until(inspector, "document.querySelector('#remote-notice-text').textContent.includes('camera is off')")
            await until(inspector, "document.querySelectorAll('#participants [data-role=applicant] .flag.off').length === 2")
            assert await applicant.evaluate("() => window.takan.session.local.videoTrack.enabled") is False
            assert await applicant.evaluate("() => window.takan.session.local.audioTrack.enabled") is False
            await inspector.screenshot(path=str(artifact("web-console-applicant-camera-off.png")))
            await applicant.click("#btn-cam")
            await applicant.click("#btn-mic")
            await until(inspector, "document.querySelector('#remote-notice').hidden")

            # the language toggle switches at once and is remembered
            await applicant.click(".join-top .lang-toggle")
            assert await applicant.evaluate("() => document.documentElement.lang") == "en"
            assert await applicant.inner_text("#btn-switch") == "Switch camera"
            await applicant.reload()
            await until(applicant, JOINED)
            assert await applicant.evaluate("() => document.documentElement.lang") == "en"
            await decoding(inspector)

            # "End inspection" asks first; cancel keeps the session live
            await inspector.click("#btn-end")
            assert await inspector.is_visible("#end-dialog")
            await inspector.click("#end-cancel")
            assert not await inspector.is_visible("#end-dialog")
            assert await inspector.evaluate("() => window.takan.state.status") == "live"

            for page in (inspector, applicant, observer):
                assert page.js_errors == [], page.js_errors


@browser_test
async def test_recovery_and_camera_switch(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await open_page(b, created["applicant_url"], mobile=True)
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            await decoding(inspector)
            await decoding(applicant)

            # the applicant's socket drops: it joins again and offers a new peer connection
            generation = await applicant.evaluate("() => window.takan.session.peerGen")
            await applicant.evaluate("() => window.takan.session.socket.io.engine.close()")
            await until(applicant, f"window.takan.session.peerGen > {generation} && {JOINED}")
            await decoding(inspector)
            await decoding(applicant)

            # the inspector's peer connection fails: a new one replaces it
            generation = await inspector.evaluate("() => window.takan.session.peerGen")
            await inspector.evaluate(
                """() => { const pc = window.takan.session.pc;
                   Object.defineProperty(pc, 'connectionState', { get: () => 'failed' });
                   pc.dispatchEvent(new Event('connectionstatechange')); }"""
            )
            await until(inspector, f"window.takan.session.peerGen > {generation} && {JOINED}")
            await decoding(inspector)
            await decoding(applicant)

            # camera switch by deviceId: replaceTrack, no new offer, the inspector keeps decoding
            generation = await applicant.evaluate("() => window.takan.session.peerGen")
            cameras = await applicant.evaluate(
                "async () => (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === 'videoinput').map(d => d.deviceId)"
            )
            assert len(cameras) == 3
            await applicant.evaluate(f"async () => await window.takan.session.local.useCamera({cameras[2]!r})")
            assert await applicant.evaluate(
                "() => window.takan.session.videoTransceiver.sender.track === window.takan.session.local.videoTrack"
            )
            assert await applicant.evaluate("() => window.takan.session.local.videoTrack.getSettings().deviceId") == cameras[2]
            assert await applicant.evaluate("() => window.takan.session.peerGen") == generation
            await sending(applicant)
            await decoding(inspector)
            assert inspector.js_errors == [] and applicant.js_errors == []


REAR_LABELS = """
(() => {
  const real = navigator.mediaDevices.enumerateDevices.bind(navigator.mediaDevices);
  navigator.mediaDevices.enumerateDevices = async () => {
    const list = await real();
    const cams = list.filter(d => d.kind === 'videoinput');
    const names = ['Front Camera', 'Depth', 'Back Camera'];
    return list.map(d => d.kind !== 'videoinput' ? d : {
      kind: d.kind, deviceId: d.deviceId, groupId: d.groupId, label: names[cams.indexOf(d)] || d.label,
      toJSON() { return this; },
    });
  };
})();
"""


@browser_test
async def test_applicant_prefers_the_rear_camera_and_switch_goes_to_the_front(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            applicant = await open_page(b, created["applicant_url"], mobile=True, init_script=REAR_LABELS)
            await until(applicant, JOINED)
            cameras = await applicant.evaluate(
                "async () => (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === 'videoinput').map(d => d.deviceId)"
            )
            current = "() => window.takan.session.local.videoTrack.getSettings().deviceId"
            assert await applicant.evaluate(current) == cameras[2]  # "Back Camera"
            await applicant.click("#btn-switch")
            await until(applicant, f"window.takan.session.local.videoTrack.getSettings().deviceId === {cameras[0]!r}")
            await applicant.click("#btn-switch")
            await until(applicant, f"window.takan.session.local.videoTrack.getSettings().deviceId === {cameras[2]!r}")
            await sending(applicant)


DENY_CAMERA = """
window.__denyCamera = true;
const realGum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => window.__denyCamera
  ? Promise.reject(new DOMException('Permission denied', 'NotAllowedError'))
  : realGum(c);
"""


@browser_test
async def test_error_views(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            # a forged link, in English
            page = await open_page(b, server.base_url + "/console?lang=en#forged.token")
            await until(page, "window.takan.state.error === 'token_invalid'")
            assert await page.get_attribute("#overlay", "data-view") == "error-token_invalid"
            assert "not valid" in await page.inner_text("#overlay")
            assert await page.evaluate("() => window.takan.state.socket") == "error"
            assert (await page.evaluate("() => window.takan.events"))[-1]["name"] == "connect_error"

            # no token at all
            page = await open_page(b, server.base_url + "/join")
            await until(page, "window.takan.state.error === 'no_token'")

            # camera denied: explanation and a retry button that works once allowed
            applicant = await open_page(b, created["applicant_url"], mobile=True, init_script=DENY_CAMERA)
            await until(applicant, "window.takan.session.mediaError")
            assert await applicant.get_attribute("#overlay", "data-view") == "media-denied"
            assert "Safari" in await applicant.inner_text("#overlay .overlay-steps")
            await applicant.screenshot(path=str(artifact("web-join-camera-denied.png")))
            await applicant.evaluate("() => { window.__denyCamera = false; }")
            await applicant.click("#overlay [data-action='btn.retry']")
            await until(applicant, JOINED)
            assert await applicant.is_hidden("#overlay")

            # the same link opened again elsewhere: the first page says so and stops
            second = await open_page(b, created["applicant_url"], mobile=True)
            await until(second, "document.getElementById('overlay').dataset.view === 'inuse'")
            await second.click("#overlay [data-action='inuse.continue']")  # asked first, then moves here
            await until(second, JOINED)
            await until(applicant, "window.takan.session.final === 'kicked'")
            assert await applicant.get_attribute("#overlay", "data-view") == "final-kicked"
            assert await applicant.evaluate("() => window.takan.session.local.stream") is None
            assert await applicant.evaluate("() => window.takan.session.pc") is None
