"""The frame decoder under hypothesis: whatever the bytes, a FrameError (a 4xx) or a decoded image,
never another exception, never a hang, never a decompression bomb decoded."""
from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from api.errors import http_status
from errors import FrameError
from vision.frames import decode_image, inspect_image_header, parse_frame_payload

MAX_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


def run_pipeline(data: bytes):
    """What the service does with a frame: header check at the ingress, decode in the models."""
    started = time.perf_counter()
    try:
        inspect_image_header(data, MAX_PIXELS)
        image = decode_image(data)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        outcome = "ok"
    except FrameError as err:
        assert 400 <= http_status(err) < 500
        outcome = http_status(err)
    assert time.perf_counter() - started < 5, "decoder took too long"
    return outcome


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny body: a decompression bomb's shape."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


SMALL = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
JPEG = encode(SMALL, "JPEG")
PNG = encode(SMALL, "PNG")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    run_pipeline(data)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([JPEG, PNG]), st.integers(min_value=0, max_value=len(PNG)))
def test_truncated_images(data, cut):
    run_pipeline(data[:cut])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([JPEG, PNG]), st.integers(0, 16), st.binary(min_size=1, max_size=4))
def test_corrupted_magic_and_bytes(data, offset, junk):
    run_pipeline(data[:offset] + junk + data[offset + len(junk):])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200_000), st.integers(1, 200_000))
def test_header_dimensions_are_checked_before_decoding(width, height):
    outcome = run_pipeline(png_header_only(width, height))
    if width * height > MAX_PIXELS:
        assert outcome == 413


@pytest.mark.parametrize("data, expected", [
    (encode(SMALL.convert("CMYK"), "JPEG"), "ok"),
    (encode(Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)), "PNG"), "ok"),  # 16-bit grey
    (encode(SMALL.convert("RGBA"), "PNG"), "ok"),
    (encode(SMALL.convert("L"), "JPEG"), "ok"),
    (encode(SMALL, "WEBP"), "ok"),
    (encode(SMALL, "PNG", save_all=True, append_images=[SMALL.rotate(90)]), "ok"),  # animated PNG: first frame
    (encode(SMALL, "GIF", save_all=True, append_images=[SMALL.rotate(90)]), 422),  # animated GIF: not accepted
    (encode(SMALL, "BMP"), 422),
    (b"", 422),
    (png_header_only(0, 10), 422),
])
def test_awkward_but_real_formats(data, expected):
    assert run_pipeline(data) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_base64_field(text):
    try:
        data = parse_frame_payload(text, MAX_BYTES)
    except FrameError as err:
        assert http_status(err) in (400, 413)
        return
    run_pipeline(data)


def test_data_url_of_random_payload():
    payload = "data:image/jpeg;base64," + base64.b64encode(b"\x00" * 100).decode()
    assert run_pipeline(parse_frame_payload(payload, MAX_BYTES)) == 422
