"""The whole service over HTTP: real Ray Serve, real MediaPipe and YOLO, real frames and clips."""
from __future__ import annotations

import base64
import time
import uuid

import httpx
import pytest

from tests.conftest import (AUTH, send_frame, FIXTURES, frame_b64, image_bytes, jittered_frame_b64, needs_fixtures, needs_models,
                            start_session)

pytestmark = [needs_fixtures, needs_models]

FPS = 24.0  # the clips' frame rate
EYES_LEFT_FROM, EYES_LEFT_TO = 136, 240  # MANIFEST.md: eyes turn toward image-left, then back


@pytest.fixture(scope="module")
def client(serve_app):
    with httpx.Client(base_url=serve_app["url"], timeout=60, headers=AUTH) as c:
        yield c


def start(client) -> str:
    body = start_session(client)
    assert body["message"] == "Session started" and isinstance(body["timestamp"], float)
    assert body["session_token"] and body["token_expires_at"] > body["timestamp"]
    return str(uuid.UUID(body["session_id"]))


def test_health_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/start-session", "/analyze-frame", "/end-session", "/health"} <= set(paths)


def test_whole_session_multiple_faces_raises_risk_and_gives_verdict(client):
    session_id = start(client)
    one_face = frame_b64("webcam_single_face_center.jpg")

    t = 1000.0
    for i in range(3):
        frame = jittered_frame_b64("webcam_single_face_center.jpg", seed=i)
        r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame, "timestamp": t})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["faces"] == 1 and body["gaze"] == "center" and body["risk_score"] == 0
        assert body["presence"] == "present" and body["frame_quality"]["usable"] is True
        assert body["cheating"] is False and body["events"] == []
        assert body["head_pose"] is not None and "total" in body["latency_ms"]
        t += 0.5

    scores, opened_at = [], None
    for i in range(8):
        two_faces = jittered_frame_b64("two_faces_obama_biden.jpg", seed=100 + i)
        r = client.post("/analyze-frame", json={"session_id": session_id, "frame": two_faces, "timestamp": t})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["faces"] == 2
        assert sum(o["label"] == "person" for o in body["objects"]) >= 2
        scores.append(body["risk_score"])
        if "MULTIPLE_FACES" in body["events_opened"]:
            opened_at = i
        t += 0.5
    assert opened_at is not None and opened_at <= 3, "MULTIPLE_FACES should open after ~1 s of two faces"
    assert any(e["type"] == "MULTIPLE_FACES" for e in body["events"])
    assert scores[-1] > scores[0] and scores[-1] > 0

    r = client.post("/end-session", json={"session_id": session_id})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["session_id"] == session_id
    assert summary["verdict"] in ("SUSPICIOUS", "CHEATING")
    assert summary["total_violations"] >= 1
    assert "MULTIPLE_FACES" in summary["violations_by_type"]
    assert summary["final_risk_score"] >= 0 and summary["duration_seconds"] >= 0
    assert summary["peak_risk_score"] >= max(scores)

    # the session is over: frames and a second end are refused, with the reason
    r = client.post("/analyze-frame", json={"session_id": session_id, "frame": one_face})
    assert r.status_code == 409 and "ended" in r.json()["detail"]
    assert client.post("/end-session", json={"session_id": session_id}).status_code == 409


def test_png_and_data_url_frames_are_accepted(client):
    session_id = start(client)
    png = base64.b64encode(image_bytes("single_face_astronaut.png")).decode()
    r = client.post("/analyze-frame", json={"session_id": session_id, "frame": "data:image/png;base64," + png})
    assert r.status_code == 200, r.text
    assert r.json()["faces"] == 1
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert summary["verdict"] == "CLEAN"


def test_frozen_camera_is_unknown_not_absent(client):
    session_id = start(client)
    frame = frame_b64("webcam_single_face_center.jpg")
    first = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame}).json()
    again = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame}).json()
    assert first["frame_quality"]["usable"] is True and first["presence"] == "present"
    assert again["frame_quality"]["issues"] == ["frozen"] and again["frame_quality"]["usable"] is False
    assert again["presence"] == "unknown" and again["gaze"] == "unknown"
    client.post("/end-session", json={"session_id": session_id})


