"""Frame quality: dark, covered, blurred and frozen frames are recognised; real low light is not lost."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from risk.observation import frame_usable, frozen
from tests.conftest import image_bytes, needs_fixtures
from vision.frames import decode_image
from settings import QualityConfig
from vision.quality import assess

CFG = QualityConfig()


def _webcam():
    return decode_image(image_bytes("webcam_single_face_center.jpg"))


def test_black_frame_is_covered():
    assert assess(np.zeros((480, 640, 3), np.uint8), CFG).issues == ("covered",)


def test_hand_over_lens_is_covered():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(25, 3, (480, 640, 3)), 0, 255).astype(np.uint8)  # dim, flat, sensor noise
    assert "covered" in assess(image, CFG).issues


@needs_fixtures
def test_very_dark_frame_is_too_dark():
    image = (_webcam().astype(np.float32) * 0.04).astype(np.uint8)
    image[20:80, 20:80] = 200  # a lamp in a dark room: structure, so not "covered"
    assert assess(image, CFG).issues == ("too_dark",)


@needs_fixtures
def test_heavy_blur_is_too_blurred():
    image = cv2.GaussianBlur(_webcam(), (0, 0), 8)
    assert "too_blurred" in assess(image, CFG).issues


@needs_fixtures
@pytest.mark.parametrize("name", ["webcam_single_face_center.jpg", "webcam_lowlight_synthetic.jpg", "coco_lowlight_man.jpg"])
def test_real_frames_are_usable(name):
    quality = assess(decode_image(image_bytes(name)), CFG)
    assert frame_usable(1, quality.issues)


@needs_fixtures
def test_frozen_is_the_same_picture_not_a_still_person():
    image = _webcam()
    first = assess(image, CFG).digest
    again = assess(image.copy(), CFG).digest
    rng = np.random.default_rng(1)
    noisy = np.clip(image.astype(np.int16) + rng.normal(0, 1, image.shape), 0, 255).astype(np.uint8)
    assert frozen(first, again)
    assert not frozen(first, assess(noisy, CFG).digest)  # a still person: sensor noise differs
    assert not frozen(None, first)


@needs_fixtures
def test_consecutive_clip_frames_are_not_frozen():
    from tests.conftest import FIXTURES
    from vision.evaluation import read_video

    digests = [assess(frame, CFG).digest for _, frame in read_video(FIXTURES / "videos" / "webcam_gaze_center.mp4", 1)]
    assert len(digests) > 200
    assert not any(frozen(a, b) for a, b in zip(digests, digests[1:]))


def test_unusable_frames_never_count_as_absence():
    assert not frame_usable(0, ["covered"])
    assert not frame_usable(0, ["too_dark"])
    assert not frame_usable(1, ["frozen"])
    assert frame_usable(1, ["too_dark"])  # a face was found in the dark: judge it
    assert frame_usable(0, [])  # a good frame with nobody in it: that is absence
