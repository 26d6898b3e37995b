"""Durable sessions and the reviewer's report, through the running app (real Serve, models, SQLite).

Each fault test counts what it injected and what was lost (must be 0).
"""
from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.conftest import AUTH, start_session, FIXTURES, IDLE_TIMEOUT_S, jittered_frame_b64, needs_fixtures, needs_models

pytestmark = [needs_fixtures, needs_models]

FPS = 24.0  # the clips' frame rate
EYES_LEFT_FROM, EYES_LEFT_TO = 136, 240  # MANIFEST.md: eyes turn toward image-left, then back


@pytest.fixture(scope="module")
def client(serve_app):
    with httpx.Client(base_url=serve_app["url"], timeout=120, headers=AUTH) as c:
        yield c


def start(client) -> str:
    return start_session(client, "c-42")["session_id"]


def send(client, session_id, frame_b64, timestamp=None) -> dict:
    payload = {"session_id": session_id, "frame": frame_b64}
    if timestamp is not None:
        payload["timestamp"] = timestamp
    r = client.post("/analyze-frame", json=payload)
    assert r.status_code == 200, r.text
    return r.json()


def clip_frames_b64(name: str, fps_out: float):
    """(capture time in s, JPEG base64) for the clip sampled at fps_out, as a browser would send it."""
    import cv2

    from vision.evaluation import read_video

    step = round(FPS / fps_out)
    for index, frame in read_video(FIXTURES / "videos" / name, step):
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        yield index / FPS, base64.b64encode(jpeg).decode()


def two_face_session(client, frames: int = 8) -> tuple[str, list[dict]]:
    session_id = start(client)
    bodies = []
    for i in range(frames):
        name = "webcam_single_face_center.jpg" if i < 2 else "two_faces_obama_biden.jpg"
        bodies.append(send(client, session_id, jittered_frame_b64(name, seed=i), timestamp=100 + 0.5 * i))
    return session_id, bodies


def test_stream_of_gaze_clip_opens_exactly_one_looking_away(client):
    session_id = start(client)
    first_time = None
    for capture_time, frame in clip_frames_b64("webcam_gaze_center_left_center.mp4", fps_out=5):
        body = send(client, session_id, frame, timestamp=capture_time)
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
    for capture_time, frame in clip_frames_b64("webcam_gaze_center.mp4", fps_out=5):
        send(client, session_id, frame, timestamp=capture_time)
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert [e for e in summary["events"] if e["type"] in ("LOOKING_AWAY", "HEAD_TURNED")] == []
    assert summary["verdict"] == "CLEAN"


def test_killed_session_actor_is_rebuilt_with_nothing_lost(client):
    import ray

    from deployments.risk_session import find_session_actor

    session_id, bodies = two_face_session(client)
    before = client.get(f"/sessions/{session_id}").json()
    # two faces side by side: the second face and the second person both count
    assert [e["type"] for e in before["events"]] == ["MULTIPLE_FACES", "EXTRA_PERSON"] and before["frames"] == 8

    injected = 1
    ray.kill(find_session_actor(session_id), no_restart=False)  # a crash: Ray restarts it
    after = client.get(f"/sessions/{session_id}").json()
    assert after["rebuilt_frames"] == 8
    for key in ("risk_score", "peak_score", "attention", "frames", "events", "calibration"):
        assert after[key] == before[key], key
    lost = before["frames"] - after["frames"]

    # the next frame goes on from the same state
    body = send(client, session_id, jittered_frame_b64("two_faces_obama_biden.jpg", seed=99), timestamp=104.0)
    assert body["risk_score"] >= bodies[-1]["risk_score"]
    assert [e["id"] for e in body["events"]] == [e["id"] for e in before["open_events"]]

    # kill it while a frame is in flight: the ingress retries on the rebuilt actor
    import threading

    killer = threading.Timer(0.05, lambda: ray.kill(find_session_actor(session_id), no_restart=False))
    killer.start()
    body = send(client, session_id, jittered_frame_b64("two_faces_obama_biden.jpg", seed=100), timestamp=104.5)
    killer.join()
    injected += 1
    state = client.get(f"/sessions/{session_id}").json()
    assert state["frames"] == 10 and injected == 2 and lost == 0
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert summary["frames"] == 10 and summary["verdict"] in ("SUSPICIOUS", "CHEATING")


