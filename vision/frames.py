"""Frame payload handling: base64/data-URL parsing, cheap header checks, decoding.

Pure code (no Ray). The frame pipeline uses `parse_frame_payload` (base64 over HTTP) or
`check_frame_size` (raw bytes over the WebSocket), then `inspect_image_header`, to reject bad input
with a clear message before any model runs; the model deployments call `decode_image` on the
JPEG/PNG bytes they are sent (bytes travel through handles, never decoded arrays). Every refusal is
a `FrameError` naming its `FrameProblem`; `api/errors.py` maps problems to HTTP statuses.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import numpy as np

from errors import FrameError, FrameProblem

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int


def parse_frame_payload(frame: str, max_bytes: int) -> bytes:
    """Turn the `frame` field (plain base64 or a data URL) into image bytes.

    Raises FrameError(MALFORMED) for malformed base64, FrameError(TOO_LARGE) when the decoded image
    is larger than `max_bytes`.
    """
    if not isinstance(frame, str) or not frame.strip():
        raise FrameError("frame is empty: send a base64-encoded JPEG or PNG", FrameProblem.MALFORMED)
    text = frame.strip()
    match = _DATA_URL.match(text)
    if match:
        if ";base64" not in (match.group("params") or "").lower():
            raise FrameError("frame data URL must be base64-encoded (';base64,')", FrameProblem.MALFORMED)
        text = text[match.end():]
    text = _WHITESPACE.sub("", text)
    # Reject before decoding: base64 inflates by 4/3, so this bounds memory for huge bodies.
    if len(text) * 3 // 4 > max_bytes:
        raise FrameError(f"frame is too large: over {max_bytes} bytes after decoding", FrameProblem.TOO_LARGE)
    if len(text) % 4:
        text += "=" * (-len(text) % 4)  # tolerate clients that strip padding
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"frame is not valid base64: {exc}", FrameProblem.MALFORMED) from None
    if not data:
        raise FrameError("frame is empty after base64 decoding", FrameProblem.MALFORMED)
    return check_frame_size(data, max_bytes)


def check_frame_size(data: bytes, max_bytes: int) -> bytes:
    """Image bytes as they arrived (the WebSocket sends them raw), bounded like a base64 frame."""
    if not data:
        raise FrameError("frame is empty: send JPEG, PNG or WebP bytes", FrameProblem.MALFORMED)
    if len(data) > max_bytes:
        raise FrameError(f"frame is too large: {len(data)} bytes, limit {max_bytes}", FrameProblem.TOO_LARGE)
    return data


def inspect_image_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Read format and size from the image header without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
    except Image.DecompressionBombError:
        raise FrameError(f"frame has too many pixels (limit {max_pixels})", FrameProblem.TOO_LARGE) from None
    except Exception:  # noqa: BLE001 - any failure to identify (plugins raise their own) is "not an image"
        raise FrameError("frame is not an image: expected JPEG, PNG or WebP bytes", FrameProblem.NOT_AN_IMAGE) from None
    if fmt not in SUPPORTED_FORMATS:
        raise FrameError(f"frame format {fmt} is not supported: send JPEG, PNG or WebP", FrameProblem.NOT_AN_IMAGE)
    if width <= 0 or height <= 0:
        raise FrameError("frame has zero width or height", FrameProblem.NOT_AN_IMAGE)
    if width * height > max_pixels:
        raise FrameError(f"frame is {width}x{height}: over the {max_pixels}-pixel limit", FrameProblem.TOO_LARGE)
    return ImageHeader(fmt, width, height)


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to a BGR uint8 array (OpenCV's layout, what YOLO and cv2 expect)."""
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameError("frame could not be decoded: the image data is corrupt or truncated", FrameProblem.CORRUPT)
    return image


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