def test_bad_input_gets_4xx_with_a_message(client):
    session_id = start(client)
    good = frame_b64("webcam_single_face_center.jpg")
    cases = [
        ({"session_id": session_id, "frame": "%%% not base64 %%%"}, 400, "base64"),
        ({"session_id": session_id, "frame": base64.b64encode(b"just some text").decode()}, 422, "not an image"),
        ({"session_id": session_id, "frame": base64.b64encode(image_bytes("webcam_single_face_center.jpg")[:400]).decode()}, 422, ""),
        ({"session_id": str(uuid.uuid4()), "frame": good}, 404, "unknown session"),
        ({"session_id": "not-a-uuid", "frame": good}, 422, "UUID"),
        ({"session_id": session_id}, 422, "frame"),
        ({"frame": good}, 422, "session_id"),
    ]
    for payload, status, words in cases:
        r = client.post("/analyze-frame", json=payload)
        assert r.status_code == status, (payload.keys(), r.status_code, r.text)
        assert words in r.text, r.text
    assert client.post("/start-session", json={}).status_code == 422
    assert client.post("/end-session", json={"session_id": str(uuid.uuid4())}).status_code == 404
    assert client.post("/analyze-frame", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422

    # none of that touched the session: it still scores frames and ends normally
    r = client.post("/analyze-frame", json={"session_id": session_id, "frame": good})
    assert r.status_code == 200 and r.json()["faces"] == 1
    assert client.post("/end-session", json={"session_id": session_id}).json()["total_violations"] == 0


def clip_frames_b64(name: str, fps_out: float):
    """(capture time in s, JPEG base64) for the clip sampled at fps_out, as a browser would send it."""
    import cv2

    from vision.evaluation import read_video

    step = round(FPS / fps_out)
    for index, frame in read_video(FIXTURES / "videos" / name, step):
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        yield index / FPS, base64.b64encode(jpeg).decode()


def paced(frames):
    """The (capture time, frame) pairs in real time, as a webcam delivers them (frames answered
    faster than they are captured would otherwise meet the per-session rate limit)."""
    started = time.monotonic()
    for capture_time, frame in frames:
        time.sleep(max(0.0, started + capture_time - time.monotonic()))
        yield capture_time, frame


def test_stream_of_gaze_clip_opens_exactly_one_looking_away(client):
    session_id = start(client)
    first_time = None
    for capture_time, frame in paced(clip_frames_b64("webcam_gaze_center_left_center.mp4", fps_out=5)):
        body = send_frame(client, session_id, frame, timestamp=capture_time)
        first_time = body["frame_time"] - capture_time if first_time is None else first_time
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    looking = [e for e in summary["events"] if e["type"] == "LOOKING_AWAY"]
    assert len(looking) == 1, summary["events"]
    start_s = looking[0]["start"] - first_time  # back on the clip's clock
    assert abs(start_s - EYES_LEFT_FROM / FPS) <= 1.0, start_s
    assert abs(looking[0]["duration"] - (EYES_LEFT_TO - EYES_LEFT_FROM) / FPS) <= 1.0, looking[0]
    assert summary["calibration"]["accepted"] is True


def test_stream_of_centred_clip_opens_no_looking_away(client):
    session_id = start(client)
    for capture_time, frame in paced(clip_frames_b64("webcam_gaze_center.mp4", fps_out=5)):
        send_frame(client, session_id, frame, timestamp=capture_time)
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert [e for e in summary["events"] if e["type"] in ("LOOKING_AWAY", "HEAD_TURNED")] == []
    assert summary["verdict"] == "CLEAN"




def test_a_phone_composited_into_the_webcam_opens_phone_detected_with_gating_on(client, serve_app):
    """config/serve.yaml's detector gate is on: the still frames reuse detections (and say so), the
    real phone moved into the real webcam frames at 3 s still opens PHONE_DETECTED."""
    import cv2

    from vision.evaluation import composite_phone_clip, read_video

    assert serve_app["args"]["detector_gate"]["enabled"] is True
    fps = 4.0
    frames = [f for _, f in read_video(FIXTURES / "videos" / "webcam_gaze_center.mp4", round(FPS / fps))]
    session_id = start(client)
    composited = composite_phone_clip(frames, FIXTURES, fps, enters_s=3.0, leaves_s=7.0)
    jpegs = [(i / fps, base64.b64encode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()).decode())
             for i, f in enumerate(composited)]
    bodies = [send_frame(client, session_id, jpeg, timestamp=t) for t, jpeg in paced(jpegs)]
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    phone = [e for e in summary["events"] if e["type"] == "PHONE_DETECTED"]
    assert len(phone) == 1, summary["events"]
    first_time = bodies[0]["frame_time"]
    assert 3.0 <= phone[0]["start"] - first_time <= 4.5, phone
    reused = [b for b in bodies if b["objects_reused"]]
    assert reused, "no frame reused its detections: the gate never skipped"
    assert all(b["latency_ms"]["object_detector"] == 0 and b["objects_age_s"] > 0 for b in reused)
    assert all(not b["objects_reused"] for b in bodies[15:28]), "YOLO runs on every frame while the phone is there"


def test_a_still_camera_reuses_detections_and_rechecks_them_off_the_answers_path(client, serve_app):
    """detector_gate.stale_recheck: background (config/serve.yaml). A still webcam at 1 frame/s: after
    the first frame YOLO never holds up an answer, yet the detections served never grow older than the
    age limit plus a frame, because the frame that finds them too old has YOLO re-check it behind its
    answer."""
    gate = serve_app["args"]["detector_gate"]
    assert gate["stale_recheck"] == "background"
    session_id = start(client)
    frames = [(float(i), jittered_frame_b64("webcam_single_face_center.jpg", seed=i)) for i in range(8)]
    bodies = [send_frame(client, session_id, frame, timestamp=t) for t, frame in paced(frames)]
    client.post("/end-session", json={"session_id": session_id})
    assert not bodies[0]["objects_reused"]  # a cold session: YOLO runs
    assert all(b["objects_reused"] for b in bodies[1:]), [b["objects_age_s"] for b in bodies]
    ages = [b["objects_age_s"] for b in bodies[1:]]
    limit = gate["max_detection_age_s"]
    # The detections were renewed while every answer reused them: by re-checks behind the answers,
    # each on a frame that found them past the limit (the age is read after the face stage, so the
    # first frame past it may still have been decided just under it); never much later than that.
    renewed = [i for i in range(1, len(ages)) if ages[i] < ages[i - 1]]
    assert renewed and all(ages[i - 1] > limit for i in renewed), ages
    assert max(ages) < limit + 1.5, ages
