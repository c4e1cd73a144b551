"""How fast `verify` checks 30 minutes of 720p evidence (aim: under 5 s).

Builds, in a temporary data directory, the evidence of a 30-minute inspection with two
720p video tracks and two audio tracks cut into 4 s segments at realistic sizes
(video ~1.2 Mb/s, audio ~40 kb/s), stills, photos, signatures and a few hundred other
events, seals it, then times `verify_inspection` and the `takan verify` CLI.

    .venv/bin/python bench/verify_throughput.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence.journal import Journal  # noqa: E402
from evidence.signing import SigningKeys  # noqa: E402
from evidence.verify import verify_inspection  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402

INSPECTION = "20261126090000-bench000000000000"


async def build(root: Path, minutes: int) -> int:
    store = LocalObjectStore(root / "objects")
    await store.start()
    keys = SigningKeys(root / "keys", store)
    await keys.start()
    journal = Journal(store, keys)
    segments = minutes * 60 // 4
    total = 0
    for seq in range(1, segments + 1):
        for track, size in (("applicant-video", 600_000), ("inspector-video", 300_000), ("applicant-audio", 20_000), ("inspector-audio", 20_000)):
            data = os.urandom(size)
            total += size
            await journal.record_blob(INSPECTION, f"media/{track}/{seq:06d}.webm", data, "video/webm", "media.segment", "recorder", {"track": track, "seq": seq})
        if seq % 10 == 0:
            await journal.record(INSPECTION, "chat", "applicant", {"text": f"message {seq}"})
    for n in range(1, 9):
        data = os.urandom(400_000)
        total += len(data)
        await journal.record_blob(INSPECTION, f"stills/cp{n}/1.jpg", data, "image/jpeg", "still.captured", "inspector", {"checkpoint": f"cp{n}"})
    await journal.record(INSPECTION, "session.ended", "inspector", {})
    await journal.seal(INSPECTION, {"id": INSPECTION})
    await store.close()
    return total


async def timed_verify(root: Path) -> tuple[float, int, bool]:
    store = LocalObjectStore(root / "objects")
    await store.start()
    start = time.perf_counter()
    report = await verify_inspection(store, INSPECTION)
    elapsed = time.perf_counter() - start
    await store.close()
    return elapsed, report.bytes_checked, report.ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"building {args.minutes} minutes of 720p evidence ...", flush=True)
        start = time.perf_counter()
        size = asyncio.run(build(root, args.minutes))
        print(f"  built {size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s (event log rewritten per event)")
        runs = [asyncio.run(timed_verify(root)) for _ in range(3)]
        best = min(r[0] for r in runs)
        assert all(r[2] for r in runs), "verification failed"
        cli_start = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "takan", "verify", "--quiet", "--data-dir", str(root), INSPECTION],
                             capture_output=True, text=True, env={**os.environ, "TAKAN_LOG_LEVEL": "WARNING"})
        cli_time = time.perf_counter() - cli_start
        assert cli.returncode == 0, cli.stdout + cli.stderr
        print(f"verify_inspection: best of 3 {best:.2f} s for {runs[0][1] / 1e6:.0f} MB ({runs[0][1] / 1e6 / best:.0f} MB/s); "
              f"runs {', '.join(f'{r[0]:.2f}' for r in runs)} s")
        print(f"takan verify CLI (process start included): {cli_time:.2f} s")


if __name__ == "__main__":
    main()
