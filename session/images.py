"""Images from participants, validated by decoding them (not by their first bytes).

Decoding runs in a worker thread: a 15 MB photo takes a large fraction of a second to
decode, which must not hold the event loop (media and signaling run on it).
"""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from errors import TooLarge, UnsupportedMediaType

#: Pillow format -> (content type, extension) of what a participant may send.
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
#: A phone camera's full resolution is 12-50 MP; more is a decompression bomb.
MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    extension: str
    width: int
    height: int


def check_image(data: bytes, allowed: tuple[str, ...] = tuple(FORMATS), max_pixels: int = MAX_PIXELS) -> CheckedImage:
    """Decode ``data`` fully; the image's real type and size, or a clear refusal."""
    what = " or ".join(f for f in allowed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                if fmt not in allowed:
                    raise UnsupportedMediaType(f"the file is {fmt or 'not an image'}; send a {what} image")
                width, height = image.size
                if width * height > max_pixels:
                    raise TooLarge(f"the image is {width}x{height}; at most {max_pixels // 1_000_000} megapixels")
                image.load()  # decodes every pixel: a truncated or corrupt file fails here
    except (UnsupportedMediaType, TooLarge):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise TooLarge(f"the image is too large to decode; at most {max_pixels // 1_000_000} megapixels") from None
    except Exception:
        raise UnsupportedMediaType(f"the file is not a readable {what} image (it may be truncated or corrupt)") from None
    content_type, extension = FORMATS[fmt]
    return CheckedImage(content_type, extension, width, height)


async def checked_image(data: bytes, allowed: tuple[str, ...] = tuple(FORMATS)) -> CheckedImage:
    """:func:`check_image` in a worker thread."""
    return await asyncio.to_thread(check_image, data, allowed)
