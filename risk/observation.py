"""What one frame showed, reduced to what the risk rules need, and which conditions it meets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from risk.config import RiskConfig

AWAY_GAZES = ("left", "right", "up", "down")


@dataclass
class Observation:
    t: float  # capture time in seconds (client timestamp, else arrival time)
    faces: int
    gaze: str = "unknown"
    yaw: float | None = None
    pitch: float | None = None
    second_face_confidence: float = 0.0
    persons: list[float] = field(default_factory=list)  # confidences, best first
    objects: dict[str, float] = field(default_factory=dict)  # label -> best confidence
    usable: bool = True  # False: too dark/covered/frozen to judge; says nothing about presence

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
        return cls(
            t=float(t),
            faces=int(face.get("faces", 0)),
            gaze=face.get("gaze", "unknown"),
            yaw=pose.get("yaw"),
            pitch=pose.get("pitch"),
            second_face_confidence=face_confs[1] if len(face_confs) > 1 else 0.0,
            persons=sorted(persons, reverse=True),
            objects=best,
            usable=usable,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_turned(obs: Observation, cfg: RiskConfig) -> bool:
    if obs.yaw is None or obs.pitch is None:
        return False
    return abs(obs.yaw) > cfg.head_yaw_limit_deg or abs(obs.pitch) > cfg.head_pitch_limit_deg


def conditions(obs: Observation, cfg: RiskConfig) -> dict[str, float | None]:
    """For each event type, the frame's confidence that its condition holds, or None when it does not."""
    devices = [obs.objects[label] for label in cfg.device_labels if label in obs.objects]
    turned = head_turned(obs, cfg)
    return {
        "FACE_MISSING": 1.0 if obs.faces == 0 else None,
        "MULTIPLE_FACES": (obs.second_face_confidence or 1.0) if obs.faces >= 2 else None,
        "EXTRA_PERSON": obs.persons[cfg.extra_person_min - 1] if len(obs.persons) >= cfg.extra_person_min else None,
        # A turned head is HEAD_TURNED, not also LOOKING_AWAY: the eyes are read relative to the head.
        "LOOKING_AWAY": 1.0 if obs.faces >= 1 and obs.gaze in AWAY_GAZES and not turned else None,
        "HEAD_TURNED": min(1.0, max(abs(obs.yaw or 0) / 90, abs(obs.pitch or 0) / 90)) if turned else None,
        "PHONE_DETECTED": obs.objects.get("cell phone"),
        "BOOK_DETECTED": obs.objects.get("book"),
        "DEVICE_DETECTED": max(devices) if devices else None,
    }


def frame_usable(faces: int, issues: list[str]) -> bool:
    """Whether a frame can be judged. A found face outweighs darkness or blur (the low-light webcam
    still shows the candidate); a covered camera or a frozen picture never can be."""
    if "covered" in issues or "frozen" in issues:
        return False
    return faces > 0 or not issues


def attentive(obs: Observation, cfg: RiskConfig) -> bool:
    """Present, facing the screen and looking at it."""
    return obs.faces == 1 and obs.gaze == "center" and not head_turned(obs, cfg)
