"""The WebSocket stream through the running app (real Serve and Ingress, fake models scripted by the
frames, tests/fakes.py): binary frames in, JSON results out, newest-frame-wins, and the same
admission as HTTP: a stream is rate-limited exactly as /analyze-frame is, and cannot put more than
`max_inflight_frames` frames into the models."""
from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import pytest

from api.stream import encode_message
from tests.conftest import AUTH, redeployed_app, start_session
from tests.fakes import scripted_frame


@pytest.fixture(scope="module")
def client(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as c:
        yield c


def ws_url(app, session_id: str, token: str | None) -> str:
    base = app["url"].replace("http://", "ws://")
    return f"{base}/sessions/{session_id}/stream" + (f"?token={token}" if token else "")


def messages(count: int, start: float = 0.0, fps: float = 5.0, **script) -> list[bytes]:
    return [encode_message(start + i / fps, scripted_frame(seed=1000 + i, **script)) for i in range(count)]


def collect(ws, sent: int) -> list[dict]:
    """Answers until every sent frame is accounted for (answered, or dropped before analysis)."""
    results = []
    while sum(1 + r["dropped"] for r in results) < sent:
        results.append(json.loads(ws.recv(timeout=60)))
    return results


def test_stream_answers_each_frame_and_drops_to_the_newest(fake_app, client):
    from websockets.sync.client import connect

    session = start_session(client, "stream-1")
    batch = messages(12, delay_s=0.2)  # the models take 0.2 s a frame
    with connect(ws_url(fake_app, session["session_id"], session["session_token"]), open_timeout=30) as ws:
        for message in batch:  # all at once: far faster than the models answer
            ws.send(message)
        results = collect(ws, len(batch))
    assert all("error" not in r for r in results), results
    assert all(r["faces"] == 1 and r["gaze"] in ("center", "unknown") and "risk_score" in r for r in results)
    assert len(results) < len(batch) and sum(r["dropped"] for r in results) > 0  # no backlog was kept
    # the newest frame was analysed last (when all 12 arrived before the first was taken, the only
    # answer is the newest one, with 11 dropped)
    assert results[-1]["frame_time"] > results[0]["frame_time"] or results[0]["dropped"] == len(batch) - 1
    state = client.get(f"/sessions/{session['session_id']}").json()
    assert state["frames"] == len(results)  # every analysed frame is in the session
    client.post("/end-session", json={"session_id": session["session_id"]})


def test_stream_needs_this_sessions_token(fake_app, client):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    a, b = start_session(client, "stream-a"), start_session(client, "stream-b")
    for token, words in ((None, "missing credentials"), (b["session_token"], "another session")):
        with connect(ws_url(fake_app, a["session_id"], token), open_timeout=30) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1008 and words in closed.value.rcvd.reason
    for s in (a, b):
        client.post("/end-session", json={"session_id": s["session_id"]})


def test_bad_stream_messages_get_the_errors_http_gives(fake_app, client):
    from websockets.sync.client import connect

    session = start_session(client, "stream-bad")
    sid = session["session_id"]
    http = client.post("/analyze-frame", json={"session_id": sid, "frame": base64.b64encode(b"just text").decode()})
    with connect(ws_url(fake_app, sid, session["session_token"]), open_timeout=30) as ws:
        ws.send(b"\x00" * 4)  # shorter than its header
        short = json.loads(ws.recv(timeout=30))
        ws.send(encode_message(1.0, b"just text"))
        not_image = json.loads(ws.recv(timeout=30))
    assert short["status"] == 400 and "8 bytes" in short["error"]
    assert (not_image["status"], not_image["error"]) == (http.status_code, http.json()["detail"]) == (
        422, "frame is not an image: expected JPEG, PNG or WebP bytes")
    client.post("/end-session", json={"session_id": sid})


def test_a_stream_faster_than_the_rate_limit_is_limited_as_http_is(fake_app, client):
    """Frames sent at 40/s to a session allowed 10/s (burst 10): the stream's answers are the same
    429s, with the same message, as HTTP's, and only the frames the bucket allows are scored."""
    from websockets.sync.client import connect

    rate = fake_app["args"]["ingress"]["max_fps_per_session"]
    burst = fake_app["args"]["ingress"]["fps_burst"]
    session = start_session(client, "stream-rate")
    sid = session["session_id"]
    sent = messages(80, fps=40.0)
    started = time.monotonic()
    with connect(ws_url(fake_app, sid, session["session_token"]), open_timeout=30) as ws:
        for message in sent:
            ws.send(message)
            time.sleep(1 / 40)
        results = collect(ws, len(sent))
        elapsed = time.monotonic() - started
        # HTTP for the same session right after, until it is refused: collecting the stream's
        # answers can take long enough on a loaded machine for the shared bucket to refill
        http, http_started = [], time.monotonic()
        while len(http) < 4 * burst and not (http and http[-1].status_code == 429):
            http.append(client.post("/analyze-frame", json={
                "session_id": sid, "frame": base64.b64encode(scripted_frame(seed=len(http))).decode()}))
        http_elapsed = time.monotonic() - http_started
    limited = [r for r in results if r.get("status") == 429]
    scored = [r for r in results if "error" not in r]
    assert limited, "a stream at 4x the rate must be limited"
    http_429 = next(r for r in http if r.status_code == 429)
    assert len(http) - 1 <= burst + rate * http_elapsed + 1, (len(http), http_elapsed)
    assert {r["error"] for r in limited} == {http_429.json()["detail"]} == {f"over {rate:g} frames/s for this session"}
    assert {r["retry_after"] for r in limited} <= {1, 2} and http_429.headers["retry-after"] in ("1", "2")
    assert len(scored) <= burst + rate * elapsed + 1, (len(scored), elapsed)
    state = client.get(f"/sessions/{sid}").json()
    assert state["frames"] == len(scored) + sum(r.status_code == 200 for r in http)
    client.post("/end-session", json={"session_id": sid})


def test_streams_cannot_put_more_than_max_inflight_frames_into_the_models(fake_app):
    """Four streams and HTTP callers at once, models that take 0.4 s, a cap of 2: the fake detector
    never holds more than 2 frames, and the rest are refused at once as saturated (503)."""
    from ray import serve
    from websockets.sync.client import connect

    with redeployed_app(fake_app, {"ingress": {"max_inflight_frames": 2}}) as app:
        detector = serve.get_deployment_handle("ObjectDetector", app_name="proctor-fake")
        detector.reset_stats.remote().result()
        with httpx.Client(base_url=app["url"], timeout=120, headers=AUTH) as client:
            sessions = [start_session(client, f"inflight-{i}") for i in range(5)]
            outcomes: list[int] = []

            def stream(session) -> None:
                with connect(ws_url(app, session["session_id"], session["session_token"]), open_timeout=30) as ws:
                    for message in messages(6, fps=5.0, delay_s=0.4):
                        ws.send(message)
                        outcomes.append(json.loads(ws.recv(timeout=60)).get("status", 200))

            def post(session) -> None:
                for i in range(6):
                    r = client.post("/analyze-frame", json={
                        "session_id": session["session_id"], "timestamp": 100 + i,
                        "frame": base64.b64encode(scripted_frame(seed=500 + i, delay_s=0.4)).decode()})
                    outcomes.append(r.status_code)

            workers = [threading.Thread(target=stream, args=(s,)) for s in sessions[:4]]
            workers.append(threading.Thread(target=post, args=(sessions[4],)))
            for w in workers:
                w.start()
            for w in workers:
                w.join(timeout=120)
            stats = detector.stats.remote().result()
            for s in sessions:
                client.post("/end-session", json={"session_id": s["session_id"]})
    assert len(outcomes) == 30 and set(outcomes) <= {200, 503}, outcomes
    assert 503 in outcomes and outcomes.count(200) >= 2
    assert stats["most_at_once"] <= 2, stats
