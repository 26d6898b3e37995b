"""Proctor as an Open edX REST proctoring provider, driven by edX's own client code: edx-proctoring's
`BaseRestProctoringProvider` (6.1.4), whose calls go through edx-rest-api-client's `OAuthAPIClient`
(client-credentials token, `Authorization: JWT`), running in its own virtualenv (.venv-edx, `make
edx-client`; tests/edx_client/driver.py) against the running fake-model app's /edx. The LMS side of
the review callback is tests/fake_lms.py on loopback, and every review it receives also passes
through what edX's review view reads (`ReviewStatus.validate`, the comment fields)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import (AUTH, EDX_CLIENT_ID, EDX_CLIENT_SECRET, LMS_CLIENT_ID, LMS_CLIENT_SECRET, REVIEWER, ROOT,
                            send_frame)
from tests.fake_lms import FakeLms, contract_problems
from tests.fakes import scripted_frame

EDX_PYTHON = Path(os.environ.get("PROCTOR_EDX_PYTHON", ROOT / ".venv-edx" / "bin" / "python"))
needs_edx_client = pytest.mark.skipif(not EDX_PYTHON.is_file(),
                                      reason=f"needs edX's client code in {EDX_PYTHON}: run `make edx-client`")


class EdxDriver:
    """The LMS's backend object in the edX environment, called one method at a time."""

    def __init__(self, base_url: str, client_id: str = EDX_CLIENT_ID, client_secret: str = EDX_CLIENT_SECRET):
        # edX's environment, not the service's: of PYTHONPATH only the offline guard (netguard) stays
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        guard = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p.rstrip("/").endswith("netguard")]
        if guard:
            env["PYTHONPATH"] = os.pathsep.join(guard)
        self.process = subprocess.Popen(
            [str(EDX_PYTHON), "driver.py", "--base-url", base_url, "--client-id", client_id,
             "--client-secret", client_secret],
            cwd=ROOT / "tests" / "edx_client", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env)
        assert self._answer() == {"ok": "ready"}

    def _answer(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the edX driver exited")
            if line.startswith("{"):
                return json.loads(line)

    def call(self, method: str, *args):
        self.process.stdin.write(json.dumps({"call": method, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise RuntimeError(f"{answer['error']}: {answer['detail']}")
        return answer["ok"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def lms(fake_app):
    with FakeLms(fake_app["lms_port"], LMS_CLIENT_ID, LMS_CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
def edx(fake_app):
    driver = EdxDriver(fake_app["url"] + "/edx")
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def client(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as c:
        yield c


def frame(seed: int, **script) -> str:
    return base64.b64encode(scripted_frame(seed=seed, **script)).decode()


EXAM = {"id": 7, "name": "Final exam", "course_id": "course-v1:Proctor+T101+2026", "is_practice": False,
        "is_proctored": True, "time_limit_mins": 60, "is_active": True,
        "rules": {"no_phone": True, "no_other_people": True}, "rule_summary": "no phones", "backend": "proctor"}


def context(fake_app, user_id: str) -> dict:
    """What the LMS sends to register an attempt (edx_proctoring.api._register_proctored_exam_attempt)."""
    return {"lms_host": fake_app["args"]["edx"]["lms_url"], "time_limit_mins": 60, "attempt_code": "SECRET-CODE",
            "is_sample_attempt": False, "user_id": user_id, "full_name": "Ada Lovelace", "email": "ada@example.edu",
            "review_policy": "no phones"}


@needs_edx_client
def test_an_edx_lms_runs_an_exam_attempt_through_proctor(edx, lms, client, fake_app):
    config = edx.call("get_proctoring_config")
    assert config["name"] == "Proctor" and "no_phone" in config["rules"] and config["instructions"]
    assert edx.call("get_software_download_url") == fake_app["args"]["edx"]["capture_url"]
    exam_id = edx.call("on_exam_saved", dict(EXAM))
    assert exam_id and edx.call("get_exam", {"id": exam_id})["rules"] == EXAM["rules"]
    assert edx.call("on_exam_saved", {**EXAM, "external_id": exam_id, "name": "Final (v2)"}) == exam_id  # update
    assert edx.call("get_exam", {"id": exam_id})["name"] == "Final (v2)"

    exam = {"id": 7, "external_id": exam_id}
    attempt_id = edx.call("register_exam_attempt", exam, context(fake_app, "u-4f2a9c"))
    state = client.get(f"/sessions/{attempt_id}").json()
    assert (state["status"], state["candidate_id"]) == ("registered", "edx:u-4f2a9c")
    r = client.post("/analyze-frame", json={"session_id": attempt_id, "frame": frame(0)})
    assert r.status_code == 409 and "not started" in r.json()["detail"]  # no frames before `started`
    attempt = {"proctored_exam": {"external_id": exam_id}, "external_id": attempt_id}
    assert edx.call("get_attempt", attempt)["status"] == "created"
    assert "token=" in edx.call("get_attempt", attempt)["download_url"]

    assert edx.call("start_exam_attempt", exam_id, attempt_id) == "started"
    for i in range(10):  # a phone in view for 3 s
        send_frame(client, attempt_id, frame(i, objects=["cell phone"] if 2 <= i < 8 else []), timestamp=5 + 0.5 * i)
    assert edx.call("get_attempt", attempt)["status"] == "started"
    lms.script = lambda _: 503 if len(lms.refused) < 1 else 200  # the LMS fails once: the outbox retries
    assert edx.call("stop_exam_attempt", exam_id, attempt_id) == "submitted"
    assert edx.call("get_attempt", attempt)["status"] == "submitted"

    automatic = lms.wait_for_review(attempt_id)
    assert len(automatic) == 1, lms.refused
    review = automatic[0]
    assert contract_problems(review) == [] and review["status"] == "suspicious"  # never violation by itself
    assert "reviewed_by" not in review  # so edX holds it for its own second review
    phone = [c for c in review["comments"] if c["comment"].startswith("PHONE_DETECTED")]
    assert phone and phone[0]["status"] == "auto"
    assert all(isinstance(c[k], int) for c in review["comments"] for k in ("start", "stop", "duration"))
    assert phone[0]["start"] <= 2 and phone[0]["stop"] >= 3 and phone[0]["duration"] == phone[0]["stop"] - phone[0]["start"]
    assert edx.call("validate_review", review)["review_status"] == "Suspicious"  # edX's own check

    # a human confirms the phone and decides CHEATING: only now a violation, sent again
    event_id = client.get(f"/sessions/{attempt_id}/report").json()["events"][0]["id"]
    with httpx.Client(base_url=fake_app["url"], timeout=60, headers=REVIEWER) as reviewer:
        reviewer.post(f"/sessions/{attempt_id}/events/{event_id}/review",
                      json={"decision": "confirmed", "note": "phone under the desk"})
        assert reviewer.post(f"/sessions/{attempt_id}/review",
                             json={"outcome": "CHEATING", "reviewer": "staff@example.edu"}).status_code == 200
    human = lms.wait_for_review(attempt_id, 2)[1]
    assert contract_problems(human) == [] and human["status"] == "violation"
    assert human["reviewed_by"] == "staff@example.edu"
    confirmed = [c for c in human["comments"] if c["comment"].startswith("PHONE_DETECTED")][0]
    assert confirmed["status"] == "confirmed" and "phone under the desk" in confirmed["comment"]
    assert edx.call("validate_review", human)["review_status"] == "Rules Violation"
    assert lms.tokens_issued >= 1 and [s for s, _ in lms.refused] == [503]  # the one scripted failure

    # an attempt in error ends with status error, and no result is sent for it
    errored = edx.call("register_exam_attempt", exam, context(fake_app, "u-4f2a9c"))
    assert edx.call("start_exam_attempt", exam_id, errored) == "started"
    assert edx.call("mark_erroneous_exam_attempt", exam_id, errored) == "error"
    assert client.get(f"/sessions/{errored}").json()["status"] == "error"
    # deleting an attempt deletes its session; retiring the user deletes all of theirs
    assert edx.call("remove_exam_attempt", exam_id, errored) is True
    assert client.get(f"/sessions/{errored}").status_code == 404
    assert edx.call("retire_user", "u-4f2a9c") is True
    assert client.get(f"/sessions/{attempt_id}").status_code == 404
    assert edx.call("retire_user", "u-4f2a9c") is False
    time.sleep(2)
    assert lms.reviews_of(errored) == []


@needs_edx_client
def test_the_provider_api_needs_the_lms_token(fake_app, lms):
    base = fake_app["url"] + "/edx"
    with pytest.raises(RuntimeError, match="401"):
        wrong = EdxDriver(base, client_secret="not-the-secret-0000000")
        try:
            wrong.call("get_proctoring_config")
        finally:
            wrong.close()
    with httpx.Client(base_url=base, timeout=60) as plain:
        assert plain.get("/api/v1/config/").status_code == 401
        assert plain.get("/api/v1/config/", headers={"Authorization": f"Bearer {AUTH['Authorization'][7:]}"}).status_code == 401
        assert plain.get("/api/v1/config/", headers={"Authorization": "JWT not.a.token"}).status_code == 401
        token = plain.post("/oauth2/access_token", data={"grant_type": "client_credentials", "client_id": EDX_CLIENT_ID,
                                                         "client_secret": EDX_CLIENT_SECRET, "token_type": "jwt"}).json()
        assert token["token_type"] == "JWT" and token["expires_in"] > 0
        jwt_header = {"Authorization": f"JWT {token['access_token']}"}
        assert plain.get("/api/v1/config/", headers=jwt_header).status_code == 200
        assert plain.get("/api/v1/exam/nope/", headers=jwt_header).status_code == 404
        r = plain.post("/api/v1/exam/nope/attempt/", headers=jwt_header, json={"lms_host": "x", "user_id": "u"})
        assert r.status_code == 404
        exam_id = plain.post("/api/v1/exam/", headers=jwt_header, json=EXAM).json()["id"]
        r = plain.post(f"/api/v1/exam/{exam_id}/attempt/", headers=jwt_header,
                       json={**context(fake_app, "u1"), "lms_host": "https://evil.example"})
        assert r.status_code == 422 and "lms_host" in r.json()["detail"]  # results go to the configured LMS only
        r = plain.patch(f"/api/v1/exam/{exam_id}/attempt/nope/", headers=jwt_header, json={"status": "bogus"})
        assert r.status_code == 422
        assert plain.get("/openapi.json").json()["paths"]["/api/v1/exam/{exam_id}/attempt/"]
