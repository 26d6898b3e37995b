"""Faces, gaze, head pose and expression features from MediaPipe (0.10.21 `solutions` API).

Pure code (no Ray): `FaceGazeAnalyzer.analyze(image)` takes a BGR array and returns a plain dict.

- Face count comes from the full-range face detector: the face mesh misses small faces and, in
  static mode, invents a face on some non-face images.
- The main face (largest detection) gets the 478-point mesh with iris landmarks, from which we
  compute gaze direction, head pose and expression ratios.

Conventions (all in IMAGE coordinates, as the camera sends the frame, not mirrored):
- gaze `left` = the irises sit toward the left edge of the frame.
- yaw > 0: the face points toward the image's right edge; pitch > 0: the face points up;
  roll > 0: the head tilts clockwise as seen in the image. Degrees.
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from vision.quality import QualityConfig, assess

# Face-mesh landmark indices (MediaPipe canonical topology, refine_landmarks=True adds 468-477).
# "Image-left eye" is the subject's right eye.
EYE_IMAGE_LEFT = {"outer": 33, "inner": 133, "upper": 159, "lower": 145, "iris": 468}
EYE_IMAGE_RIGHT = {"outer": 263, "inner": 362, "upper": 386, "lower": 374, "iris": 473}
FOREHEAD, CHIN = 10, 152
LIP_UPPER_INNER, LIP_LOWER_INNER, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 78, 308


class FaceGazeConfig(BaseModel):
    """Thresholds for the face/gaze model. Every field is set (with a comment) in config/serve.yaml."""

    detection_confidence: float = Field(0.5, ge=0, le=1)
    mesh_confidence: float = Field(0.5, ge=0, le=1)
    max_mesh_faces: int = Field(3, ge=1)
    gaze_horizontal_margin: float = Field(0.06, ge=0, le=0.5)
    gaze_vertical_margin: float = Field(0.12, ge=0, le=0.5)
    gaze_vertical_center: float = Field(0.45, ge=0, le=1)
    eyes_closed_ratio: float = Field(0.12, ge=0)
    mouth_open_ratio: float = Field(0.35, ge=0)
    smile_width_ratio: float = Field(0.62, ge=0)
    quality: QualityConfig = Field(default_factory=QualityConfig)


def _pt(landmarks: np.ndarray, index: int) -> np.ndarray:
    return landmarks[index]


def iris_ratios(landmarks: np.ndarray, eye: dict[str, int]) -> tuple[float, float]:
    """Iris position inside one eye: (horizontal 0=image-left corner..1=image-right, vertical 0=lid top..1=bottom)."""
    a, b = _pt(landmarks, eye["outer"])[:2], _pt(landmarks, eye["inner"])[:2]
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    iris = _pt(landmarks, eye["iris"])[:2]
    axis = right - left
    width = float(np.linalg.norm(axis))
    if width < 1e-6:
        return 0.5, 0.5
    horizontal = float(np.dot(iris - left, axis) / (width * width))
    upper, lower = _pt(landmarks, eye["upper"])[:2], _pt(landmarks, eye["lower"])[:2]
    height = float(lower[1] - upper[1])
    vertical = 0.5 if height < 1e-6 else float((iris[1] - upper[1]) / height)
    return horizontal, vertical


def eye_openness(landmarks: np.ndarray, eye: dict[str, int]) -> float:
    """Lid gap over eye width (an eye aspect ratio): about 0.25-0.35 open, under ~0.1 closed."""
    width = np.linalg.norm(_pt(landmarks, eye["outer"])[:2] - _pt(landmarks, eye["inner"])[:2])
    gap = np.linalg.norm(_pt(landmarks, eye["upper"])[:2] - _pt(landmarks, eye["lower"])[:2])
    return float(gap / width) if width > 1e-6 else 0.0


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width: about 0 closed, over ~0.3 clearly open."""
    width = np.linalg.norm(_pt(landmarks, MOUTH_LEFT)[:2] - _pt(landmarks, MOUTH_RIGHT)[:2])
    gap = np.linalg.norm(_pt(landmarks, LIP_UPPER_INNER)[:2] - _pt(landmarks, LIP_LOWER_INNER)[:2])
    return float(gap / width) if width > 1e-6 else 0.0


def smile_width(landmarks: np.ndarray) -> float:
    """Mouth width over the distance between the outer eye corners: wider when smiling."""
    eyes = np.linalg.norm(_pt(landmarks, EYE_IMAGE_LEFT["outer"])[:2] - _pt(landmarks, EYE_IMAGE_RIGHT["outer"])[:2])
    mouth = np.linalg.norm(_pt(landmarks, MOUTH_LEFT)[:2] - _pt(landmarks, MOUTH_RIGHT)[:2])
    return float(mouth / eyes) if eyes > 1e-6 else 0.0


def expression_label(eyes_closed: bool, mouth_open: bool, smiling: bool) -> str:
    """A coarse label from landmark geometry (a heuristic, not an emotion classifier)."""
    if eyes_closed:
        return "eyes_closed"
    if smiling:
        return "smiling"
    if mouth_open:
        return "mouth_open"
    return "neutral"


