"""Change-gated detection (pipeline/gate.py): when YOLO runs, and that skipping it loses nothing.

The unit tests drive the gate with real webcam frames and explicit times; the replay tests run the
development clips and a clip composited at test time (a real phone moved into the webcam frames)
through the face stage, the gate and the risk engine with the real models, gated and ungated.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from contracts import Baseline, Detection, Detections, FaceBox, FaceResult, FrameQuality, HeadPose, RiskUpdate
from pipeline.gate import DetectorGate, changed_fraction, thumbnail
from settings import AppConfig, DetectorGateConfig, load_args
from tests.conftest import FIXTURES, needs_fixtures, needs_models, shared_weights_path

QUALITY = FrameQuality(issues=(), brightness=120.0, contrast=40.0, sharpness=100.0, digest="d")
PERSON = Detections(objects=(Detection("person", 0.9, (0, 0, 10, 10)),), batch_size=1, latency_ms=1.0)
PHONE = Detections(objects=PERSON.objects + (Detection("cell phone", 0.5, (1, 1, 3, 3)),), batch_size=1, latency_ms=1.0)


def face(faces: int = 1, yaw: float = 0.0, pitch: float = 0.0) -> FaceResult:
    boxes = tuple(FaceBox(x=1, y=1, w=5, h=5, confidence=0.9) for _ in range(faces))
    return FaceResult(faces=faces, face_boxes=boxes, quality=QUALITY,
                      head_pose=HeadPose(yaw=yaw, pitch=pitch, roll=0.0) if faces else None)


def update(*open_types: str) -> RiskUpdate:
    return RiskUpdate(risk_score=0, attention=100, cheating=False, frame_time=0.0, usable=True, quality_issues=(),
                      gaze="center", talking=False, calibration=Baseline(),
                      open_events=tuple({"type": kind, "id": kind} for kind in open_types))


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@pytest.fixture(scope="module")
def webcam() -> np.ndarray:
    if FIXTURES is None:
        pytest.skip("needs ../shared/fixtures")
    return cv2.imread(str(FIXTURES / "images" / "webcam_single_face_center.jpg"))


def seen(gate: DetectorGate, image: bytes, t: float, detections: Detections = PERSON, faces: int = 1) -> None:
    """A frame YOLO ran on, then scored."""
    decision = gate.before_models("s", image, now=t)
    gate.detected("s", decision.thumbnail, detections, now=t)
    gate.scored("s", face(faces), update())


def test_config_defaults_are_the_bounds_the_issue_sets():
    cfg = DetectorGateConfig()
    assert cfg.enabled and cfg.max_detection_age_s <= 3.0
    with pytest.raises(ValueError):
        DetectorGateConfig(max_detection_age_s=5)


@needs_fixtures
def test_the_thumbnail_is_small_grey_and_exposure_neutral(webcam):
    thumb = thumbnail(jpeg(webcam), 8)
    assert thumb.shape == (webcam.shape[0] // 8, webcam.shape[1] // 8)
    brighter = thumbnail(jpeg(cv2.convertScaleAbs(webcam, alpha=1.0, beta=30)), 8)
    assert changed_fraction(thumb, brighter, 25) < 0.02  # a global exposure shift is not change
    assert thumbnail(b"not an image", 8) is None


@needs_fixtures
def test_a_cold_session_runs_yolo_then_a_still_frame_reuses_it(webcam):
    gate = DetectorGate(DetectorGateConfig(), max_sessions=4)
    assert gate.before_models("s", jpeg(webcam), now=0.0).reason == "cold"
    seen(gate, jpeg(webcam), 0.0)
    noisy = np.clip(webcam.astype(np.int16) + np.random.default_rng(1).integers(-3, 4, webcam.shape), 0, 255)
    decision = gate.before_models("s", jpeg(noisy.astype(np.uint8)), now=1.0)
    assert not decision.run and decision.reason == "reused" and decision.changed < 0.02
    assert gate.after_face("s", face()) is None  # the face stage agrees: nothing new
    detections, age = gate.reused("s", now=1.0)
    assert detections == PERSON and age == pytest.approx(1.0)


@needs_fixtures
def test_yolo_runs_on_change_on_age_on_objects_and_on_face_cues(webcam):
    cfg = DetectorGateConfig(stale_recheck="inline")
    gate = DetectorGate(cfg, max_sessions=4)
    seen(gate, jpeg(webcam), 0.0)
    moved = webcam.copy()
    h, w = moved.shape[:2]
    moved[h // 2:h // 2 + h // 5, w - w // 4:] = 255  # something the size of a phone comes in
    assert gate.before_models("s", jpeg(moved), now=0.5).reason == "changed"
    assert gate.before_models("s", jpeg(webcam), now=cfg.max_detection_age_s + 0.1).reason == "stale"
    assert gate.after_face("s", face(faces=0)) == "faces"
    assert gate.after_face("s", face(faces=2)) == "faces"
    assert gate.after_face("s", face(yaw=cfg.head_yaw_deg + 1)) == "head_turned"
    assert gate.after_face("s", face(pitch=-cfg.head_pitch_deg - 1)) == "head_turned"
    seen(gate, jpeg(webcam), 1.0, detections=PHONE)  # the last detections hold a phone: every frame
    assert gate.before_models("s", jpeg(webcam), now=1.5).reason == "objects"
    seen(gate, jpeg(webcam), 2.0)
    gate.scored("s", face(), update("PHONE_DETECTED"))  # an object event still open: every frame
    assert gate.before_models("s", jpeg(webcam), now=2.5).reason == "objects"
    gate.scored("s", face(), update("LOOKING_AWAY"))  # not an object event
    assert not gate.before_models("s", jpeg(webcam), now=2.5).run


@needs_fixtures
def test_a_background_recheck_reuses_now_and_serves_the_next_frames(webcam):
    cfg = DetectorGateConfig(stale_recheck="background")
    gate = DetectorGate(cfg, max_sessions=4)
    seen(gate, jpeg(webcam), 0.0)
    stale_at = cfg.max_detection_age_s + 0.5
    decision = gate.before_models("s", jpeg(webcam), now=stale_at)
    assert not decision.run and decision.recheck  # answered with the reused detections, re-checked off the path
    assert gate.reused("s", now=stale_at)[1] == pytest.approx(stale_at)
    gate.recheck_started("s")
    assert not gate.before_models("s", jpeg(webcam), now=stale_at + 0.5).recheck  # one re-check at a time
    gate.recheck_failed("s")  # no answer (saturated): the next frame asks again
    assert gate.before_models("s", jpeg(webcam), now=stale_at + 0.6).recheck
    gate.recheck_started("s")
    gate.detected("s", decision.thumbnail, PHONE, now=stale_at)  # the re-check found a phone
    assert gate.reused("s", now=stale_at + 1.0) == (PHONE, pytest.approx(1.0))
    assert gate.before_models("s", jpeg(webcam), now=stale_at + 1.0).reason == "objects"  # the next frame: inline
    gate.detected("s", decision.thumbnail, PERSON, now=stale_at - 1)  # an older frame's late answer ...
    assert gate.reused("s", now=stale_at + 1.0)[0] == PHONE  # ... never replaces newer detections
    seen(gate, jpeg(webcam), stale_at + 2)
    moved = webcam.copy()
    moved[: webcam.shape[0] // 4] = 255
    assert gate.before_models("s", jpeg(moved), now=stale_at + 9).reason == "changed"  # stale and changed: inline


@needs_fixtures
def test_a_lost_entry_means_run_and_memory_is_bounded(webcam):
    gate = DetectorGate(DetectorGateConfig(), max_sessions=2)
    seen(gate, jpeg(webcam), 0.0)
    gate.forget("s")  # the session ended (or another replica had it): run, never a stale answer
    assert gate.before_models("s", jpeg(webcam), now=0.1).reason == "cold"
    for sid in ("a", "b", "c"):
        gate.detected(sid, thumbnail(jpeg(webcam), 8), PERSON, now=0.0)
    assert gate.before_models("a", jpeg(webcam), now=0.1).reason == "cold"  # evicted, the oldest
    assert DetectorGate(DetectorGateConfig(enabled=False), 2).before_models("b", jpeg(webcam)).reason == "off"


# ---- nothing lost: the clips, gated vs ungated, with the real models -------------------------------------------
@pytest.fixture(scope="module")
def replay():
    from vision.detector import ObjectDetectorModel
    from vision.evaluation import composite_phone_clip, read_video, replay_gated
    from vision.face_gaze import FaceGazeAnalyzer

    args = load_args()
    args["detector"]["weights"] = shared_weights_path()
    cfg = AppConfig(**args)
    analyzer, detector = FaceGazeAnalyzer(cfg.face_gaze), ObjectDetectorModel(cfg.detector)
    fps = 4.0
    center = [f for _, f in read_video(FIXTURES / "videos" / "webcam_gaze_center.mp4", 6)]
    clips = {"center": center,
             "left": [f for _, f in read_video(FIXTURES / "videos" / "webcam_gaze_center_left_center.mp4", 6)],
             "phone": composite_phone_clip(center, FIXTURES, fps, enters_s=3.0, leaves_s=7.0)}
    assert cfg.detector_gate.stale_recheck == "background"  # config/serve.yaml's; inline is replayed too
    inline = cfg.model_copy(update={"detector_gate": cfg.detector_gate.model_copy(update={"stale_recheck": "inline"})})
    return {name: (replay_gated(frames, fps, analyzer, detector, cfg, gated=True),
                   replay_gated(frames, fps, analyzer, detector, cfg, gated=False),
                   replay_gated(frames, fps, analyzer, detector, inline, gated=True))
            for name, frames in clips.items()}


@needs_fixtures
@needs_models
@pytest.mark.parametrize("clip", ["center", "left", "phone"])
def test_gating_opens_the_same_events_at_the_same_times(replay, clip):
    from vision.evaluation import same_events

    gated, ungated, inline = replay[clip]
    assert ungated["yolo_frames"] == ungated["frames"]
    assert same_events(gated["events"], ungated["events"]), (gated["events"], ungated["events"])
    # with stale re-checks on the answer's path (detector_gate.stale_recheck: inline) too
    assert same_events(inline["events"], ungated["events"]), (inline["events"], ungated["events"])


@needs_fixtures
@needs_models
def test_gating_skips_most_still_frames_and_the_composited_phone_still_opens_its_event(replay):
    for clip in ("center", "left"):
        gated, _, _ = replay[clip]
        assert gated["yolo_frames"] <= 0.5 * gated["frames"], (clip, gated["decisions"])
    gated, _, _ = replay["phone"]
    phone = [e for e in gated["events"] if e["type"] == "PHONE_DETECTED"]
    assert phone and 3.0 <= phone[0]["start"] <= 4.5, gated["events"]
