"""End to end: a licence held to the phone's camera is captured as a server still during a
live session and read, its fields matching what was printed.

The phone is real Chromium whose camera plays a generated licence (a Y4M file as the fake
capture device); the picture goes through WebRTC, the server's relay and its still capture
(keyframe request, decode, JPEG), then the OCR worker.
"""

from __future__ import annotations

import random
import time

import aiohttp

from testkit.browser import artifact, chromium, fake_camera_file
from testkit.licences import FONTS, damage, random_fields, render
from testkit.media import wait_for
from testkit.server import create_inspection, logged_events, running_server
from testkit.sockets import Participant
from tests.web_client.test_pages import JOINED, browser_test, open_page, until

CHECKPOINT = "business_license_display"
SENDING_720P = """(async () => {
  const pc = window.takan.session.pc;
  if (!pc) return false;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.frameHeight >= 720 && s.framesEncoded > 20) return true;
  }
  return false;
})()"""


@browser_test
async def test_a_licence_shown_to_the_camera_is_captured_and_read(tmp_path) -> None:
    rng = random.Random(2027)
    printed = random_fields(rng, "landscape")
    # as a phone sees it, mildly: a little perspective, noise and blur
    camera = fake_camera_file(damage(render(printed, "landscape", FONTS[0], rng), rng, strength=0.4), tmp_path / "licence.y4m")
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(
            server, http,
            applicant={"name": printed["name"], "kind": "legal_person", "id_type": "USCC", "id_number": printed["uscc"]},
            checkpoints=[{"code": CHECKPOINT, "title": "营业执照悬挂", "required": True}],
        )
        async with chromium(("--use-file-for-fake-video-capture=" + str(camera),)) as b:
            phone = await open_page(b, created["applicant_url"], mobile=True)
            inspector = Participant(server.base_url, created["inspector_url"])
            try:
                assert await inspector.connect() and (await inspector.call("join"))["ok"]
                await until(phone, JOINED)
                # the still is as sharp as what the phone sends: wait for 720p frames to flow
                await until(phone, SENDING_720P, timeout_s=20)
                started = time.monotonic()
                ack = await inspector.call("capture", {"checkpoint": CHECKPOINT}, timeout=25)
                assert ack["ok"], ack
                assert ack["width"] == 1280 and ack["height"] == 720, ack
                assert await wait_for(lambda: any(e == "recognized" for e, _ in inspector.events), 60)
                read_s = time.monotonic() - started
                await phone.screenshot(path=str(artifact("e2e-licence-camera-phone.png")))
                # the still as the server took it (not its watermarked display copy), to look at
                stored = sorted((p for p in (tmp_path / "data").rglob("*.jpg") if p.as_posix().endswith(ack["key"])),
                                key=lambda p: len(p.parts))
                if stored:
                    artifact("e2e-licence-camera-still.jpg").write_bytes(stored[0].read_bytes())
                events = await logged_events(server, created["id"])
                [reading] = [e["data"] for e in events if e["type"] == "recognition.result"]
                assert reading["evidence_key"] == ack["key"] and reading["kind"] == "business_licence"
                assert reading["fields"]["name"] == printed["name"], (reading, printed)
                assert reading["fields"]["uscc"] == printed["uscc"], (reading, printed)
                assert reading["matches"] == {"name": True, "uscc": True} and reading["result"] == "matched"
                print(f"capture to reading: {read_s:.1f} s (OCR {reading['ocr_ms']} ms)")
                assert not phone.js_errors, phone.js_errors
            finally:
                await inspector.close()
