"""What one frame showed, reduced to what the risk rules need, and which conditions it meets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from contracts import Baseline, Detection, FaceResult, GazeRatio
from risk.gaze import AWAY_GAZES, classify_gaze, raw_gaze
from settings import GazeConfig, RiskConfig


@dataclass
class Observation:
    t: float  # capture time in seconds (client timestamp mapped to server time, else arrival)
    faces: int
    gaze: str = "unknown"
    yaw: float | None = None
    pitch: float | None = None
    gaze_ratio: GazeRatio | None = None
    second_face_confidence: float = 0.0
    persons: list[float] = field(default_factory=list)  # confidences, best first
    objects: dict[str, float] = field(default_factory=dict)  # label -> best confidence
    eyes_closed: bool = False
    mouth_openness: float | None = None
    talking: bool = False  # set by the session from recent frames
    usable: bool = True  # False: too dark/covered/frozen to judge; says nothing about presence
    digest: str | None = None  # pixel digest, for frozen and duplicate frames
    face_box: tuple[float, float, float, float] | None = None  # the largest face: x, y, w, h in pixels
    # Face descriptors delivered with this frame (risk.identity): {t, kind, descriptor | None, reason}
    identity: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_results(cls, t: float, face: FaceResult, detections: Sequence[Detection],
                     gaze_cfg: GazeConfig) -> "Observation":
        """What the models saw in one frame, as the rules read it (the one place this is decided,
        for the session actor and the one-process baseline alike)."""
        best: dict[str, float] = {}
        persons = []
        for det in detections:
            if det.label == "person":
                persons.append(det.confidence)
            best[det.label] = max(best.get(det.label, 0.0), det.confidence)
        face_confs = sorted((b.confidence for b in face.face_boxes), reverse=True)
        main = max(face.face_boxes, key=lambda b: b.w * b.h, default=None)
        pose, expression = face.head_pose, face.expression
        return cls(
            t=float(t),
            faces=face.faces,
            gaze=raw_gaze(face, gaze_cfg),
            yaw=pose.yaw if pose else None,
            pitch=pose.pitch if pose else None,
            gaze_ratio=face.gaze_ratio,
            second_face_confidence=face_confs[1] if len(face_confs) > 1 else 0.0,
            persons=sorted(persons, reverse=True),
            objects=best,
            eyes_closed=expression.eyes_closed if expression else False,
            mouth_openness=expression.mouth_openness if expression else None,
            usable=frame_usable(face.faces, face.quality.issues),
            digest=face.quality.digest,
            face_box=(round(main.x, 1), round(main.y, 1), round(main.w, 1), round(main.h, 1)) if main else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Observation":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("gaze_ratio") is not None:
            values["gaze_ratio"] = GazeRatio(**values["gaze_ratio"])
        if values.get("face_box") is not None:
            values["face_box"] = tuple(values["face_box"])
        return cls(**values)


@dataclass
class Relative:
    """Gaze and head pose relative to the candidate's calibrated baseline."""

    gaze: str
    yaw: float | None
    pitch: float | None


def relative_to(obs: Observation, baseline: Baseline | None, gaze_cfg: GazeConfig) -> Relative:
    if baseline is None or not baseline.accepted:
        return Relative(obs.gaze, obs.yaw, obs.pitch)
    yaw = None if obs.yaw is None else obs.yaw - baseline.yaw
    pitch = None if obs.pitch is None else obs.pitch - baseline.pitch
    gaze = obs.gaze
    if obs.gaze_ratio and gaze != "unknown":
        gaze = classify_gaze(obs.gaze_ratio.horizontal - baseline.gaze_horizontal,
                             obs.gaze_ratio.vertical - baseline.gaze_vertical, gaze_cfg)
    return Relative(gaze, yaw, pitch)


def head_turned(rel: Relative, cfg: RiskConfig) -> bool:
    if rel.yaw is None or rel.pitch is None:
        return False
    return abs(rel.yaw) > cfg.head_yaw_limit_deg or abs(rel.pitch) > cfg.head_pitch_limit_deg


def conditions(obs: Observation, rel: Relative, cfg: RiskConfig, calibrated: bool) -> dict[str, float | None]:
    """For each event type, the frame's confidence that its condition holds, or None when it does not.

    Gaze and head rules wait for calibration: before it, "turned" may just be where the camera sits.
    """
    devices = [obs.objects[label] for label in cfg.device_labels if label in obs.objects]
    turned = calibrated and head_turned(rel, cfg)
    return {
        "FACE_MISSING": 1.0 if obs.faces == 0 else None,
        "MULTIPLE_FACES": (obs.second_face_confidence or 1.0) if obs.faces >= 2 else None,
        "EXTRA_PERSON": obs.persons[cfg.extra_person_min - 1] if len(obs.persons) >= cfg.extra_person_min else None,
        # A turned head is HEAD_TURNED, not also LOOKING_AWAY: the eyes are read relative to the head.
        "LOOKING_AWAY": 1.0 if calibrated and obs.faces >= 1 and rel.gaze in AWAY_GAZES and not turned else None,
        "HEAD_TURNED": min(1.0, max(abs(rel.yaw or 0), abs(rel.pitch or 0)) / 90) if turned else None,
        "PHONE_DETECTED": obs.objects.get("cell phone"),
        "BOOK_DETECTED": obs.objects.get("book"),
        "DEVICE_DETECTED": max(devices) if devices else None,
        "TALKING": 1.0 if obs.faces >= 1 and obs.talking else None,
        "EYES_CLOSED": 1.0 if obs.faces >= 1 and obs.eyes_closed else None,
        "LOW_QUALITY": None,  # a usable frame; unusable ones are handled by the engine
    }


def frozen(previous_digest: str | None, digest: str | None) -> bool:
    """The same picture again, pixel for pixel: the camera feed stalled or a still image is being
    replayed. A live sensor's noise makes two real frames differ even when nobody moves (a
    near-identical test would flag a still candidate; an exact one cannot)."""
    return bool(previous_digest) and previous_digest == digest


def frame_usable(faces: int, issues: Sequence[str]) -> bool:
    """Whether a frame can be judged. A found face outweighs darkness or blur (the low-light webcam
    still shows the candidate); a covered camera or a frozen picture never can be."""
    if "covered" in issues or "frozen" in issues:
        return False
    return faces > 0 or not issues


def attentive(obs: Observation, rel: Relative, cfg: RiskConfig) -> bool:
    """Present, facing the screen and looking at it."""
    return obs.faces == 1 and rel.gaze == "center" and not head_turned(rel, cfg)