def head_pose(landmarks: np.ndarray) -> dict[str, float]:
    """Yaw/pitch/roll in degrees from the mesh's 3D landmarks (pixel units), no camera model needed.

    The face's right axis runs from the image-left eye corner to the image-right one, its down axis
    from forehead to chin; their cross product is the face normal.
    """
    right = _pt(landmarks, EYE_IMAGE_RIGHT["outer"]) - _pt(landmarks, EYE_IMAGE_LEFT["outer"])
    down = _pt(landmarks, CHIN) - _pt(landmarks, FOREHEAD)
    right = right / (np.linalg.norm(right) + 1e-9)
    down = down - np.dot(down, right) * right  # orthogonalise
    down = down / (np.linalg.norm(down) + 1e-9)
    toward_camera = -np.cross(right, down)  # MediaPipe z grows away from the camera
    yaw = math.degrees(math.atan2(toward_camera[0], -toward_camera[2]))
    pitch = math.degrees(math.atan2(-toward_camera[1], -toward_camera[2]))
    roll = math.degrees(math.atan2(right[1], right[0]))
    return {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1)}


def classify_gaze(horizontal: float, vertical: float, cfg: FaceGazeConfig) -> str:
    """Map iris ratios to a direction. Horizontal wins ties: it is the more reliable signal."""
    dx = horizontal - 0.5
    dy = vertical - cfg.gaze_vertical_center
    if abs(dx) > cfg.gaze_horizontal_margin and abs(dx) / cfg.gaze_horizontal_margin >= abs(dy) / cfg.gaze_vertical_margin:
        return "left" if dx < 0 else "right"
    if abs(dy) > cfg.gaze_vertical_margin:
        return "up" if dy < 0 else "down"
    return "center"


class FaceGazeAnalyzer:
    """Owns the MediaPipe solution objects. They are not thread-safe, so calls are serialised."""

    def __init__(self, cfg: FaceGazeConfig | None = None):
        import mediapipe as mp

        self.cfg = cfg or FaceGazeConfig()
        # model_selection=1: the full-range detector (faces up to ~5 m, smaller faces).
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.cfg.detection_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.cfg.max_mesh_faces,
            refine_landmarks=True,
            min_detection_confidence=self.cfg.mesh_confidence,
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._detector.close()
            self._mesh.close()

    def analyze(self, image_bgr: np.ndarray) -> dict[str, Any]:
        import cv2

        height, width = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        with self._lock:
            detections = self._detector.process(rgb).detections or []
            boxes = [self._box(d, width, height) for d in detections]
            mesh_faces = []
            if boxes:
                result = self._mesh.process(rgb)
                mesh_faces = result.multi_face_landmarks or []

        quality = assess(image_bgr, self.cfg.quality)
        out: dict[str, Any] = {
            "quality": quality,
            "faces": len(boxes),
            "face_boxes": boxes,
            "gaze": "unknown",
            "gaze_ratio": None,
            "head_pose": None,
            "expression": None,
        }
        if not boxes or not mesh_faces:
            return out
        main_box = max(boxes, key=lambda b: b["w"] * b["h"])
        landmarks = self._pick_mesh(mesh_faces, main_box, width, height)
        if landmarks is None:
            return out

        ratios = [iris_ratios(landmarks, eye) for eye in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT)]
        horizontal = float(np.mean([r[0] for r in ratios]))
        vertical = float(np.mean([r[1] for r in ratios]))
        openness = float(np.mean([eye_openness(landmarks, e) for e in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT)]))
        mouth = mouth_openness(landmarks)
        width = smile_width(landmarks)
        eyes_closed = openness < self.cfg.eyes_closed_ratio
        mouth_open = mouth > self.cfg.mouth_open_ratio
        smiling = width > self.cfg.smile_width_ratio and not mouth_open
        out["gaze"] = classify_gaze(horizontal, vertical, self.cfg)
        out["gaze_ratio"] = {"horizontal": round(horizontal, 3), "vertical": round(vertical, 3)}
        out["head_pose"] = head_pose(landmarks)
        out["expression"] = {
            "label": expression_label(eyes_closed, mouth_open, smiling),
            "eye_openness": round(openness, 3),
            "mouth_openness": round(mouth, 3),
            "smile_width": round(width, 3),
            "eyes_closed": eyes_closed,
            "mouth_open": mouth_open,
        }
        if eyes_closed or "too_blurred" in quality["issues"]:
            out["gaze"] = "unknown"  # no iris to read behind closed lids or in a smear
        return out

    @staticmethod
    def _box(detection, width: int, height: int) -> dict[str, float]:
        rel = detection.location_data.relative_bounding_box
        x0, y0 = max(0.0, rel.xmin) * width, max(0.0, rel.ymin) * height
        x1 = min(1.0, rel.xmin + rel.width) * width
        y1 = min(1.0, rel.ymin + rel.height) * height
        return {
            "x": round(x0, 1), "y": round(y0, 1), "w": round(x1 - x0, 1), "h": round(y1 - y0, 1),
            "confidence": round(float(detection.score[0]), 3),
        }

    @staticmethod
    def _pick_mesh(mesh_faces, box: dict[str, float], width: int, height: int) -> np.ndarray | None:
        """The mesh whose centre lies closest to the main detection's centre (and inside it)."""
        cx, cy = box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
        best, best_dist = None, float("inf")
        for face in mesh_faces:
            pts = np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], dtype=np.float64)
            mx, my = pts[:, 0].mean(), pts[:, 1].mean()
            dist = math.hypot(mx - cx, my - cy)
            if dist < best_dist:
                best, best_dist = pts, dist
        if best is None or best_dist > max(box["w"], box["h"]):
            return None
        return best
