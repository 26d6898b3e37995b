"""Auth, limits, backpressure, faults and fuzzing against the running app: real Serve, the real
Ingress, store and session actors, with fake model deployments (tests/fakes.py: what a frame shows
is scripted in it). None of this is about what a model finds.

Fault tests count what they injected and what was lost (must be 0).
"""
from __future__ import annotations

import base64
import concurrent.futures
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import AUTH, MAX_OPEN_SESSIONS, OTHER_API_KEY, TEST_TOKEN_SECRET, start_session
from tests.fakes import scripted_frame


@pytest.fixture(scope="module")
def url(fake_app):
    return fake_app["url"]


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=120, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def anonymous(url):
    with httpx.Client(base_url=url, timeout=120) as c:
        yield c


def start(client) -> dict:
    return start_session(client, "sec-1")


def frame(seed: int = 0, **script) -> str:
    return base64.b64encode(scripted_frame(seed=seed, **script)).decode()


# ---- auth ------------------------------------------------------------------------------------
def test_integrator_calls_need_a_valid_key(client, anonymous):
    assert anonymous.get("/health").json() == {"status": "ok"}  # stays open
    r = anonymous.post("/start-session", json={"candidate_id": "x"})
    assert r.status_code == 401 and "missing API key" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = anonymous.post("/start-session", json={"candidate_id": "x"}, headers={"Authorization": "Bearer wrong-key-0000000000"})
    assert r.status_code == 401 and "invalid API key" in r.json()["detail"]
    # a rotated-in second key works, also as X-API-Key
    session = anonymous.post("/start-session", json={"candidate_id": "x"}, headers={"X-API-Key": OTHER_API_KEY}).json()
    sid = session["session_id"]
    for method, path in (("GET", f"/sessions/{sid}"), ("GET", f"/sessions/{sid}/report"),
                         ("GET", f"/sessions/{sid}/report.html"), ("DELETE", f"/sessions/{sid}")):
        assert anonymous.request(method, path).status_code == 401, path
        assert anonymous.request(method, path, headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 401
    assert anonymous.post("/end-session", json={"session_id": sid}).status_code == 401
    assert client.post("/end-session", json={"session_id": sid}).status_code == 200


def test_session_token_opens_only_its_own_session(client, anonymous):
    a, b = start(client), start(client)
    as_a = {"Authorization": f"Bearer {a['session_token']}"}
    r = anonymous.post("/analyze-frame", json={"session_id": a["session_id"], "frame": frame(1)}, headers=as_a)
    assert r.status_code == 200, r.text
    r = anonymous.post("/analyze-frame", json={"session_id": b["session_id"], "frame": frame(2)}, headers=as_a)
    assert r.status_code == 403 and "another session" in r.json()["detail"]
    # the token is for frames only: it cannot read reports or end sessions
    assert anonymous.get(f"/sessions/{a['session_id']}/report", headers=as_a).status_code == 401
    assert anonymous.post("/end-session", json={"session_id": a["session_id"]}, headers=as_a).status_code == 401
    assert anonymous.post("/analyze-frame", json={"session_id": a["session_id"], "frame": frame(3)}).status_code == 401
    tampered = a["session_token"][:-2] + ("AA" if not a["session_token"].endswith("AA") else "BB")
    r = anonymous.post("/analyze-frame", json={"session_id": a["session_id"], "frame": frame(4)},
                       headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
    # nothing the refused calls sent reached session B
    assert client.get(f"/sessions/{b['session_id']}").json()["frames"] == 0
    for s in (a, b):
        client.post("/end-session", json={"session_id": s["session_id"]})


def test_expired_token_and_token_after_end(client, anonymous):
    from auth.tokens import make_token

    s = start(client)
    expired = make_token(TEST_TOKEN_SECRET, s["session_id"], time.time() - 1)
    r = anonymous.post("/analyze-frame", json={"session_id": s["session_id"], "frame": frame(5)},
                       headers={"X-Session-Token": expired})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    client.post("/end-session", json={"session_id": s["session_id"]})
    r = anonymous.post("/analyze-frame", json={"session_id": s["session_id"], "frame": frame(6)},
                       headers={"Authorization": f"Bearer {s['session_token']}"})
    assert r.status_code == 409 and "ended" in r.json()["detail"]


# ---- limits ----------------------------------------------------------------------------------
def _b64_image(image: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_limits_give_clear_errors(client, fake_app):
    s = start(client)
    sid = s["session_id"]
    huge_body = "A" * (fake_app["args"]["ingress"]["max_body_bytes"] + 10)
    r = client.post("/analyze-frame", json={"session_id": sid, "frame": huge_body})
    assert r.status_code == 413 and "body" in r.json()["detail"]
    from tests.test_decoder_fuzz import png_header_only

    bomb = base64.b64encode(png_header_only(30000, 30000)).decode()
    r = client.post("/analyze-frame", json={"session_id": sid, "frame": bomb})
    assert r.status_code == 413 and "pixel" in r.json()["detail"]
    webp = _b64_image(Image.open(io.BytesIO(base64.b64decode(frame(7)))), "WEBP")
    r = client.post("/analyze-frame", json={"session_id": sid, "frame": webp})
    assert r.status_code == 200 and r.json()["faces"] == 1
    gif = _b64_image(Image.new("RGB", (8, 8)), "GIF")
    assert client.post("/analyze-frame", json={"session_id": sid, "frame": gif}).status_code == 422
    for bad in ("", "a" * 129, "robert'); drop table", "név", "a b"):
        r = client.post("/start-session", json={"candidate_id": bad})
        assert r.status_code == 422, bad
    assert client.post("/analyze-frame", json={"session_id": "1234", "frame": frame(8)}).status_code == 422
    client.post("/end-session", json={"session_id": sid})


def test_frame_rate_limit_is_429_with_retry_after(client, url, fake_app):
    s = start(client)
    burst = int(fake_app["args"]["ingress"]["fps_burst"])

    def send(_):  # a tiny bad frame: the limit is checked before any decoding
        r = httpx.post(f"{url}/analyze-frame", headers=AUTH, timeout=60,
                       json={"session_id": s["session_id"], "frame": "////"})
        return r.status_code, r.headers.get("retry-after"), r.json()["detail"]

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(burst * 3)))
    elapsed = time.monotonic() - started
    rate = fake_app["args"]["ingress"]["max_fps_per_session"]
    limited = [r for r in results if r[0] == 429]
    assert limited and {r[0] for r in results} <= {422, 429}, results
    # allowed: the burst, plus what the bucket refilled while the requests were arriving
    assert len(results) - len(limited) <= burst + rate * elapsed + 1, (len(limited), elapsed)
    assert all(int(retry) >= 1 and "frames/s" in detail for _, retry, detail in limited)
    client.post("/end-session", json={"session_id": s["session_id"]})


def test_open_session_limit_is_503(client):
    opened, refused = [], None
    for _ in range(MAX_OPEN_SESSIONS + 1):
        r = client.post("/start-session", json={"candidate_id": "many"})
        if r.status_code == 503:
            refused = r
            break
        assert r.status_code == 200
        opened.append(r.json()["session_id"])
    assert refused is not None and "too many open sessions" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    for sid in opened:
        client.post("/end-session", json={"session_id": sid})
    assert client.post("/start-session", json={"candidate_id": "after"}).status_code == 200


# ---- backpressure ----------------------------------------------------------------------------
def test_saturated_detectors_refuse_fast_instead_of_queueing(client, url):
    sessions = [start(client)["session_id"] for _ in range(6)]
    frames = [frame(200 + i, delay_s=0.5) for i in range(36)]  # models that take 0.5 s a frame

    def send(i):
        started = time.perf_counter()
        r = httpx.post(f"{url}/analyze-frame", headers=AUTH, timeout=120,
                       json={"session_id": sessions[i % 6], "frame": frames[i], "timestamp": 50 + i * 0.01})
        return r.status_code, time.perf_counter() - started, r.json().get("detail", "")

    with concurrent.futures.ThreadPoolExecutor(36) as pool:
        results = list(pool.map(send, range(36)))
    codes = [c for c, _, _ in results]
    assert set(codes) <= {200, 429, 503}, codes
    refused = [(t, d) for c, t, d in results if c == 503]
    accepted = sorted(t for c, t, _ in results if c == 200)
    assert refused and len(accepted) >= 6
    assert all("saturated" in d for _, d in refused)
    # refused without waiting for a model: faster than the frames that were served, and long
    # before any timeout
    refused_times = sorted(t for t, _ in refused)
    assert refused_times[len(refused_times) // 2] < accepted[len(accepted) // 2], (refused_times, accepted)
    assert refused_times[-1] < 5.0
    states = [client.get(f"/sessions/{sid}").json() for sid in sessions]
    # every accepted frame is in the session (scored, or recorded as late when it overtook a newer
    # one of its session); refused ones are not
    assert sum(st["frames"] + st["late_frames"] for st in states) == codes.count(200)
    for sid in sessions:
        client.post("/end-session", json={"session_id": sid})


# ---- faults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("deployment", ["FaceGaze", "ObjectDetector"])
def test_killed_model_replica_is_replaced_and_nothing_is_lost(client, url, deployment):
    import threading

    import ray

    def replica_actor():
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith(f"SERVE_REPLICA::proctor-fake#{deployment}#"):
                return ray.get_actor(entry["name"], namespace=entry["namespace"])
        raise AssertionError(f"no {deployment} replica")

    sid = start(client)["session_id"]
    results, details, stop = [], [], threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            r = httpx.post(f"{url}/analyze-frame", headers=AUTH, timeout=120,
                           json={"session_id": sid, "frame": frame(1000 + i), "timestamp": 10 + 0.25 * i})
            results.append(r.status_code)
            if r.status_code != 200:
                details.append((len(results) - 1, r.status_code, r.json().get("detail"), r.headers.get("retry-after")))
            i += 1
            time.sleep(0.1)

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(2)
    victim = replica_actor()
    ray.kill(victim, no_restart=True)  # a crash; Serve's controller must replace the replica
    injected = 1
    deadline = time.time() + 90
    while time.time() < deadline and (len(results) < 3 or results[-3:] != [200, 200, 200]):
        time.sleep(0.5)
    recovered = results[-3:] == [200, 200, 200]
    stop.set()
    sender.join()
    assert recovered, (results, details)  # later frames succeed on the new replica
    assert set(results) <= {200, 503}, (results, details)  # in-flight ones failed cleanly or were retried
    assert all(retry_after for *_, retry_after in details), details  # each refusal says when to retry
    stored = client.get(f"/sessions/{sid}").json()["frames"]
    lost = results.count(200) - stored
    assert injected == 1 and lost == 0
    client.post("/end-session", json={"session_id": sid})


# ---- fuzzing ---------------------------------------------------------------------------------
def test_schemathesis_finds_no_server_errors(client, url):
    """Every operation of the app's own OpenAPI schema, with generated input: zero 5xx, zero hangs,
    and a live session's data unchanged afterwards."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    sid = start(client)["session_id"]
    for attempt in range(5):  # a replica replaced by an earlier test may still be warming up: 503, retry
        r = client.post("/analyze-frame", json={"session_id": sid, "frame": frame(9)})
        if r.status_code != 503:
            break
        time.sleep(int(r.headers.get("retry-after", "2")))
    assert r.status_code == 200, r.text
    before = client.get(f"/sessions/{sid}").json()

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures, calls = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE":
            continue  # deleting random ids is 404; it is covered without fuzzing the live session

        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            nonlocal calls
            calls += 1
            response = case.call(headers=AUTH, timeout=30)
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:200]))
            if case.path == "/start-session" and response.status_code == 200:
                client.post("/end-session", json={"session_id": response.json()["session_id"]})

        run()
    assert calls > 50 and failures == [], failures
    after = client.get(f"/sessions/{sid}").json()
    assert (after["frames"], after["events"], after["risk_score"]) == (before["frames"], before["events"], before["risk_score"])
    client.post("/end-session", json={"session_id": sid})


def _end_open_sessions(client, store_path: str) -> int:
    """Ends the sessions a fuzzer left open (it cannot know which ids it made), read from the store."""
    import sqlite3

    with sqlite3.connect(store_path) as db:
        ids = [row[0] for row in db.execute("SELECT session_id FROM sessions WHERE status = 'open'")]
    for sid in ids:
        client.post("/end-session", json={"session_id": sid})
    return len(ids)


def test_schemathesis_cli_all_checks_find_nothing(client, url, fake_app, tmp_path):
    """From outside, schemathesis' own CLI with every check (status codes and bodies as documented,
    negative data rejected, auth not ignored, use after delete, ...) over the running app's schema:
    zero failures, with a bounded budget."""
    import subprocess
    import sys
    from pathlib import Path

    st = Path(sys.executable).parent / "st"
    config = Path(__file__).with_name("schemathesis.toml")
    command = [str(st), "--config-file", str(config), "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", "12",
               "--seed", "20261202", "--workers", "2", "--request-timeout", "30", "--no-color",
               "-H", f"Authorization: {AUTH['Authorization']}",
               "--report", "junit", "--report-dir", str(tmp_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=420)
        if "AST constructor recursion depth mismatch" in done.stdout:
            # CPython 3.11's ast.parse is not thread-safe (gh-106905): hypothesis describing a lambda
            # in one of schemathesis' worker threads can crash the tool itself (seen once in a full
            # run). That is not a finding about the API: run it again once.
            done = subprocess.run(command, capture_output=True, text=True, timeout=420)
    finally:
        _end_open_sessions(client, fake_app["args"]["ingress"]["store_path"])
    summary = done.stdout[-8000:]
    assert "API operations" in done.stdout or "operations" in done.stdout, summary  # it ran, against our schema
    assert done.returncode == 0, summary
