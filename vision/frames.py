"""Frame payload handling: base64/data-URL parsing, cheap header checks, decoding.

Pure code (no Ray). The ingress uses `parse_frame_payload` + `inspect_image_header` to reject bad
input with a clear message before any model runs; the model deployments call `decode_image` on the
JPEG/PNG bytes they are sent (bytes travel through handles, never decoded arrays).
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import numpy as np

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")


class FrameError(ValueError):
    """A frame the service cannot use. `status` is the HTTP status the ingress answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int


def parse_frame_payload(frame: str, max_bytes: int) -> bytes:
    """Turn the `frame` field (plain base64 or a data URL) into image bytes.

    Raises FrameError(400) for malformed base64, FrameError(413) when the decoded image is larger
    than `max_bytes`.
    """
    if not isinstance(frame, str) or not frame.strip():
        raise FrameError("frame is empty: send a base64-encoded JPEG or PNG", 400)
    text = frame.strip()
    match = _DATA_URL.match(text)
    if match:
        if ";base64" not in (match.group("params") or "").lower():
            raise FrameError("frame data URL must be base64-encoded (';base64,')", 400)
        text = text[match.end():]
    text = _WHITESPACE.sub("", text)
    # Reject before decoding: base64 inflates by 4/3, so this bounds memory for huge bodies.
    if len(text) * 3 // 4 > max_bytes:
        raise FrameError(f"frame is too large: over {max_bytes} bytes after decoding", 413)
    if len(text) % 4:
        text += "=" * (-len(text) % 4)  # tolerate clients that strip padding
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"frame is not valid base64: {exc}", 400) from None
    if not data:
        raise FrameError("frame is empty after base64 decoding", 400)
    if len(data) > max_bytes:
        raise FrameError(f"frame is too large: {len(data)} bytes, limit {max_bytes}", 413)
    return data


def inspect_image_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Read format and size from the image header without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
    except Image.DecompressionBombError:
        raise FrameError(f"frame has too many pixels (limit {max_pixels})", 413) from None
    except Exception:  # noqa: BLE001 - any failure to identify (plugins raise their own) is "not an image"
        raise FrameError("frame is not an image: expected JPEG, PNG or WebP bytes", 422) from None
    if fmt not in SUPPORTED_FORMATS:
        raise FrameError(f"frame format {fmt} is not supported: send JPEG, PNG or WebP", 422)
    if width <= 0 or height <= 0:
        raise FrameError("frame has zero width or height", 422)
    if width * height > max_pixels:
        raise FrameError(f"frame is {width}x{height}: over the {max_pixels}-pixel limit", 413)
    return ImageHeader(fmt, width, height)


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to a BGR uint8 array (OpenCV's layout, what YOLO and cv2 expect)."""
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameError("frame could not be decoded: the image data is corrupt or truncated", 422)
    return image


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
