"""Gaze direction from the iris ratios: the one place it is classified (raw, and relative to the
session's calibrated baseline). Pure code, image coordinates: `left` = toward the frame's left edge."""
from __future__ import annotations

from contracts import FaceResult
from settings import GazeConfig

AWAY_GAZES = ("left", "right", "up", "down")


def classify_gaze(horizontal: float, vertical: float, cfg: GazeConfig) -> str:
    """Map iris ratios to a direction. Horizontal wins ties: it is the more reliable signal."""
    dx = horizontal - 0.5
    dy = vertical - cfg.vertical_center
    if abs(dx) > cfg.horizontal_margin and abs(dx) / cfg.horizontal_margin >= abs(dy) / cfg.vertical_margin:
        return "left" if dx < 0 else "right"
    if abs(dy) > cfg.vertical_margin:
        return "up" if dy < 0 else "down"
    return "center"


def raw_gaze(face: FaceResult, cfg: GazeConfig) -> str:
    """The direction before calibration; unknown when the iris cannot be read (no mesh, eyes
    closed, blur)."""
    if face.gaze_ratio is None or not face.gaze_readable:
        return "unknown"
    return classify_gaze(face.gaze_ratio.horizontal, face.gaze_ratio.vertical, cfg)
