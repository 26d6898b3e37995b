"""Accuracy floors on the labelled fixtures: the same evaluation as `make eval`, so a regression in
any signal fails CI. Floors come from docs/ACCURACY.md (measured), minus nothing."""
from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, needs_fixtures, needs_models, shared_weights_path

pytestmark = [needs_fixtures, needs_models]


@pytest.fixture(scope="module")
def metrics():
    from settings import AppConfig, load_args
    from vision.evaluation import evaluate

    cfg = AppConfig(**load_args())
    detector_cfg = cfg.detector.model_copy(update={"weights": shared_weights_path()})
    result = evaluate(FIXTURES, detector_cfg, cfg.face_gaze, cfg.risk.gaze, video_stride=4,
                      yaw_limit=cfg.risk.head_yaw_limit_deg, pitch_limit=cfg.risk.head_pitch_limit_deg)
    return result["metrics"]


def test_face_counts(metrics):
    assert metrics["faces_within_range"]["hits"] >= 24
    assert metrics["false_faces_on_empty"]["hits"] == 0
    assert metrics["faces_within_range_low_light"]["rate"] == 1.0


def test_gaze_on_clips(metrics):
    video = metrics["video_gaze"]
    assert video["webcam_gaze_center_left_center.mp4 frames 150-230: left"]["rate"] >= 0.90
    assert video["webcam_gaze_center_left_center.mp4 frames 0-120: center"]["rate"] >= 0.90
    assert video["webcam_gaze_center_left_center.mp4 frames 260-end: center"]["rate"] >= 0.90
    assert video["webcam_gaze_center.mp4 all frames: center"]["rate"] >= 0.95


def test_eyes_turned_is_not_head_turned(metrics):
    video = metrics["video_gaze"]
    assert video["webcam_gaze_center_left_center.mp4 all frames: head not turned"]["rate"] >= 0.95
    assert metrics["gaze_photos"]["rate"] == 1.0
    assert metrics["head_turned_photos"]["hits"] >= 8


def test_objects(metrics):
    """Phones count only where a reported phone lies on the phone (vision.evaluation.PHONE_BOXES)."""
    assert metrics["phone_recall"]["hits"] >= 4 and metrics["phone_false_positive"]["hits"] == 0
    assert metrics["book_recall"]["hits"] == 3 and metrics["book_false_positive"]["hits"] == 0
    assert metrics["person_count"]["rate"] == 1.0
