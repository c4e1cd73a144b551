"""Debian's Chromium driven by Playwright, with fake camera and microphone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import os
import shutil
from pathlib import Path
from typing import AsyncIterator

from PIL import Image

CHROMIUM = os.environ.get("TAKAN_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()


@contextlib.asynccontextmanager
async def chromium(extra_args: tuple[str, ...] = ()) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            await browser.close()


STATS = "async () => window.takan ? await window.takan.stats() : null"


async def wait_decoding(page, at_least: int, timeout_s: float = 30.0) -> dict:
    """Wait until the page has decoded ``at_least`` video frames from the server.

    Polls from Python: a Promise returned to wait_for_function would count as truthy.
    """
    deadline = time.monotonic() + timeout_s
    stats: dict = {}
    while time.monotonic() < deadline:
        stats = await page.evaluate(STATS) or {}
        if stats.get("videoFramesDecoded", 0) >= at_least:
            return stats
        await asyncio.sleep(0.25)
    raise AssertionError(f"the page decoded too few frames in {timeout_s}s: {stats}")


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def fake_camera_file(picture: Image.Image, path: Path, size: tuple[int, int] = (1280, 720), frames: int = 2, fps: int = 10) -> Path:
    """Write ``picture``, fitted into ``size`` on a grey wall, as a Y4M file for Chromium's
    ``--use-file-for-fake-video-capture`` (4:2:0, the one layout it plays; it loops the
    file, so a couple of identical frames are a still camera)."""
    import cv2
    import numpy as np

    width, height = size
    scale = min(width / picture.width, height / picture.height)
    fitted = picture.convert("RGB").resize((round(picture.width * scale) & ~1, round(picture.height * scale) & ~1), Image.LANCZOS)
    frame = Image.new("RGB", size, (96, 96, 92))
    frame.paste(fitted, ((width - fitted.width) // 2, (height - fitted.height) // 2))
    i420 = cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(b"FRAME\n" + i420)
    return path
