"""Human review and signed webhooks through the running app: real Serve, Ingress, session actors and
SQLite store, with fake model deployments (tests/fakes.py) scripted to show a phone. Every webhook
is verified by the reference `standardwebhooks` library on a loopback receiver.

Fault tests count what they injected and what was lost (must be 0)."""
from __future__ import annotations

import base64
import sqlite3
import time

import httpx
import pytest

from tests.conftest import AUTH, REVIEWER, REVIEWER_KEY, deploy, send_frame, start_session
from tests.fakes import scripted_frame
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def client(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def reviewer(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=REVIEWER) as c:
        yield c


def frame(seed: int, **script) -> str:
    return base64.b64encode(scripted_frame(seed=seed, **script)).decode()


def phone_session(client, candidate: str = "rev-1", end: bool = True) -> str:
    """A session where a phone is in view for 3 s: PHONE_DETECTED, verdict SUSPICIOUS or worse."""
    sid = start_session(client, candidate)["session_id"]
    for i in range(10):
        send_frame(client, sid, frame(i, objects=["cell phone"] if 2 <= i < 8 else []), timestamp=10 + 0.5 * i)
    if end:
        assert client.post("/end-session", json={"session_id": sid}).status_code == 200
    return sid


# ---- human review ------------------------------------------------------------------------------
def test_a_reviewer_confirms_adds_and_decides_and_the_verdict_stays(client, reviewer):
    sid = phone_session(client, end=False)
    open_state = client.get(f"/sessions/{sid}").json()
    event_id = open_state["events"][0]["id"]
    # while open: 409 for every review call, nothing stored
    for path, body in ((f"/sessions/{sid}/review", {"outcome": "CLEAN"}),
                       (f"/sessions/{sid}/events/{event_id}/review", {"decision": "dismissed"}),
                       (f"/sessions/{sid}/events", {"type": "OTHER", "start_offset_s": 1, "note": "x"})):
        r = reviewer.post(path, json=body)
        assert r.status_code == 409 and "not ended" in r.json()["detail"], r.text
    summary = client.post("/end-session", json={"session_id": sid}).json()
    verdict = summary["verdict"]
    assert verdict in ("SUSPICIOUS", "CHEATING")

    pending = reviewer.get("/reviews", params={"status": "pending", "limit": 500}).json()["items"]
    assert sid in [i["session_id"] for i in pending]
    peaks = [i["peak_risk_score"] for i in pending]
    assert peaks == sorted(peaks, reverse=True)  # the queue: highest peak first

    r = reviewer.post(f"/sessions/{sid}/events/{event_id}/review",
                      json={"decision": "confirmed", "note": "phone in the left hand", "reviewer": "ana@example.edu"})
    assert r.status_code == 200, r.text
    assert r.json()["review"]["decision"] == "confirmed" and r.json()["review"]["reviewer"] == "ana@example.edu"
    r = reviewer.post(f"/sessions/{sid}/events",
                      json={"type": "TALKING", "start_offset_s": 1.0, "end_offset_s": 2.5, "note": "whispering"})
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["source"] == "reviewer" and added["type"] == "TALKING" and added["evidence_url"] is None
    assert (added["start_offset_s"], added["end_offset_s"], added["duration"]) == (1.0, 2.5, 1.5)
    assert reviewer.post(f"/sessions/{sid}/events/nope/review", json={"decision": "confirmed"}).status_code == 404
    assert reviewer.post(f"/sessions/{sid}/events", json={"type": "OTHER", "start_offset_s": 3,
                                                          "end_offset_s": 1, "note": "x"}).status_code == 422
    r = reviewer.post(f"/sessions/{sid}/review", json={"outcome": "CHEATING", "comment": "phone, confirmed",
                                                       "reviewer": "ana@example.edu"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["verdict"], done["final_verdict"], done["review"]["status"]) == (verdict, "CHEATING", "completed")
    # a re-review appends; the automatic verdict never changes
    r = reviewer.post(f"/sessions/{sid}/review", json={"outcome": "SUSPICIOUS"})
    review = r.json()["review"]
    assert r.json()["final_verdict"] == "SUSPICIOUS" and review["reviewer"].startswith("key_")
    assert [h["action"] for h in review["history"]] == ["event_reviewed", "event_added", "outcome", "outcome"]
    assert [h.get("outcome") for h in review["history"]][2:] == ["CHEATING", "SUSPICIOUS"]

    report = reviewer.get(f"/sessions/{sid}/report").json()
    assert report["verdict"] == verdict and report["final_verdict"] == "SUSPICIOUS"
    by_id = {e["id"]: e for e in report["events"]}
    assert by_id[event_id]["review"]["note"] == "phone in the left hand" and by_id[event_id]["source"] == "auto"
    assert by_id[added["id"]]["source"] == "reviewer" and by_id[added["id"]]["note"] == "whispering"
    page = reviewer.get(f"/sessions/{sid}/report.html").text
    for text in ("confirmed", "phone in the left hand", "whispering", "added by a reviewer", "SUSPICIOUS",
                 "ana@example.edu", "Review history"):
        assert text in page, text
    state = client.get(f"/sessions/{sid}").json()
    assert state["final_verdict"] == "SUSPICIOUS" and state["review"]["status"] == "completed"
    completed = reviewer.get("/reviews", params={"status": "completed", "limit": 500}).json()["items"]
    assert sid in [i["session_id"] for i in completed]
    assert sid not in [i["session_id"] for i in reviewer.get("/reviews", params={"limit": 500}).json()["items"]]
    # deleted with the session
    assert client.delete(f"/sessions/{sid}").status_code == 200
    assert sid not in [i["session_id"] for i in reviewer.get("/reviews", params={"status": "completed",
                                                                                 "limit": 500}).json()["items"]]


def test_the_review_queue_pages_without_gaps_or_repeats(client, reviewer):
    for i in range(3):
        phone_session(client, f"page-{i}")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = reviewer.get("/reviews", params=params).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    everything = reviewer.get("/reviews", params={"limit": 500}).json()["items"]
    assert [i["session_id"] for i in seen] == [i["session_id"] for i in everything] and len(seen) >= 3
    assert reviewer.get("/reviews", params={"cursor": "not-a-cursor"}).status_code == 422


def test_the_reviewer_scope_reviews_and_reads_but_runs_no_session(client, reviewer, fake_app):
    sid = phone_session(client, "scope-1")
    assert reviewer.get(f"/sessions/{sid}/report").status_code == 200
    assert reviewer.get(f"/sessions/{sid}/report.html").status_code == 200
    for method, path, body in (("POST", "/start-session", {"candidate_id": "x"}), ("POST", "/end-session", {"session_id": sid}),
                               ("GET", f"/sessions/{sid}", None), ("DELETE", f"/sessions/{sid}", None),
                               ("POST", "/webhooks", {"url": "https://example.com/h"}), ("GET", "/webhooks", None)):
        r = reviewer.request(method, path, json=body)
        assert r.status_code == 403 and "reviewer key" in r.json()["detail"], (path, r.text)
    with httpx.Client(base_url=fake_app["url"], timeout=60) as anonymous:
        assert anonymous.get("/reviews").status_code == 401
        assert anonymous.post(f"/sessions/{sid}/review", json={"outcome": "CLEAN"}).status_code == 401
        assert anonymous.get("/reviews", headers={"X-API-Key": REVIEWER_KEY}).status_code == 200
    assert client.post(f"/sessions/{sid}/review", json={"outcome": "CLEAN"}).status_code == 200  # integrators pass
    client.delete(f"/sessions/{sid}")


# ---- webhooks ----------------------------------------------------------------------------------
def register(client, receiver: WebhookReceiver, events=None) -> dict:
    r = client.post("/webhooks", json={"url": receiver.url + "/hook", **({"events": events} if events else {})})
    assert r.status_code == 201, r.text
    receiver.secrets.append(r.json()["secret"])
    return r.json()


def test_webhooks_carry_every_event_signed(client, reviewer):
    with WebhookReceiver() as receiver:
        endpoint = register(client, receiver)
        assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == [
            "session.started", "session.ended", "review.completed", "session.deleted"]
        listed = client.get("/webhooks").json()["endpoints"]
        assert endpoint["id"] in [e["id"] for e in listed] and all("secret" not in e for e in listed)
        sid = phone_session(client, "hook-1")
        reviewer.post(f"/sessions/{sid}/review", json={"outcome": "CHEATING", "comment": "confirmed"})
        client.delete(f"/sessions/{sid}")
        kinds = ("session.started", "session.ended", "review.completed", "session.deleted")

        def arrived(_):
            return all(any(r.payload["data"]["session_id"] == sid for r in receiver.of_type(k)) for k in kinds)

        assert receiver.wait_for(arrived, 60), [(r.payload or {}).get("type") for r in receiver.received]
        mine = {k: [r for r in receiver.of_type(k) if r.payload["data"]["session_id"] == sid] for k in kinds}
        assert all(r.verified for rs in mine.values() for r in rs)
        ended = mine["session.ended"][0].payload["data"]
        assert ended["verdict"] in ("SUSPICIOUS", "CHEATING") and ended["peak_risk_score"] > 0
        assert "PHONE_DETECTED" in ended["violations_by_type"] and ended["verdict_reasons"]
        assert ended["report_url"].endswith(f"/sessions/{sid}/report.html") and ended["candidate_id"] == "hook-1"
        completed = mine["review.completed"][0].payload["data"]
        assert completed["final_verdict"] == "CHEATING" and completed["verdict"] == ended["verdict"]
        assert len(mine["session.ended"][0].body) < 20_000  # thin: no frames
        # an endpoint that asked for one type gets only that
        narrow = register(client, receiver, ["session.deleted"])
        other = phone_session(client, "hook-2")
        client.delete(f"/sessions/{other}")
        assert receiver.wait_for(lambda _: any(r.payload["data"]["session_id"] == other
                                               for r in receiver.of_type("session.deleted")), 60)
        time.sleep(1)
        per_id = {}
        for r in receiver.received:
            if r.payload and r.payload["data"]["session_id"] == other:
                per_id.setdefault(r.payload["type"], set()).add(r.message_id)
        assert len(per_id["session.deleted"]) == 1  # one event, one id, to both endpoints
        for e in (endpoint, narrow):
            assert client.delete(f"/webhooks/{e['id']}").status_code == 200
        assert client.delete(f"/webhooks/{endpoint['id']}").status_code == 404


def test_webhook_registration_refuses_unsafe_targets(client):
    for url, why in (("https://10.0.0.5/hook", "private"), ("https://169.254.169.254/latest", "metadata"),
                     ("http://93.184.215.14/hook", "loopback targets only"), ("https://[::ffff:192.168.0.1]/x", "private")):
        r = client.post("/webhooks", json={"url": url})
        assert r.status_code == 422 and why in r.json()["detail"], (url, r.text)


def _received_ids(receiver: WebhookReceiver, sessions: set[str]) -> dict[str, set[str]]:
    """webhook-ids received per outbox event (by type and session), verified ones only."""
    got: dict[str, set[str]] = {}
    for r in receiver.received:
        if r.verified and r.payload["data"]["session_id"] in sessions:
            got.setdefault(f"{r.payload['type']}:{r.payload['data']['session_id']}", set()).add(r.message_id)
    return got


def _outbox(store_path: str, sessions: set[str]) -> dict[str, str]:
    with sqlite3.connect(store_path) as db:
        rows = db.execute("SELECT type, session_id, message_id FROM outbox").fetchall()
    return {f"{kind}:{sid}": mid for kind, sid, mid in rows if sid in sessions}


def test_deliveries_survive_a_killed_ingress_and_an_app_restart(client, fake_app):
    """Kill the Ingress replica while a delivery is in flight, then stop and redeploy the whole app
    while deliveries are failing: every event arrives, verified, each under its one webhook-id."""
    import threading

    import ray

    store_path = fake_app["args"]["ingress"]["store_path"]
    with WebhookReceiver() as receiver:
        register(client, receiver)
        in_flight = threading.Event()

        def hold_first_end(r):
            if r.payload and r.payload["type"] == "session.ended" and not in_flight.is_set():
                in_flight.set()
                return 200, {}, 2.5  # still answering when the replica is killed
            return 200, {}, 0.0

        receiver.script = hold_first_end
        sessions = {phone_session(client, "kill-1")}
        assert in_flight.wait(30)
        injected = 0
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith("SERVE_REPLICA::proctor-fake#Ingress#"):
                ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
                injected += 1
        assert injected == 1
        # the replica is replaced; meanwhile the receiver fails everything: deliveries pile up
        receiver.script = lambda r: (503, {}, 0.0)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                sessions.add(phone_session(client, "kill-2"))
                break
            except (AssertionError, httpx.HTTPError):
                time.sleep(1)  # the new replica is starting
        assert len(sessions) == 2
        assert receiver.wait_for(lambda rs: sum(r.payload is not None and r.payload["data"]["session_id"] in sessions
                                                and r.payload["type"] == "session.ended" for r in rs) >= 2, 90)
        # the whole app goes away and comes back (its deliverers with it), the receiver still failing
        from ray import serve

        from devtools.local_serve import wait_healthy

        serve.delete("proctor-fake")
        injected += 1
        deploy(fake_app["args"], fake=True)
        assert wait_healthy(fake_app["url"], timeout=120)
        receiver.script = lambda r: (200, {}, 0.0)
        expected = _outbox(store_path, sessions)
        assert len(expected) == 4  # started and ended, per session
        assert receiver.wait_for(lambda _: set(_received_ids(receiver, sessions)) == set(expected), 120), (
            expected, _received_ids(receiver, sessions))
        got = _received_ids(receiver, sessions)
        lost = [k for k in expected if k not in got]
        new_ids = {k: ids - {expected[k]} for k, ids in got.items() if ids - {expected[k]}}
        assert injected == 2 and lost == [] and new_ids == {}
        attempts = sum(1 for r in receiver.received if r.payload and r.payload["data"]["session_id"] in sessions)
        assert attempts > len(expected)  # some were retried (the 503s, the killed send), none lost
        for e in client.get("/webhooks").json()["endpoints"]:
            client.delete(f"/webhooks/{e['id']}")


def test_failed_deliveries_are_listed_and_retried(client):
    with WebhookReceiver() as receiver:
        receiver.script = lambda r: (500, {}, 0.0)
        endpoint = register(client, receiver, ["session.started"])
        sid = start_session(client, "fail-1")["session_id"]
        deadline, failed = time.time() + 60, []
        while time.time() < deadline and not failed:
            time.sleep(0.5)
            failed = [d for d in client.get("/webhooks/deliveries", params={"state": "failed", "limit": 500}).json()[
                "deliveries"] if d["endpoint_id"] == endpoint["id"]]
        assert failed and failed[0]["attempts"] == 8 and failed[0]["last_status"] == 500  # at once + 7 retries
        receiver.script = lambda r: (200, {}, 0.0)
        r = client.post(f"/webhooks/deliveries/{failed[0]['id']}/retry")
        assert r.status_code == 200 and r.json()["state"] == "pending"
        assert client.post(f"/webhooks/deliveries/{failed[0]['id']}/retry").status_code == 409  # pending already
        assert receiver.wait_for(lambda rs: rs[-1].verified and rs[-1].message_id == failed[0]["message_id"]
                                 and len(rs) == 9, 30)
        assert client.post("/webhooks/deliveries/dl_nope/retry").status_code == 404
        rotated = client.post(f"/webhooks/{endpoint['id']}/rotate").json()
        assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"] > time.time()
        client.delete(f"/webhooks/{endpoint['id']}")
        client.post("/end-session", json={"session_id": sid})
