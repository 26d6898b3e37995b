"""Session lifecycle, durability and the reviewer's report, through the running app: real Serve,
Ingress, session actors and SQLite store, with fake model deployments (tests/fakes.py) scripted to
show one face, two faces, a phone. The clip tests with the real models are in test_e2e.py.

Each fault test counts what it injected and what was lost (must be 0).
"""
from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.conftest import AUTH, deploy, redeployed_app, send_frame, start_session
from tests.fakes import scripted_frame


@pytest.fixture(scope="module")
def client(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as c:
        yield c


def frame(seed: int, **script) -> str:
    return base64.b64encode(scripted_frame(seed=seed, **script)).decode()


def start(client) -> str:
    return start_session(client, "c-42")["session_id"]


def two_face_session(client, frames: int = 8) -> tuple[str, list[dict]]:
    session_id = start(client)
    bodies = []
    for i in range(frames):
        bodies.append(send_frame(client, session_id, frame(i, faces=1 if i < 2 else 2), timestamp=100 + 0.5 * i))
    return session_id, bodies


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
    body = send_frame(client, session_id, frame(99, faces=2), timestamp=104.0)
    assert body["risk_score"] >= bodies[-1]["risk_score"]
    assert [e["id"] for e in body["events"]] == [e["id"] for e in before["open_events"]]

    # kill it while a frame is in flight: the ingress retries on the rebuilt actor
    import threading

    killer = threading.Timer(0.05, lambda: ray.kill(find_session_actor(session_id), no_restart=False))
    killer.start()
    body = send_frame(client, session_id, frame(100, faces=2), timestamp=104.5)
    killer.join()
    injected += 1
    state = client.get(f"/sessions/{session_id}").json()
    assert state["frames"] == 10 and injected == 2 and lost == 0
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert summary["frames"] == 10 and summary["verdict"] in ("SUSPICIOUS", "CHEATING")


def test_frames_racing_end_session_are_in_the_verdict_or_refused(client, fake_app):
    """Frames still in the models when end-session runs: each is either counted in the verdict or
    answered 409, never stored after it (the report's frames always equal the verdict's)."""
    import concurrent.futures

    session_id = start(client)
    send_frame(client, session_id, frame(0), timestamp=1.0)
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as other:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            frames = [pool.submit(other.post, "/analyze-frame", json={
                "session_id": session_id, "timestamp": 2.0 + i,
                "frame": frame(10 + i, delay_s=0.05 * i)}) for i in range(5)]  # in the models when the end runs
            time.sleep(0.08)
            ended = client.post("/end-session", json={"session_id": session_id})
            statuses = [f.result().status_code for f in frames]
    assert ended.status_code == 200, ended.text
    assert set(statuses) <= {200, 409}, statuses
    report = client.get(f"/sessions/{session_id}/report").json()
    assert len(report["timeline"]) == ended.json()["frames"] == 1 + statuses.count(200)


def test_report_json_html_evidence_and_delete(client, fake_app):
    import cv2
    import numpy as np

    root = fake_app["root"]  # the app's URLs carry its route prefix (/fake)
    session_id, bodies = two_face_session(client)
    summary = client.post("/end-session", json={"session_id": session_id}).json()
    assert summary["report_url"] == f"/fake/sessions/{session_id}/report.html"

    report = client.get(f"/sessions/{session_id}/report").json()
    assert report["verdict"] == summary["verdict"] and report["status"] == "ended"
    assert len(report["timeline"]) == 8
    assert [p["score"] for p in report["timeline"]][-1] == pytest.approx(bodies[-1]["risk_score"], abs=1)
    event = next(e for e in report["events"] if e["type"] == "MULTIPLE_FACES")
    assert event["evidence_url"] and all(e["evidence_url"] for e in report["events"])
    assert event["duration"] > 0 and event["frame_count"] >= 2 and event["peak_confidence"] > 0.5

    jpeg = client.get(root + event["evidence_url"])
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:3] == b"\xff\xd8\xff"
    evidence = cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_COLOR)
    assert evidence.shape == (48, 64, 3)  # the frame itself, boxes drawn (frames under 480 px stay their size)
    # The boxes are drawn when served (the actor stores the frame as sent and the boxes beside it):
    # the evidence is one of the two-face frames plus the face boxes' outline colour.
    sent = [cv2.imdecode(np.frombuffer(base64.b64decode(frame(i, faces=2)), np.uint8), cv2.IMREAD_COLOR)
            for i in range(2, 8)]
    closest = min(sent, key=lambda image: float(np.abs(image.astype(int) - evidence.astype(int)).mean()))
    from vision.evidence import FACE_COLOR

    drawn = np.abs(evidence.astype(int) - closest.astype(int)).max(axis=2) > 60
    assert drawn.any() and np.abs(evidence[drawn].astype(int) - FACE_COLOR).max(axis=1).min() < 60

    page = client.get(f"/sessions/{session_id}/report.html")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for needle in (summary["verdict"], "<svg", "MULTIPLE_FACES", event["evidence_url"], "c-42"):
        assert needle in page.text, needle

    live = client.get(f"/sessions/{session_id}").json()
    assert live["status"] == "ended" and live["verdict"] == summary["verdict"]

    assert client.delete(f"/sessions/{session_id}").json() == {"session_id": session_id, "deleted": True}
    for path in (f"/sessions/{session_id}", f"/sessions/{session_id}/report", event["evidence_url"].removeprefix("/fake")):
        assert client.get(path).status_code == 404, path
    assert client.delete(f"/sessions/{session_id}").status_code == 404


