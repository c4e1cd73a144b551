"""Debian's Chromium driven by Playwright, with fake camera and microphone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import os
import shutil
from pathlib import Path
from typing import AsyncIterator

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
async def chromium() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
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
