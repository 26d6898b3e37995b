"""Can this frame be judged? Brightness, contrast, sharpness, and a pixel digest for freeze checks.

Pure code (no Ray). A frame that cannot be judged gives `unknown` gaze and is never scored as
"no face": an unusable frame says nothing about whether the candidate is there.
"""
from __future__ import annotations

from typing import Any

import hashlib

import numpy as np
from pydantic import BaseModel, Field


class QualityConfig(BaseModel):
    """Frame-quality thresholds. Every field is set (with a comment) in config/serve.yaml."""

    dark_brightness: float = Field(10.0, ge=0, le=255)
    covered_brightness: float = Field(40.0, ge=0, le=255)
    covered_contrast: float = Field(6.0, ge=0)
    blur_sharpness: float = Field(15.0, ge=0)


def assess(image_bgr: np.ndarray, cfg: QualityConfig) -> dict[str, Any]:
    """Single-frame quality: what is wrong with it, if anything, plus the measures behind that."""
    import cv2

    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    # Measure on a fixed-size copy so thresholds mean the same for any camera resolution.
    small = cv2.resize(gray, (320, max(1, round(320 * gray.shape[0] / gray.shape[1]))), interpolation=cv2.INTER_AREA)
    brightness = float(small.mean())
    contrast = float(small.std())
    sharpness = float(cv2.Laplacian(small, cv2.CV_64F).var())
    issues = []
    if brightness < cfg.covered_brightness and contrast < cfg.covered_contrast:
        issues.append("covered")  # near-uniform and dark: a lens cap, a finger, a hand, black
    elif brightness < cfg.dark_brightness:
        issues.append("too_dark")  # dark, with some structure (a lamp, a window)
    if sharpness < cfg.blur_sharpness and "covered" not in issues:
        issues.append("too_blurred")
    return {
        "issues": issues,
        "brightness": round(brightness, 1),
        "contrast": round(contrast, 1),
        "sharpness": round(sharpness, 1),
        "digest": hashlib.blake2b(image_bgr.tobytes(), digest_size=16).hexdigest(),
    }


def frozen(previous_digest: str | None, digest: str | None) -> bool:
    """The same picture again, pixel for pixel: the camera feed stalled or a still image is being
    replayed. A live sensor's noise makes two real frames differ even when nobody moves (a
    near-identical test would flag a still candidate; an exact one cannot)."""
    return bool(previous_digest) and previous_digest == digest