def test_idle_session_ends_itself_once_as_abandoned(fake_app):
    """Two ingress replicas, one reaper: the store's lease keeps one holder, renewed round after
    round, and the idle session is ended through the session service (verdict kept, actor freed)."""
    import sqlite3

    from deployments.risk_session import find_session_actor

    idle_s = 4
    with redeployed_app(fake_app, {"ingress": {"idle_timeout_s": idle_s}}, ingress_replicas=2) as app:
        with httpx.Client(base_url=app["url"], timeout=120, headers=AUTH) as client:
            session_id, _ = two_face_session(client, frames=4)
            leases = []  # (holder, expires_at) as read each second
            deadline = time.time() + idle_s + 30
            while time.time() < deadline:
                state = client.get(f"/sessions/{session_id}").json()
                with sqlite3.connect(app["args"]["ingress"]["store_path"]) as db:
                    row = db.execute("SELECT holder, expires_at FROM leases WHERE name = 'session-reaper'").fetchone()
                if row:
                    leases.append(row)
                if state["status"] != "open":
                    break
                time.sleep(1)
            assert state["status"] == "abandoned" and state["verdict"] in ("CLEAN", "SUSPICIOUS", "CHEATING")
            assert find_session_actor(session_id) is None  # its actor was freed
            r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame(5)})
            assert r.status_code == 409
    # The replica of before the redeploy may still hold the lease until it expires; then one of the
    # two new replicas takes it and keeps it (renewed each round) while the other's loop only asks.
    holders = [holder for holder, _ in leases]
    last = [expires for holder, expires in leases if holder == holders[-1]]
    assert len(set(holders)) <= 2 and holders == sorted(holders, key=holders.index), holders  # no flapping
    assert len(last) >= 3 and last == sorted(last) and last[-1] > last[0], leases


def test_app_restart_keeps_reports_and_open_sessions_continue(client, fake_app):
    import ray
    from ray import serve

    from deployments.risk_session import find_session_actor

    ended_id, _ = two_face_session(client)
    ended_summary = client.post("/end-session", json={"session_id": ended_id}).json()
    ended_report = client.get(f"/sessions/{ended_id}/report").json()
    open_id, bodies = two_face_session(client)
    open_state = client.get(f"/sessions/{open_id}").json()

    # the whole app goes away, session actors included
    serve.delete("proctor-fake")
    ray.kill(find_session_actor(open_id), no_restart=True)
    assert find_session_actor(open_id) is None
    deploy(fake_app["args"], fake=True)

    assert client.get(f"/sessions/{ended_id}/report").json() == ended_report
    assert client.get(f"/sessions/{ended_id}").json()["verdict"] == ended_summary["verdict"]
    state = client.get(f"/sessions/{open_id}").json()
    assert state["status"] == "open" and state["frames"] == open_state["frames"]
    assert state["events"] == open_state["events"] and state["risk_score"] == open_state["risk_score"]
    body = send_frame(client, open_id, frame(77, faces=2), timestamp=104.0)
    assert body["risk_score"] >= bodies[-1]["risk_score"]
    summary = client.post("/end-session", json={"session_id": open_id}).json()
    assert summary["frames"] == open_state["frames"] + 1


def _session_actor_names() -> set[str]:
    import ray

    from deployments.risk_session import NAMESPACE

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE}


def test_start_session_takes_an_actor_started_ahead_and_another_starts_behind_it(client, fake_app):
    """ingress.warm_session_actors: /start-session hands out an actor that was running before the
    request (no process start on its path), named by the session id made in advance; the replica
    then starts the next one. A warm actor loads its session on its first call."""
    from deployments.risk_session import actor_name

    assert fake_app["args"]["ingress"]["warm_session_actors"] >= 1
    hit, started = None, []
    for _ in range(10):  # the pool refills in the background after each start
        before = _session_actor_names()
        session_id = start(client)
        started.append(session_id)
        if actor_name(session_id) in before:
            hit = (session_id, before)
            break
        time.sleep(2)
    assert hit is not None, "no start-session took a warm actor"
    session_id, before = hit
    deadline = time.time() + 30
    while not (_session_actor_names() - before - {actor_name(s) for s in started}) and time.time() < deadline:
        time.sleep(0.5)
    assert _session_actor_names() - before - {actor_name(s) for s in started}, "the pool did not refill"
    body = send_frame(client, session_id, frame(5, faces=1), timestamp=1.0)
    assert body["faces"] == 1
    for sid in started:
        assert client.post("/end-session", json={"session_id": sid}).status_code == 200


def test_an_unclaimed_warm_actor_leaves_after_its_ttl(fake_app):
    """A warm actor whose replica is gone (nobody claims it) stops itself after warm_actor_ttl_s, and
    a replica never hands out one near the end of its time."""
    import asyncio

    from deployments.risk_session import find_session_actor
    from sessions.directory import SessionDirectory
    from settings import AppConfig

    cfg = AppConfig(**fake_app["args"])
    directory = SessionDirectory(cfg.risk, cfg.ingress.store_location(), 0, 30, warm=1, warm_ttl_s=4)

    async def fill() -> str:
        directory.top_up()
        await directory._refill
        return directory._warm[0][0]

    warm_id = asyncio.run(fill())
    assert find_session_actor(warm_id) is not None
    deadline = time.time() + 20
    while find_session_actor(warm_id) is not None and time.time() < deadline:
        time.sleep(0.5)
    assert find_session_actor(warm_id) is None, "the unclaimed warm actor did not leave"
