"""Can this frame be judged? Brightness, contrast, sharpness, and a pixel digest for freeze checks.

Pure code (no Ray). A frame that cannot be judged gives `unknown` gaze and is never scored as
"no face": an unusable frame says nothing about whether the candidate is there.
"""
from __future__ import annotations

import hashlib

import numpy as np

from contracts import FrameQuality
from settings import QualityConfig


def assess(image_bgr: np.ndarray, cfg: QualityConfig) -> FrameQuality:
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
    return FrameQuality(
        issues=tuple(issues),
        brightness=round(brightness, 1),
        contrast=round(contrast, 1),
        sharpness=round(sharpness, 1),
        # Of the small grey copy: a live sensor's noise survives it, and it is 1/12 of the pixels to hash.
        digest=hashlib.blake2b(small.tobytes(), digest_size=16).hexdigest(),
    )

