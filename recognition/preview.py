"""The part of a capture that was read, as a small JPEG for the inspector's page.

The console holds no credentials to fetch evidence, so the ``recognized`` message carries
the crop itself: the box around the text read (a margin added, so the edges of the licence
show), scaled to at most :data:`MAX_SIDE` pixels. It is for the eye only; the evidence is
the capture, whose key the reading names.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Optional

MAX_SIDE = 480
QUALITY = 80
MARGIN = 0.04  # of the box's longer side


def crop_preview(data: bytes, box: Sequence[int]) -> Optional[str]:
    """A ``data:image/jpeg;base64,...`` URL of ``box`` (x0, y0, x1, y1) of the image
    ``data``, or None when it does not decode or the box is empty. Blocking (decode, resize)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    pad = int(MARGIN * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
    if x1 <= x0 or y1 <= y0:
        return None
    part = image[y0:y1, x0:x1]
    scale = MAX_SIDE / max(part.shape[:2])
    if scale < 1:
        part = cv2.resize(part, (max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
