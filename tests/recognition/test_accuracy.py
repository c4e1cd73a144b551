"""OCR accuracy on 100 generated licences (testkit.licences; no real data).

Each image is generated and read once, in two worker processes (one per core; each
process has its own engine with one onnxruntime thread). Field-level accuracy must be at
least 97%, and the USCC exact on every image where one was read (a code that fails its
check is unreadable, never a wrong code).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Optional

import pytest

from recognition.engine import EngineUnavailable, OcrEngine, packaged_models
from recognition.licence import FIELDS, normalise, parse_licence
from testkit.licences import licence

IMAGES = 100
SEED = 2026
_engine: Optional[OcrEngine] = None


def _read(index: int) -> tuple[dict[str, str], dict[str, Any], str, float]:
    global _engine
    if _engine is None:
        _engine = OcrEngine(threads=1)
    card = licence(index, SEED)
    started = time.process_time()
    fields = parse_licence(_engine.read(card.image))
    return card.fields, fields, f"{card.template}/{card.font}", time.process_time() - started


def test_field_accuracy_on_generated_licences() -> None:
    try:
        packaged_models()
    except EngineUnavailable as exc:
        pytest.fail(str(exc))
    started = time.monotonic()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_read, range(IMAGES)))
    right = total = 0
    wrong_uscc = []
    misses = []
    for printed, fields, what, _ in results:
        for name in FIELDS:
            total += 1
            got = fields.get(name)
            if got is not None and normalise(got) == normalise(printed[name]):
                right += 1
            else:
                misses.append((what, name, printed[name], got))
        if fields["uscc"] is not None and fields["uscc"] != printed["uscc"]:
            wrong_uscc.append((printed["uscc"], fields["uscc"]))
    accuracy = right / total
    cpu = sorted(r[3] for r in results)
    print(
        f"\n{IMAGES} licences, {total} fields: {accuracy:.2%} right; uscc read on "
        f"{sum(r[1]['uscc'] is not None for r in results)}; {time.monotonic() - started:.1f} s wall; "
        f"OCR CPU per image p50 {cpu[len(cpu) // 2]:.2f} s, max {cpu[-1]:.2f} s"
    )
    for miss in misses[:20]:
        print("  miss", miss)
    assert not wrong_uscc, wrong_uscc
    assert accuracy >= 0.97, misses
