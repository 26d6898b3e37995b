"""Shared test fixtures: paths to the real photos and weights, and a running Serve app."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shared_dir(env: str, fallback: str) -> Path | None:
    value = os.environ.get(env)
    path = Path(value) if value else ROOT.parent / "shared" / fallback
    return path if path.is_dir() else None


FIXTURES = _shared_dir("PROCTOR_TEST_FIXTURES", "fixtures")
MODELS = _shared_dir("PROCTOR_TEST_MODELS", "models")

needs_fixtures = pytest.mark.skipif(
    FIXTURES is None, reason="needs ../shared/fixtures (real photos); set PROCTOR_TEST_FIXTURES"
)
needs_models = pytest.mark.skipif(
    MODELS is None or not (MODELS / "yolov8n_coco_dequant.pt").is_file(),
    reason="needs ../shared/models/yolov8n_coco_dequant.pt; set PROCTOR_TEST_MODELS",
)


@pytest.fixture(scope="session")
def labels() -> dict:
    return json.loads((FIXTURES / "labels.json").read_text())


def image_bytes(name: str) -> bytes:
    return (FIXTURES / "images" / name).read_bytes()


def frame_b64(name: str) -> str:
    return base64.b64encode(image_bytes(name)).decode()


def start_session(client, candidate_id: str = "12345") -> dict:
    """POST /start-session through an httpx client; the answer's body (asserted 200)."""
    r = client.post("/start-session", json={"candidate_id": candidate_id})
    assert r.status_code == 200, r.text
    return r.json()


def jittered_frame_b64(name: str, seed: int) -> str:
    """The photo as a live camera would send it again: faint sensor noise, re-encoded. (Sending the
    same bytes twice is a frozen camera, which the service rightly refuses to judge.)"""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(image_bytes(name), np.uint8), cv2.IMREAD_COLOR)
    noise = np.random.default_rng(seed).integers(-2, 3, image.shape, dtype=np.int16)
    noisy = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return base64.b64encode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()


def shared_weights_path() -> str:
    return str(MODELS / "yolov8n_coco_dequant.pt")


IDLE_TIMEOUT_S = 45  # longer than an app redeploy on a loaded 2-core machine (the restart test)
MAX_OPEN_SESSIONS = 12  # reached well within IDLE_TIMEOUT_S, so the reaper cannot interfere
TEST_API_KEY = "test-integrator-key-0123456789"
OTHER_API_KEY = "rotated-integrator-key-9876543210"
TEST_TOKEN_SECRET = "test-token-secret"
AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float, interval: float = 0.5, starting=lambda: True) -> bool:
    """True once GET {url}/health answers 200; False after `timeout` s, or as soon as `starting()`
    says the service is gone (a process that exited)."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline and starting():
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False


def _deploy(args: dict[str, Any]) -> None:
    """(Re)deploys the app named proctor with these args and config/serve.yaml's deployment options."""
    from ray import serve

    from graph import build_app_with_options, load_deployment_options

    serve.run(build_app_with_options(args, load_deployment_options()), name="proctor", route_prefix="/")


@contextmanager
def redeployed_app(serve_app: dict, overrides: dict[str, dict[str, Any]]) -> Iterator[dict]:
    """serve_app's app redeployed with some args changed (`{"ingress": {"store_url": ...}}`), then put
    back as it was. It runs on serve_app's Ray cluster: a process holds one Ray cluster at a time."""
    args = {section: dict(values) for section, values in serve_app["args"].items()}
    for section, values in overrides.items():
        args[section] = {**args.get(section, {}), **values}
    _deploy(args)
    try:
        yield {**serve_app, "args": args}
    finally:
        _deploy(serve_app["args"])


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the whole run (tests/postgres_server.py); skipped, with the
    reason, where none can be started."""
    from tests.postgres_server import postgres_server, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A new empty database on that server, one per test."""
    from tests.postgres_server import create_database

    return create_database(postgres_admin_url, f"proctor_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def serve_app():
    """The real app (config/serve.yaml, test weights) on a Ray cluster of its own; stopped after."""
    if FIXTURES is None or MODELS is None:
        pytest.skip("the end-to-end app needs ../shared (fixtures and weights)")
    import ray
    from ray import serve

    from graph import load_args, start_local_serve

    tmp = Path(tempfile.mkdtemp(prefix="proctor-test-"))
    args = load_args()
    args["detector"]["weights"] = shared_weights_path()
    args["ingress"]["store_path"] = str(tmp / "sessions.sqlite3")
    # Short enough for a test to watch a session go idle, long enough for no other test to.
    args["ingress"]["idle_timeout_s"] = IDLE_TIMEOUT_S
    args["ingress"]["reaper_interval_s"] = 1
    args["ingress"]["max_open_sessions"] = MAX_OPEN_SESSIONS
    args["auth"]["api_keys"] = [TEST_API_KEY, OTHER_API_KEY]  # two valid at once: rotation
    args["auth"]["token_secret"] = TEST_TOKEN_SECRET
    port, metrics_port = _free_port(), _free_port()
    # Served as `make run` serves it (config's ingress.direct_ingress: no proxy hop).
    start_local_serve(port, args["ingress"].get("direct_ingress", False), num_cpus=2, include_dashboard=False,
                      _temp_dir=str(tmp / "ray"), namespace="serve", log_to_driver=False,
                      _metrics_export_port=metrics_port)
    try:
        _deploy(args)
        url = f"http://127.0.0.1:{port}"
        if not wait_healthy(url, timeout=120):
            raise RuntimeError("the app did not become healthy within 120 s")
        yield {"url": url, "args": args, "tmp": tmp, "port": port, "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            if not os.environ.get("PROCTOR_KEEP_TEST_TMP"):  # set it to read Ray's logs after a failure
                shutil.rmtree(tmp, ignore_errors=True)
