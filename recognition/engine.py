"""The OCR engine: RapidOCR (PP-OCRv6 small det/rec, PP-OCR cls) on onnxruntime.

The models ship inside the ``rapidocr`` wheel (``rapidocr/models/*.onnx``); nothing is
downloaded at run time (the engine is built with the packaged paths and refuses to start
when they are missing). Chosen by measurement: ``recognition/README.md``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)

#: The detector sees the image with its longer side at most this many pixels: a still's
#: licence text stays legible, and detection costs a third of what full size does.
DET_MAX_SIDE = 736


@dataclass(frozen=True)
class Line:
    """One line of text the OCR found: its text, confidence, and box (x0, y0, x1, y1)."""

    text: str
    score: float
    box: tuple[int, int, int, int]

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


class EngineUnavailable(RuntimeError):
    """The OCR package or its packaged models are missing."""


def packaged_models() -> dict[str, Path]:
    """The model files inside the installed ``rapidocr`` wheel."""
    try:
        import rapidocr
    except ImportError as exc:  # pragma: no cover - an install problem
        raise EngineUnavailable(f"rapidocr is not installed: {exc}") from exc
    models = Path(rapidocr.__file__).parent / "models"
    paths = {
        "det": models / "PP-OCRv6_det_small.onnx",
        "rec": models / "PP-OCRv6_rec_small.onnx",
        "cls": models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise EngineUnavailable(f"the rapidocr wheel lacks its models: {', '.join(missing)}")
    return paths


class OcrEngine:
    """A lazily built, thread-safe OCR engine (one inference at a time)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._engine: Optional[Any] = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        from rapidocr import RapidOCR

        paths = packaged_models()
        params = {
            "Global.log_level": "warning",
            "Det.model_path": str(paths["det"]),
            "Rec.model_path": str(paths["rec"]),
            "Cls.model_path": str(paths["cls"]),
            "Det.limit_type": "max",
            "Det.limit_side_len": DET_MAX_SIDE,
            "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        return RapidOCR(params=params)

    def read(self, image: Any) -> list[Line]:
        """The lines of text in ``image`` (JPEG/PNG bytes or a BGR numpy array). Blocking."""
        import numpy as np

        if isinstance(image, (bytes, bytearray, memoryview)):
            import cv2

            image = cv2.imdecode(np.frombuffer(bytes(image), np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                return []
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            result = self._engine(image)
        if not result.txts:
            return []
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores):
            xs = [int(p[0]) for p in box]
            ys = [int(p[1]) for p in box]
            lines.append(Line(str(text), float(score), (min(xs), min(ys), max(xs), max(ys))))
        return lines
