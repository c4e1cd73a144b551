"""The evidence of a real session, end to end, through the pages only.

Two Chromium pages with fake cameras meet in an inspection created over REST and stay live
for more than 20 s. Through the UI the inspector captures a still and the applicant uploads a
photo, both sign on their pads, and the inspector ends the inspection. Then the evidence is
checked the way an auditor would: every media segment plays in ffprobe and the segments of
each video track add up to the track's time, `takan verify` passes, openssl accepts the
manifest's signature, and the auditor page shows the inspection verified, plays the video and
seeks to the still when its event is clicked.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from testkit.browser import artifact, chromium, chromium_available, wait_decoding
from testkit.server import API_KEY, create_inspection, running_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed (scripts/install.sh installs it)"),
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (ffmpeg) is not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
LIVE_AT_LEAST_S = 22.0


async def until(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JS expression until it is truthy (generous: a loaded 2-core machine is slow)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await page.evaluate(f"async () => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }}"):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not true after {timeout_s}s: {expression}")


async def sign(page) -> str:
    """Write on the open signature pad with the mouse, submit, and return the shown code."""
    await until(page, "!document.getElementById('sigpad').hidden && document.getElementById('sigpad-canvas').width > 10")
    box = await page.locator("#sigpad-canvas").bounding_box()
    for s in range(2):
        x0 = box["x"] + box["width"] * (0.12 + 0.4 * s)
        y0 = box["y"] + box["height"] * 0.5
        await page.mouse.move(x0, y0)
        await page.mouse.down()
        for i in range(1, 18):
            await page.mouse.move(x0 + i * box["width"] * 0.02, y0 + (box["height"] * 0.1) * (1 if i % 4 < 2 else -1))
        await page.mouse.up()
    await page.click("#sigpad-submit")
    await until(page, "document.getElementById('sigpad').dataset.state === 'signed'")
    code = await page.inner_text("#sigpad-code")
    await page.click("#sigpad-done")
    return code


def ffprobe_duration(path: Path) -> float:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), f"ffprobe rejects {path}: {result.stderr}"
    return float(result.stdout.strip())


def wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_evidence_of_a_session_made_through_the_pages(tmp_path) -> None:
    data_dir = tmp_path / "data"
    photo = tmp_path / "storefront.jpg"
    image = Image.new("RGB", (2000, 1500), (180, 110, 60))
    image.paste((30, 60, 140), (500, 400, 1500, 1100))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    photo.write_bytes(buffer.getvalue())

    async with running_server(data_dir, ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, checkpoints=[
            {"code": "storefront", "title": "门头招牌", "required": True},
            {"code": "kitchen", "title": "后厨操作间", "required": True},
        ])
        iid = created["id"]
        async with chromium() as browser:
            inspector_ctx = await browser.new_context(viewport={"width": 1366, "height": 768})
            applicant_ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            inspector = await inspector_ctx.new_page()
            applicant = await applicant_ctx.new_page()
            errors: list[str] = []
            for page in (inspector, applicant):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
            await inspector.goto(created["inspector_url"])
            await applicant.goto(created["applicant_url"])
            await wait_decoding(inspector, 20, timeout_s=60)
            await wait_decoding(applicant, 20, timeout_s=60)
            await until(inspector, "window.takan.state.status === 'live' && window.takan.session.startedAt")
            live_since = time.monotonic()

            # the inspector prompts and captures a still of the storefront
            await inspector.click("[data-code=storefront] .chk-prompt")
            await until(applicant, "document.getElementById('task').dataset.prompted === 'true'")
            await inspector.click("[data-code=storefront] .chk-capture")
            await until(inspector, "document.querySelector('[data-code=storefront] .thumb-still')", 60)
            still_key = await inspector.get_attribute("[data-code=storefront] .thumb-still", "data-key")
            assert still_key == "stills/storefront/1.jpg"

            # the applicant photographs the kitchen with the phone's camera (the file input)
            await applicant.select_option("#photo-checkpoint", "kitchen")
            await applicant.set_input_files("#photo-input", str(photo))
            await until(applicant, "document.getElementById('photo-status').dataset.tone === 'done'", 60)
            await until(inspector, "document.querySelector('[data-code=kitchen] .thumb-photo')")

            # both sign: the applicant when asked, the inspector on the console's own pad
            await inspector.click("#btn-sign-request")
            applicant_code = await sign(applicant)
            await until(inspector, "document.getElementById('sig-applicant').dataset.state === 'signed'")
            await inspector.click("#btn-sign-own")
            inspector_code = await sign(inspector)
            assert applicant_code != inspector_code

            # keep the session live (and recorded) for long enough, then end it through the UI
            while time.monotonic() - live_since < LIVE_AT_LEAST_S:
                await asyncio.sleep(0.5)
            await wait_decoding(inspector, 20)
            await inspector.screenshot(path=str(artifact("e2e-evidence-console.png")))
            await inspector.click("#btn-end")
            await inspector.click("#end-confirm")
            await until(applicant, "window.takan.state.status === 'ended'")
            assert errors == [], errors

        await server.services.decisions.idle()  # the verdict is sealed in the background

        # ---- the record and its evidence --------------------------------------------------
        async with http.get(f"{server.base_url}/api/v1/inspections/{iid}", headers=server.headers()) as r:
            record = await r.json()
        assert record["status"] in ("ended", "judged") and record["manifest"]["sha256"], record
        assert record["duration_s"] >= 20, record["duration_s"]

        prefix = data_dir / "objects" / "inspections" / iid
        log = "".join(p.read_text() for p in sorted((prefix / "events").glob("*.jsonl")))  # the log's chunks, in order
        events = [json.loads(line) for line in log.splitlines() if line.strip()]
        types = [e["type"] for e in events]
        for expected in ("still.captured", "photo.uploaded", "signature.signed", "session.ended"):
            assert expected in types, expected
        signed = {e["data"]["role"]: e["data"]["code"] for e in events if e["type"] == "signature.signed"}
        assert signed == {"applicant": applicant_code, "inspector": inspector_code}
        photo_event = next(e for e in events if e["type"] == "photo.uploaded")
        assert (prefix / photo_event["data"]["key"]).read_bytes() == photo.read_bytes()

        # every segment plays; each video track's segments add up to its recorded time
        segments = [e["data"] for e in events if e["type"] == "media.segment"]
        assert {s["track"] for s in segments} >= {"applicant-video", "inspector-video"}
        by_track: dict[str, list[dict]] = defaultdict(list)
        for seg in segments:
            seg["probed_s"] = ffprobe_duration(prefix / seg["key"])
            by_track[seg["track"]].append(seg)
        stored = sorted(p.relative_to(prefix).as_posix() for p in (prefix / "media").rglob("*.webm"))
        assert stored == sorted(s["key"] for s in segments)
        for track, segs in by_track.items():
            if not track.endswith("-video"):
                continue
            segs.sort(key=lambda s: s["seq"])
            media_time = wall(segs[-1]["wall_end"]) - wall(segs[0]["wall_start"])
            total = sum(s["probed_s"] for s in segs)
            assert abs(total - media_time) <= 1.0, (track, total, media_time, len(segs))
            assert media_time >= LIVE_AT_LEAST_S - 6, (track, media_time)

        # takan verify, and the seal checked with openssl alone
        verify = subprocess.run(
            [sys.executable, "-m", "takan", "verify", "--quiet", "--data-dir", str(data_dir), iid],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert verify.stdout.startswith(f"OK {iid}"), verify.stdout
        manifest = json.loads((prefix / "manifest.json").read_text())
        kid = manifest["signature"]["key_id"]
        pem = data_dir / "objects" / "system" / "keys" / f"{kid}.pem"
        openssl = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
             "-in", str(prefix / "manifest.json"), "-sigfile", str(prefix / "manifest.json.sig")],
            capture_output=True, text=True, timeout=60,
        )
        assert openssl.returncode == 0, openssl.stdout + openssl.stderr
        assert "Signature Verified Successfully" in openssl.stdout

        # ---- the auditor's page -----------------------------------------------------------
        async with chromium() as browser:
            page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(server.base_url + "/audit")
            await page.fill("#api-key", API_KEY)
            await page.click("#login-submit")
            await page.fill("#f-case", created["case_no"])
            await page.click("#f-search")
            await until(page, f"document.querySelector(\"#list-body tr[data-id='{iid}']\")")
            await page.click(f"#list-body tr[data-id='{iid}']")
            await until(page, "document.getElementById('verify').dataset.state !== 'pending'", 60)
            assert await page.get_attribute("#verify", "data-state") == "ok", await page.inner_text("#verify")
            assert kid in await page.inner_text("#verify-detail")

            # the first segment of the applicant's video plays
            main = "document.querySelector('#player-main video.replay-media.active')"
            await until(page, f"{main} && {main}.readyState >= 2", 60)
            await until(page, "document.querySelector('.ev[data-type=\"still.captured\"] img.ev-thumb')?.naturalWidth > 0", 60)
            await page.screenshot(path=str(artifact("e2e-evidence-audit.png")))
            await page.click("#btn-play")
            before = await page.evaluate(f"() => {main}.currentTime")
            await until(page, f"{main}.currentTime > {before} + 0.5 && {main}.readyState >= 2", 30)
            await page.click("#btn-play")  # pause
            await until(page, "!window.takanAudit.replay.playing")

            # clicking the still's event seeks the video to that moment
            still_event = next(e for e in events if e["type"] == "still.captured")
            moment_ms = wall(still_event["data"]["captured_at"]) * 1000
            await page.click(".ev[data-type='still.captured']")
            position = await page.evaluate("() => window.takanAudit.replay.position")
            assert abs(position - moment_ms) < 50, (position, moment_ms)
            seg = next(s for s in by_track["applicant-video"] if wall(s["wall_start"]) * 1000 <= moment_ms < wall(s["wall_end"]) * 1000)
            offset = moment_ms / 1000 - wall(seg["wall_start"])
            await until(page, f"{main} && {main}.dataset.key === '{seg['key']}' "
                              f"&& Math.abs({main}.currentTime - {offset}) < 0.3 && {main}.readyState >= 2", 30)
            assert await page.evaluate("() => document.querySelector('.ev.selected')?.dataset.type") == "still.captured"
            await page.screenshot(path=str(artifact("e2e-evidence-audit-seek.png")))

            # a changed still: the same page now says so, naming the object
            still_path = prefix / still_key
            still_path.write_bytes(still_path.read_bytes() + b"\0")
            await page.reload()
            await until(page, "document.getElementById('verify').dataset.state !== 'pending'", 60)
            assert await page.get_attribute("#verify", "data-state") == "bad"
            assert still_key in await page.inner_text("#verify-detail")
            await page.screenshot(path=str(artifact("e2e-evidence-audit-tampered.png")))
            assert errors == [], errors
