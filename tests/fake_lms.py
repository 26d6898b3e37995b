"""The LMS side of the edX review callback, as a loopback fake in the style of edX's mockprock: its
client-credentials token endpoint (`/oauth2/access_token`, issuing HS256 JWTs) and the review
callback (`/api/edx_proctoring/v1/proctored_exam/attempt/{id}/reviewed`), which accepts only a
valid `Authorization: JWT` and a body whose field names and types are the contract's
(edx-proctoring's views.BaseReviewCallback.make_review and statuses.ReviewStatus). What it answers
can be scripted to fail first."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs

import jwt

REVIEW_PATH = re.compile(r"^/api/edx_proctoring/v1/proctored_exam/attempt/(?P<id>[-\w]+)/reviewed$")
TOP_LEVEL = {"status", "comments", "reviewed_by", "payload"}
STATUSES = {"passed", "violation", "suspicious", "not_reviewed"}
COMMENT_REQUIRED = {"comment": str, "status": str}
COMMENT_OPTIONAL = {"start": int, "stop": int, "duration": int}


def contract_problems(body: Any) -> list[str]:
    """Where a review body departs from the contract (empty: it conforms)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = [f"unknown field {k!r}" for k in body if k not in TOP_LEVEL]
    if body.get("status") not in STATUSES:
        problems.append(f"status {body.get('status')!r} is not one of {sorted(STATUSES)}")
    if not isinstance(body.get("comments"), list):
        problems.append("comments is not a list")
    for i, comment in enumerate(body.get("comments") or []):
        for key, kind in COMMENT_REQUIRED.items():
            if not isinstance(comment.get(key), kind):
                problems.append(f"comments[{i}].{key} is missing or not {kind.__name__}")
        for key, kind in COMMENT_OPTIONAL.items():
            if key in comment and (not isinstance(comment[key], kind) or isinstance(comment[key], bool)):
                problems.append(f"comments[{i}].{key} is not a whole number")
        extra = set(comment) - set(COMMENT_REQUIRED) - set(COMMENT_OPTIONAL)
        if extra:
            problems.append(f"comments[{i}] has unknown fields {sorted(extra)}")
        if len(comment.get("status", "")) > 255:
            problems.append(f"comments[{i}].status is over 255 characters")
    if "reviewed_by" in body and not isinstance(body["reviewed_by"], str):
        problems.append("reviewed_by is not an email")
    return problems


class FakeLms:
    def __init__(self, port: int, client_id: str, client_secret: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.key = "fake-lms-jwt-key"
        self.reviews: list[tuple[str, dict[str, Any]]] = []  # (attempt id, body), accepted ones
        self.refused: list[tuple[int, str]] = []
        self.tokens_issued = 0
        self.lock = threading.Lock()
        self.script: Callable[[str], int] = lambda attempt_id: 200
        lms = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                if self.path == "/oauth2/access_token":
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                    if (form.get("grant_type"), form.get("client_id"), form.get("client_secret"), form.get("token_type")) != \
                            ("client_credentials", lms.client_id, lms.client_secret, "jwt"):
                        return self._answer(401, {"error": "invalid_client"})
                    with lms.lock:
                        lms.tokens_issued += 1
                    token = jwt.encode({"sub": lms.client_id, "exp": int(time.time()) + 60}, lms.key, algorithm="HS256")
                    return self._answer(200, {"access_token": token, "expires_in": 60, "token_type": "JWT"})
                match = REVIEW_PATH.match(self.path)
                if not match:
                    return self._answer(404, {"detail": "no such LMS page"})
                scheme, _, token = self.headers.get("authorization", "").partition(" ")
                try:
                    assert scheme == "JWT"
                    jwt.decode(token, lms.key, algorithms=["HS256"])
                except Exception:  # noqa: BLE001 - JwtAuthentication's answer
                    with lms.lock:
                        lms.refused.append((401, "bad token"))
                    return self._answer(401, {"detail": "Authentication credentials were not provided."})
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                problems = contract_problems(body)
                if problems:
                    with lms.lock:
                        lms.refused.append((400, "; ".join(problems)))
                    return self._answer(400, {"detail": problems})
                status = lms.script(match["id"])
                if status != 200:
                    with lms.lock:
                        lms.refused.append((status, "scripted"))
                    return self._answer(status, {"detail": "scripted failure"})
                with lms.lock:
                    lms.reviews.append((match["id"], body))
                return self._answer(200, "OK")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeLms":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reviews_of(self, attempt_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for aid, body in self.reviews if aid == attempt_id]

    def wait_for_review(self, attempt_id: str, count: int = 1, timeout_s: float = 60) -> list[dict[str, Any]]:
        deadline = time.time() + timeout_s
        while time.time() < deadline and len(self.reviews_of(attempt_id)) < count:
            time.sleep(0.2)
        return self.reviews_of(attempt_id)
