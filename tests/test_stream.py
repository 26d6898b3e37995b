"""The WebSocket stream through the running app: binary frames in, JSON results out, newest-frame-wins."""
from __future__ import annotations

import json
import struct

import cv2
import httpx
import pytest

from tests.conftest import AUTH, FIXTURES, needs_fixtures, needs_models, start_session

pytestmark = [needs_fixtures, needs_models]


def clip_messages(count: int) -> list[bytes]:
    from vision.evaluation import read_video

    messages = []
    for index, frame in read_video(FIXTURES / "videos" / "webcam_gaze_center.mp4", 4):
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        messages.append(struct.pack(">d", index / 24.0) + jpeg)
        if len(messages) == count:
            return messages
    return messages


@pytest.fixture(scope="module")
def client(serve_app):
    with httpx.Client(base_url=serve_app["url"], timeout=120, headers=AUTH) as c:
        yield c


def ws_url(serve_app, session_id: str, token: str | None) -> str:
    base = serve_app["url"].replace("http://", "ws://")
    return f"{base}/sessions/{session_id}/stream" + (f"?token={token}" if token else "")


def test_stream_answers_each_frame_and_drops_to_the_newest(serve_app, client):
    from websockets.sync.client import connect

    session = start_session(client, "stream-1")
    messages = clip_messages(12)
    results = []
    with connect(ws_url(serve_app, session["session_id"], session["session_token"]), open_timeout=30) as ws:
        for message in messages:  # all at once: far faster than ~5 frames/s the models manage
            ws.send(message)
        while sum(1 + r["dropped"] for r in results) < len(messages):
            results.append(json.loads(ws.recv(timeout=60)))
    assert all("error" not in r for r in results), results
    assert all(r["faces"] == 1 and r["gaze"] in ("center", "unknown") and "risk_score" in r for r in results)
    assert len(results) < len(messages) and sum(r["dropped"] for r in results) > 0  # no backlog was kept
    assert results[-1]["frame_time"] > results[0]["frame_time"]  # the newest frame was analysed last
    state = client.get(f"/sessions/{session['session_id']}").json()
    assert state["frames"] == len(results)  # every analysed frame is in the session
    client.post("/end-session", json={"session_id": session["session_id"]})


def test_stream_needs_this_sessions_token(serve_app, client):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    a, b = start_session(client, "stream-a"), start_session(client, "stream-b")
    for token, words in ((None, "missing credentials"), (b["session_token"], "another session")):
        with connect(ws_url(serve_app, a["session_id"], token), open_timeout=30) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1008 and words in closed.value.rcvd.reason
    for s in (a, b):
        client.post("/end-session", json={"session_id": s["session_id"]})
