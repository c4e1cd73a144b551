"""OCR time per still: generated licence stills read by the engine Takan uses.

    python bench/ocr.py [--images 20] [--threads 1]

Prints wall and CPU seconds per still (p50, p95, max) and the field accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognition.engine import OcrEngine  # noqa: E402
from recognition.licence import FIELDS, normalise, parse_licence  # noqa: E402
from testkit.licences import licence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    engine = OcrEngine(threads=args.threads)
    engine.read(licence(0, 7).image)  # load the model
    walls, cpus, right = [], [], 0
    for i in range(args.images):
        card = licence(i, 7)
        wall, cpu = time.perf_counter(), time.process_time()
        fields = parse_licence(engine.read(card.image))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        right += sum(fields.get(n) is not None and normalise(str(fields[n])) == normalise(card.fields[n]) for n in FIELDS)

    def q(values: list[float], p: float) -> float:
        return sorted(values)[min(len(values) - 1, int(p * len(values)))]

    print(f"{args.images} stills, {args.threads} thread(s): wall p50 {statistics.median(walls):.2f} s, "
          f"p95 {q(walls, 0.95):.2f} s, max {max(walls):.2f} s; CPU p50 {statistics.median(cpus):.2f} s; "
          f"fields right {right}/{args.images * len(FIELDS)}")


if __name__ == "__main__":
    main()
