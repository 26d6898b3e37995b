"""Frame payload parsing and header checks: every bad input is a FrameError whose problem the
error table (api/errors.py) answers with a 4xx status."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from api.errors import http_status
from errors import FrameError
from vision.frames import decode_image, inspect_image_header, parse_frame_payload

LIMIT = 1024 * 1024


def _png(width=8, height=6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(width=8, height=6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def test_plain_base64_and_data_url_give_the_same_bytes():
    data = _jpeg()
    b64 = base64.b64encode(data).decode()
    assert parse_frame_payload(b64, LIMIT) == data
    assert parse_frame_payload("data:image/jpeg;base64," + b64, LIMIT) == data
    assert parse_frame_payload(b64.rstrip("="), LIMIT) == data  # missing padding tolerated
    assert parse_frame_payload(b64[:10] + "\n" + b64[10:], LIMIT) == data  # line breaks tolerated


@pytest.mark.parametrize("payload, status, words", [
    ("", 400, "empty"),
    ("not base64 at all!!", 400, "not valid base64"),
    ("data:image/jpeg,abcd", 400, "base64-encoded"),
    ("====", 400, ""),
])
def test_bad_base64_is_400(payload, status, words):
    with pytest.raises(FrameError) as err:
        parse_frame_payload(payload, LIMIT)
    assert http_status(err.value) == status and words in str(err.value)


def test_too_large_is_413():
    big = base64.b64encode(b"x" * (LIMIT + 10)).decode()
    with pytest.raises(FrameError) as err:
        parse_frame_payload(big, LIMIT)
    assert http_status(err.value) == 413


def test_header_reads_format_and_size_without_decoding():
    header = inspect_image_header(_png(8, 6), 10_000)
    assert (header.format, header.width, header.height) == ("PNG", 8, 6)
    header = inspect_image_header(_jpeg(20, 10), 10_000)
    assert (header.format, header.width, header.height) == ("JPEG", 20, 10)


@pytest.mark.parametrize("data", [b"hello world, not an image", b"\x00" * 64, b"\xff\xd8\xff"])
def test_not_an_image_is_422(data):
    with pytest.raises(FrameError) as err:
        inspect_image_header(data, 10_000)
    assert http_status(err.value) == 422 and "not an image" in str(err.value)


def test_unsupported_format_is_422():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="GIF")
    with pytest.raises(FrameError) as err:
        inspect_image_header(buf.getvalue(), 10_000)
    assert http_status(err.value) == 422 and "GIF" in str(err.value)


def test_too_many_pixels_is_413():
    with pytest.raises(FrameError) as err:
        inspect_image_header(_png(200, 100), 10_000)
    assert http_status(err.value) == 413


def test_truncated_jpeg_fails_decoding_with_422():
    data = _jpeg(64, 48)
    with pytest.raises(FrameError) as err:
        decode_image(data[:20])
    assert http_status(err.value) == 422


def test_decode_gives_bgr():
    image = decode_image(_png(8, 6))
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (30, 200, 10)  # BGR