def test_frames_racing_end_session_are_in_the_verdict_or_refused(client, serve_app):
    """Frames still in the models when end-session runs: each is either counted in the verdict or
    answered 409, never stored after it (the report's frames always equal the verdict's)."""
    import concurrent.futures

    session_id = start(client)
    send(client, session_id, jittered_frame_b64("webcam_single_face_center.jpg", seed=0), timestamp=1.0)
    with httpx.Client(base_url=serve_app["url"], timeout=120, headers=AUTH) as other:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            frames = [pool.submit(other.post, "/analyze-frame", json={
                "session_id": session_id, "timestamp": 2.0 + i,
                "frame": jittered_frame_b64("webcam_single_face_center.jpg", seed=10 + i)}) for i in range(5)]
            time.sleep(0.05)  # the frames are on their way into the models
            ended = client.post("/end-session", json={"session_id": session_id})
            statuses = [f.result().status_code for f in frames]
    assert ended.status_code == 200, ended.text
    assert set(statuses) <= {200, 409}, statuses
    report = client.get(f"/sessions/{session_id}/report").json()
    assert len(report["timeline"]) == ended.json()["frames"] == 1 + statuses.count(200)


def test_report_json_html_evidence_and_delete(client):
    session_id, bodies = two_face_session(client)
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert summary["report_url"] == f"/sessions/{session_id}/report.html"

    report = client.get(f"/sessions/{session_id}/report").json()
    assert report["verdict"] == summary["verdict"] and report["status"] == "ended"
    assert len(report["timeline"]) == 8
    assert [p["score"] for p in report["timeline"]][-1] == pytest.approx(bodies[-1]["risk_score"], abs=1)
    event = next(e for e in report["events"] if e["type"] == "MULTIPLE_FACES")
    assert event["evidence_url"] and all(e["evidence_url"] for e in report["events"])
    assert event["duration"] > 0 and event["frame_count"] >= 2 and event["peak_confidence"] > 0.5

    jpeg = client.get(event["evidence_url"])
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:3] == b"\xff\xd8\xff" and len(jpeg.content) > 5000

    page = client.get(f"/sessions/{session_id}/report.html")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for needle in (summary["verdict"], "<svg", "MULTIPLE_FACES", event["evidence_url"], "c-42"):
        assert needle in page.text, needle

    live = client.get(f"/sessions/{session_id}").json()
    assert live["status"] == "ended" and live["verdict"] == summary["verdict"]

    assert client.delete(f"/sessions/{session_id}").json() == {"session_id": session_id, "deleted": True}
    for path in (f"/sessions/{session_id}", f"/sessions/{session_id}/report", event["evidence_url"]):
        assert client.get(path).status_code == 404, path
    assert client.delete(f"/sessions/{session_id}").status_code == 404


def test_idle_session_ends_itself_as_abandoned(client):
    from deployments.risk_session import find_session_actor

    session_id, _ = two_face_session(client, frames=4)
    deadline = time.time() + IDLE_TIMEOUT_S + 30
    while time.time() < deadline:
        state = client.get(f"/sessions/{session_id}").json()
        if state["status"] != "open":
            break
        time.sleep(1)
    assert state["status"] == "abandoned" and state["verdict"] in ("CLEAN", "SUSPICIOUS", "CHEATING")
    assert find_session_actor(session_id) is None  # its actor was freed
    r = client.post("/analyze-frame", json={"session_id": session_id,
                                            "frame": jittered_frame_b64("webcam_single_face_center.jpg", 5)})
    assert r.status_code == 409


def test_app_restart_keeps_reports_and_open_sessions_continue(client, serve_app):
    import ray
    from ray import serve

    from deployments.risk_session import find_session_actor
    from graph import build_app_with_options, load_deployment_options

    ended_id, _ = two_face_session(client)
    ended_summary = client.post("/end-session", json={"session_id": ended_id}).json()
    ended_report = client.get(f"/sessions/{ended_id}/report").json()
    open_id, bodies = two_face_session(client)
    open_state = client.get(f"/sessions/{open_id}").json()

    # the whole app goes away, session actors included
    serve.delete("proctor")
    ray.kill(find_session_actor(open_id), no_restart=True)
    assert find_session_actor(open_id) is None
    serve.run(build_app_with_options(serve_app["args"], load_deployment_options()), name="proctor", route_prefix="/")

    assert client.get(f"/sessions/{ended_id}/report").json() == ended_report
    assert client.get(f"/sessions/{ended_id}").json()["verdict"] == ended_summary["verdict"]
    state = client.get(f"/sessions/{open_id}").json()
    assert state["status"] == "open" and state["frames"] == open_state["frames"]
    assert state["events"] == open_state["events"] and state["risk_score"] == open_state["risk_score"]
    body = send(client, open_id, jittered_frame_b64("two_faces_obama_biden.jpg", seed=77), timestamp=104.0)
    assert body["risk_score"] >= bodies[-1]["risk_score"]
    summary = client.post("/end-session", json={"session_id": open_id}).json()
    assert summary["frames"] == open_state["frames"] + 1
