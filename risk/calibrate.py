"""Calibration: the candidate's neutral head pose and gaze, from the first seconds of the session.

A webcam off to one side makes a candidate who looks at the screen read as "head turned" or
"looking left" all session. The median pose and iris position over the first `window_s` seconds of
usable one-face frames become the baseline; head and gaze thresholds then apply to the difference.
A baseline outside the plausible limits (the candidate really was turned away) is not believed.
"""
from __future__ import annotations

import statistics
from dataclasses import replace

from contracts import Baseline, GazeRatio
from settings import CalibrationConfig


class Calibrator:
    def __init__(self, cfg: CalibrationConfig, vertical_center: float):
        self.cfg = cfg
        self.vertical_center = vertical_center
        self.first_t: float | None = None
        self.samples: list[tuple[float, float, float, float]] = []
        self.baseline: Baseline | None = None if cfg.window_s > 0 else Baseline(reason="disabled")

    @property
    def done(self) -> bool:
        return self.baseline is not None

    def add(self, t: float, yaw: float | None, pitch: float | None, gaze_ratio: GazeRatio | None) -> None:
        """Feed a usable one-face frame's pose and iris ratios while calibrating."""
        if self.done:
            return
        if self.first_t is None:
            self.first_t = t
        if yaw is not None and pitch is not None and gaze_ratio:
            self.samples.append((yaw, pitch, gaze_ratio.horizontal, gaze_ratio.vertical))
        if t - self.first_t >= self.cfg.window_s:
            self.baseline = self._finish()

    def _finish(self) -> Baseline:
        if len(self.samples) < self.cfg.min_frames:
            return Baseline(frames=len(self.samples), reason="too few frames with a face")
        yaw, pitch, horizontal, vertical = (statistics.median(s[i] for s in self.samples) for i in range(4))
        base = Baseline(yaw=round(yaw, 2), pitch=round(pitch, 2), gaze_horizontal=round(horizontal - 0.5, 4),
                        gaze_vertical=round(vertical - self.vertical_center, 4), frames=len(self.samples))
        if abs(yaw) > self.cfg.max_yaw_deg or abs(pitch) > self.cfg.max_pitch_deg:
            return Baseline(frames=len(self.samples), reason="head too far off to be a neutral pose")
        if abs(base.gaze_horizontal) > self.cfg.max_gaze_offset or abs(base.gaze_vertical) > self.cfg.max_gaze_offset:
            return Baseline(yaw=base.yaw, pitch=base.pitch, frames=base.frames, accepted=True,
                            reason="pose accepted; gaze too far off to be neutral, gaze uncorrected")
        return replace(base, accepted=True, reason="ok")
