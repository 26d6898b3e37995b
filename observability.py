"""Proctor's metrics, exported on Ray's Prometheus endpoint (and the Ray dashboard's metrics view).
One object per ingress replica; the frame pipeline and the session service report through it.
Grafana: deploy/grafana/proctor-dashboard.json."""
from __future__ import annotations

from typing import Iterable, Mapping

LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 150, 250, 500, 1000, 2500, 5000]


class ProctorMetrics:
    def __init__(self) -> None:
        from ray.serve import metrics

        self._frames = metrics.Counter("proctor_frames_total", description="Frames answered, by outcome",
                                       tag_keys=("outcome",))
        self._stage = metrics.Histogram("proctor_stage_latency_ms", description="Per-stage latency of a frame",
                                        boundaries=LATENCY_BUCKETS_MS, tag_keys=("stage",))
        self._events = metrics.Counter("proctor_events_opened_total", description="Risk events opened, by type",
                                       tag_keys=("type",))
        self._gate = metrics.Counter("proctor_detector_gate_total", description=(
            "Detector gate decisions: reused (YOLO skipped) or why YOLO ran"), tag_keys=("decision",))
        self._open_sessions = metrics.Gauge("proctor_open_sessions", description="Open sessions (session store)")
        self._audio = metrics.Counter("proctor_audio_seconds_total", description=(
            "Seconds of audio answered, by outcome: speech (some speech heard), silence, late, duplicate, refused"),
            tag_keys=("outcome",))

    def frame(self, outcome: str) -> None:
        """ok | unusable | late | duplicate | rate_limited | saturated"""
        self._frames.inc(tags={"outcome": outcome})

    def stages(self, latency_ms: Mapping[str, float]) -> None:
        for stage, ms in latency_ms.items():
            self._stage.observe(ms, tags={"stage": stage})

    def events_opened(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self._events.inc(tags={"type": kind})

    def detector_gate(self, decision: str) -> None:
        """reused | off | cold | objects | stale | stale_background | changed | faces | head_turned"""
        self._gate.inc(tags={"decision": decision})

    def audio(self, outcome: str, seconds: float) -> None:
        """speech | silence | late | duplicate | refused"""
        self._audio.inc(seconds, tags={"outcome": outcome})

    def open_sessions(self, count: int) -> None:
        self._open_sessions.set(count)
