"""Change-gated detection: run YOLO on a frame only when it can show something new.

An interview webcam at 1-5 frames/s is mostly one still scene, and a phone, a book or a second
person cannot appear without changing the picture. So, per session, the gate keeps the grayscale
thumbnail of the last frame YOLO saw and its detections, and YOLO runs when
- the cache is cold (first frame, another replica's session, an evicted entry) or gating is off;
- the last detections found something (a phone, book, device, a second person) or an object event
  is open: every frame, so persistence and evidence see real detections;
- the last detection is older than `max_detection_age_s` (`stale_recheck: background`: YOLO runs on
  that frame off its answer's path, and the result serves the session's next frames; a re-check that
  finds something makes the next frame run YOLO inline, "objects");
- the thumbnail changed: more than `changed_fraction` of its pixels moved by more than
  `pixel_threshold` grey levels against the last thumbnail YOLO saw (not the previous frame, so slow
  creep adds up: Reducto, SIGCOMM 2020; NoScope, VLDB 2017);
- the face stage says so: not exactly one face, a face count that changed, or the head turned.
Otherwise the frame reuses the session's last detections and its answer says so (`objects_reused`,
`objects_age_s`). A lost or cold cache means "run YOLO", never a wrong answer.

The state is this ingress replica's memory (~5 KB per session, bounded). Pure code (numpy + cv2).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from contracts import Detections, FaceResult, RiskUpdate
from settings import DetectorGateConfig

# Event types that come from the detector: while one is open, YOLO runs on every frame.
OBJECT_EVENTS = frozenset({"PHONE_DETECTED", "BOOK_DETECTED", "DEVICE_DETECTED", "EXTRA_PERSON"})
_REDUCED = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def thumbnail(image_bytes: bytes, reduction: int) -> np.ndarray | None:
    """A small grayscale copy, decoded at reduced size (JPEG decodes at 1/8 scale directly), blurred
    against sensor noise and centred on its mean so a global exposure shift is not "change".
    None when the bytes do not decode (the models will say why)."""
    small = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), _REDUCED[reduction])
    if small is None or small.size == 0:
        return None
    small = cv2.GaussianBlur(small, (3, 3), 0).astype(np.int16)
    return small - int(small.mean())


def changed_fraction(a: np.ndarray, b: np.ndarray, pixel_threshold: int) -> float:
    """Share of pixels that moved by more than pixel_threshold grey levels; 1.0 when the sizes differ."""
    if a.shape != b.shape:
        return 1.0
    return float(np.count_nonzero(np.abs(a - b) > pixel_threshold)) / a.size


def _interesting(detections: Detections) -> bool:
    """Something the risk rules act on: any non-person object, or more than one person."""
    persons = sum(1 for d in detections.objects if d.label == "person")
    return persons > 1 or any(d.label != "person" for d in detections.objects)


@dataclass
class _SessionView:
    thumbnail: np.ndarray | None  # of the last frame YOLO saw
    detections: Detections  # YOLO's answer on it
    detected_at: float  # time.monotonic() of that answer
    faces: int | None = None  # the face count of the session's last frame
    object_event_open: bool = False
    recheck_pending: bool = False  # a background re-check of a stale detection is running


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str  # why YOLO runs (off, cold, objects, stale, changed, faces, head_turned) or "reused"
    thumbnail: np.ndarray | None
    changed: float | None = None  # the changed fraction, when it was measured
    recheck: bool = False  # reuse now, and re-check this frame with YOLO off the answer's path
    at: float = 0.0  # time.monotonic() of the decision: the age of what YOLO finds on this frame


class DetectorGate:
    def __init__(self, cfg: DetectorGateConfig, max_sessions: int):
        self.cfg = cfg
        self.max_sessions = max_sessions
        self._views: OrderedDict[str, _SessionView] = OrderedDict()

    def before_models(self, session_id: str, image_bytes: bytes, now: float | None = None) -> Decision:
        """Whether YOLO must run on this frame, by what the gate knows before any model ran."""
        now = time.monotonic() if now is None else now
        if not self.cfg.enabled:
            return Decision(True, "off", None, at=now)
        thumb = thumbnail(image_bytes, self.cfg.thumbnail_reduction)
        view = self._views.get(session_id)
        if view is None or thumb is None or view.thumbnail is None:
            return Decision(True, "cold", thumb, at=now)
        self._views.move_to_end(session_id)
        if view.object_event_open or _interesting(view.detections):
            return Decision(True, "objects", thumb, at=now)
        stale = now - view.detected_at > self.cfg.max_detection_age_s
        if stale and self.cfg.stale_recheck == "inline":
            return Decision(True, "stale", thumb, at=now)
        changed = changed_fraction(thumb, view.thumbnail, self.cfg.pixel_threshold)
        if changed > self.cfg.changed_fraction:
            return Decision(True, "changed", thumb, changed, at=now)
        return Decision(False, "reused", thumb, changed, recheck=stale and not view.recheck_pending, at=now)

    def after_face(self, session_id: str, face: FaceResult) -> str | None:
        """A face-stage cue that YOLO must run after all (the reason), else None."""
        view = self._views.get(session_id)
        if view is None:
            return "cold"
        if face.faces != 1 or face.faces != view.faces:
            return "faces"
        pose = face.head_pose
        if pose is not None and (abs(pose.yaw) > self.cfg.head_yaw_deg or abs(pose.pitch) > self.cfg.head_pitch_deg):
            return "head_turned"
        return None

    def reused(self, session_id: str, now: float | None = None) -> tuple[Detections, float]:
        """The session's last detections and their age in seconds."""
        view = self._views[session_id]
        now = time.monotonic() if now is None else now
        return view.detections, now - view.detected_at

    def detected(self, session_id: str, thumb: np.ndarray | None, detections: Detections,
                 now: float | None = None, recheck: bool = False) -> None:
        """YOLO ran on the frame decided at `now`: it becomes the session's reference, unless a later
        frame's detections already are (a background re-check answers after them, and adds no
        entry for a session forgotten meanwhile)."""
        now = time.monotonic() if now is None else now
        view = self._views.get(session_id)
        if view is None and recheck:
            return
        if view is None:
            if len(self._views) >= self.max_sessions:
                self._views.popitem(last=False)  # bounded memory: the least recently seen goes
            view = self._views[session_id] = _SessionView(thumb, detections, now)
        view.recheck_pending = False
        if now >= view.detected_at:
            view.thumbnail, view.detections, view.detected_at = thumb, detections, now

    def recheck_started(self, session_id: str) -> None:
        """A background re-check runs for this session: the next frames do not start another."""
        view = self._views.get(session_id)
        if view is not None:
            view.recheck_pending = True

    def recheck_failed(self, session_id: str) -> None:
        """A background re-check got no answer: the next frame asks again."""
        view = self._views.get(session_id)
        if view is not None:
            view.recheck_pending = False

    def scored(self, session_id: str, face: FaceResult, update: RiskUpdate) -> None:
        """What the session made of the frame: its face count and whether an object event is open."""
        view = self._views.get(session_id)
        if view is not None:
            view.faces = face.faces
            view.object_event_open = any(e.get("type") in OBJECT_EVENTS for e in update.open_events)

    def forget(self, session_id: str) -> None:
        self._views.pop(session_id, None)
