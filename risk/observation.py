"""What one frame showed, reduced to what the risk rules need, and which conditions it meets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from risk.calibrate import Baseline
from risk.config import RiskConfig

AWAY_GAZES = ("left", "right", "up", "down")


@dataclass
class Observation:
    t: float  # capture time in seconds (client timestamp mapped to server time, else arrival)
    faces: int
    gaze: str = "unknown"
    yaw: float | None = None
    pitch: float | None = None
    gaze_ratio: dict[str, float] | None = None
    second_face_confidence: float = 0.0
    persons: list[float] = field(default_factory=list)  # confidences, best first
    objects: dict[str, float] = field(default_factory=dict)  # label -> best confidence
    eyes_closed: bool = False
    mouth_openness: float | None = None
    talking: bool = False  # set by the session from recent frames
    usable: bool = True  # False: too dark/covered/frozen to judge; says nothing about presence
    digest: str | None = None  # pixel digest, for frozen and duplicate frames

    @classmethod
    def from_results(cls, t: float, face: dict[str, Any], objects: list[dict[str, Any]],
                     usable: bool = True) -> "Observation":
        best: dict[str, float] = {}
        persons = []
        for det in objects:
            if det["label"] == "person":
                persons.append(det["confidence"])
            best[det["label"]] = max(best.get(det["label"], 0.0), det["confidence"])
        face_confs = sorted((b["confidence"] for b in face.get("face_boxes", [])), reverse=True)
        pose = face.get("head_pose") or {}
        expression = face.get("expression") or {}
        return cls(
            t=float(t),
            faces=int(face.get("faces", 0)),
            gaze=face.get("gaze", "unknown"),
            yaw=pose.get("yaw"),
            pitch=pose.get("pitch"),
            gaze_ratio=face.get("gaze_ratio"),
            second_face_confidence=face_confs[1] if len(face_confs) > 1 else 0.0,
            persons=sorted(persons, reverse=True),
            objects=best,
            eyes_closed=bool(expression.get("eyes_closed", False)),
            mouth_openness=expression.get("mouth_openness"),
            usable=usable,
            digest=(face.get("quality") or {}).get("digest"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Observation":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Relative:
    """Gaze and head pose relative to the candidate's calibrated baseline."""

    gaze: str
    yaw: float | None
    pitch: float | None


def relative_to(obs: Observation, baseline: Baseline | None, classify_gaze) -> Relative:
    if baseline is None or not baseline.accepted:
        return Relative(obs.gaze, obs.yaw, obs.pitch)
    yaw = None if obs.yaw is None else obs.yaw - baseline.yaw
    pitch = None if obs.pitch is None else obs.pitch - baseline.pitch
    gaze = obs.gaze
    if obs.gaze_ratio and gaze != "unknown" and classify_gaze is not None:
        gaze = classify_gaze(obs.gaze_ratio["horizontal"] - baseline.gaze_horizontal,
                             obs.gaze_ratio["vertical"] - baseline.gaze_vertical)
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


def frame_usable(faces: int, issues: list[str]) -> bool:
    """Whether a frame can be judged. A found face outweighs darkness or blur (the low-light webcam
    still shows the candidate); a covered camera or a frozen picture never can be."""
    if "covered" in issues or "frozen" in issues:
        return False
    return faces > 0 or not issues


def attentive(obs: Observation, rel: Relative, cfg: RiskConfig) -> bool:
    """Present, facing the screen and looking at it."""
    return obs.faces == 1 and rel.gaze == "center" and not head_turned(rel, cfg)
