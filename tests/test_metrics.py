"""Proctor's metrics reach Ray's Prometheus endpoint after a session."""
from __future__ import annotations

import time

import httpx

from tests.conftest import AUTH, jittered_frame_b64, needs_fixtures, needs_models, start_session

pytestmark = [needs_fixtures, needs_models]

EXPECTED = ("proctor_frames_total", "proctor_stage_latency_ms_bucket", "proctor_events_opened_total",
            "proctor_open_sessions", "proctor_detector_batch_size_bucket", "proctor_detector_batch_ms_bucket",
            "proctor_detector_gate_total")


def test_metrics_after_a_session(serve_app):
    with httpx.Client(base_url=serve_app["url"], timeout=120, headers=AUTH) as client:
        sid = start_session(client, "metrics")["session_id"]
        for i in range(6):
            name = "webcam_single_face_center.jpg" if i < 2 else "two_faces_obama_biden.jpg"
            r = client.post("/analyze-frame", json={"session_id": sid, "frame": jittered_frame_b64(name, 300 + i),
                                                    "timestamp": 20 + 0.5 * i})
            assert r.status_code == 200
        client.post("/end-session", json={"session_id": sid})
    deadline, text = time.time() + 90, ""
    while time.time() < deadline:  # Ray exports every few seconds
        text = httpx.get(serve_app["metrics_url"], timeout=10).text
        if all(name in text for name in EXPECTED) and 'type="MULTIPLE_FACES"' in text:
            break
        time.sleep(2)
    missing = [name for name in EXPECTED if name not in text]
    assert not missing, missing
    assert 'stage="total"' in text and 'outcome="ok"' in text and 'type="MULTIPLE_FACES"' in text
    # the second photo is the first again (new sensor noise): the gate reuses its detections
    assert 'decision="cold"' in text and 'decision="reused"' in text
