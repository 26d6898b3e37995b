"""A frame's answer, built in one place from the typed stage results (pure)."""
from __future__ import annotations

from dataclasses import asdict

from api.schemas import (AnalyzeFrameResponse, Calibration, DetectedObject, EventOut, Expression, FrameQuality,
                         GazeRatio, HeadPose, Identity, StageLatency)
from contracts import Detections, FaceResult, RiskUpdate


def frame_response(session_id: str, face: FaceResult, detections: Detections, update: RiskUpdate,
                   latency: StageLatency, objects_age_s: float | None = None) -> AnalyzeFrameResponse:
    """`objects_age_s`: None when YOLO ran on this frame, else the age of the reused detections."""
    usable = update.usable
    quality = face.quality
    return AnalyzeFrameResponse(
        session_id=session_id,
        cheating=update.cheating,
        risk_score=update.risk_score,
        attention=update.attention,
        gaze=update.gaze,
        faces=face.faces,
        presence=("present" if face.faces else "absent") if usable else "unknown",
        objects=[DetectedObject(**d.to_dict()) for d in detections.objects],
        objects_reused=objects_age_s is not None,
        objects_age_s=objects_age_s or 0.0,
        events=[EventOut(**e) for e in update.open_events],
        events_opened=list(update.opened),
        events_closed=list(update.closed),
        head_pose=HeadPose(**asdict(face.head_pose)) if face.head_pose else None,
        expression=Expression(**asdict(face.expression), talking=update.talking) if face.expression else None,
        frame_quality=FrameQuality(usable=usable, issues=list(update.quality_issues), brightness=quality.brightness,
                                   contrast=quality.contrast, sharpness=quality.sharpness),
        gaze_ratio=GazeRatio(**asdict(face.gaze_ratio)) if face.gaze_ratio else None,
        frame_time=update.frame_time,
        calibration=Calibration(**update.calibration.to_dict()),
        late=update.late,
        duplicate=update.duplicate,
        identity=Identity(**(update.identity or {"status": "off"})),
        latency_ms=latency,
    )
