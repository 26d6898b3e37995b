"""A webhook receiver on loopback for the tests: a real HTTP server in a thread that verifies every
delivery with the reference Standard Webhooks library (`standardwebhooks`) and records what came.
What it answers is scripted: `receiver.script = lambda delivery: (status, headers, delay_s)`."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    verified: bool  # the signature checked out under one of the receiver's secrets
    payload: dict[str, Any] | None
    at: float = field(default_factory=time.time)

    @property
    def message_id(self) -> str:
        return self.headers.get("webhook-id", "")


class WebhookReceiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.received: list[Received] = []
        self.lock = threading.RLock()  # wait_for's predicate may call of_type
        self.script: Callable[[Received], tuple[int, dict[str, str], float]] = lambda _: (200, {}, 0.0)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload, verified = None, False
                for secret in list(receiver.secrets):
                    try:
                        payload, verified = Webhook(secret).verify(body, headers), True
                        break
                    except WebhookVerificationError:
                        continue
                got = Received(self.path, headers, body, verified, payload)
                with receiver.lock:
                    receiver.received.append(got)
                status, extra, delay = receiver.script(got)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (its timeout) and closed the connection

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, kind: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.payload and r.payload.get("type") == kind]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 60) -> bool:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.lock:
                if predicate(list(self.received)):
                    return True
            time.sleep(0.1)
        return False


def body_json(received: Received) -> dict[str, Any]:
    return json.loads(received.body)
