"""Shared test fixtures: paths to the real photos and weights, and the running Serve apps.

One Ray cluster per test run (`ray_cluster`) holds two applications, each deployed on first use:
- `serve_app`: the real app (config/serve.yaml, real MediaPipe and YOLO weights) at `/`;
- `fake_app`: the same Ingress, store and session actors with fake model deployments
  (tests/fakes.py) at `/fake`: the serving-layer tests (API, auth, limits, lifecycle, streams,
  reaper) run against it without loading a model.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
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


def send_frame(client, session_id: str, frame_b64: str, timestamp: float | None = None) -> dict:
    """POST /analyze-frame; the answer's body (asserted 200)."""
    payload = {"session_id": session_id, "frame": frame_b64}
    if timestamp is not None:
        payload["timestamp"] = timestamp
    r = client.post("/analyze-frame", json=payload)
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
REVIEWER_KEY = "test-reviewer-key-0123456789"
REVIEWER = {"Authorization": f"Bearer {REVIEWER_KEY}"}
# The fake-model app is also an Open edX provider; its LMS is tests/fake_lms.py on a port reserved here.
EDX_CLIENT_ID, EDX_CLIENT_SECRET = "edx-lms-client", "edx-client-secret-0123456789"
LMS_CLIENT_ID, LMS_CLIENT_SECRET = "proctor-at-the-lms", "lms-client-secret-0123456789"
# Webhooks to loopback receivers, retried within seconds, not hours.
TEST_WEBHOOKS = {"allow_loopback": True, "timeout_s": 3.0, "retry_schedule_s": [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                 "jitter": 0.1, "poll_interval_s": 0.2}


FAKE_PREFIX = "/fake"


def deploy(args: dict[str, Any], fake: bool = False, ingress_replicas: int | None = None) -> None:
    """(Re)deploys the real app (`proctor` at /) or the fake-model one (`proctor-fake` at /fake) with
    these args and config/serve.yaml's deployment options."""
    from ray import serve

    from graph import compose_app
    from settings import load_deployment_options

    options = load_deployment_options()
    if ingress_replicas is not None:
        options["Ingress"] = {**options["Ingress"], "num_replicas": ingress_replicas}
    if not fake:
        serve.run(compose_app(args, deployment_options=options), name="proctor", route_prefix="/")
        return
    from tests.fakes import FakeFaceGaze, FakeObjectDetector

    # No CPU of their own: the real app's replicas hold this 2-CPU cluster's logical CPUs.
    options = {name: {**o, "ray_actor_options": {**o.get("ray_actor_options", {}), "num_cpus": 0}}
               for name, o in options.items()}
    serve.run(compose_app(args, deployment_options=options, face_gaze=FakeFaceGaze, object_detector=FakeObjectDetector),
              name="proctor-fake", route_prefix=FAKE_PREFIX)


@contextmanager
def redeployed_app(serve_app: dict, overrides: dict[str, dict[str, Any]],
                   ingress_replicas: int | None = None) -> Iterator[dict]:
    """serve_app's app redeployed with some args changed (`{"ingress": {"store_url": ...}}`), then put
    back as it was. It runs on serve_app's Ray cluster: a process holds one Ray cluster at a time."""
    args = {section: dict(values) for section, values in serve_app["args"].items()}
    for section, values in overrides.items():
        args[section] = {**args.get(section, {}), **values}
    deploy(args, serve_app["fake"], ingress_replicas)
    try:
        yield {**serve_app, "args": args}
    finally:
        deploy(serve_app["args"], serve_app["fake"])


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


def _app_args(tmp: Path, store_name: str) -> dict[str, Any]:
    from settings import load_args

    args = load_args()
    args["ingress"]["store_path"] = str(tmp / store_name)
    args["ingress"]["reaper_interval_s"] = 1
    args["ingress"]["max_open_sessions"] = MAX_OPEN_SESSIONS
    args["auth"]["api_keys"] = [TEST_API_KEY, OTHER_API_KEY]  # two valid at once: rotation
    args["auth"]["reviewer_keys"] = [REVIEWER_KEY]
    args["auth"]["token_secret"] = TEST_TOKEN_SECRET
    args["webhooks"] = {**args["webhooks"], **TEST_WEBHOOKS}
    return args


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray cluster of this test run's own (its temp dir, its ports), served as `make run` serves;
    stopped after."""
    import ray
    from ray import serve

    from devtools.local_serve import free_port, start_local_serve
    from settings import load_args

    tmp = Path(tempfile.mkdtemp(prefix="proctor-test-"))
    port, metrics_port = free_port(), free_port()
    # Through Serve's proxy, not direct ingress: the suite runs several apps and redeploys with two
    # Ingress replicas, and direct ingress gives one node's Ingress one port (tests/test_direct_ingress.py
    # covers `make run`'s direct ingress).
    start_local_serve(port, {**load_args()["ingress"], "direct_ingress": False}, num_cpus=2, include_dashboard=False,
                      _temp_dir=str(tmp / "ray"), namespace="serve", log_to_driver=False,
                      _metrics_export_port=metrics_port)
    try:
        yield {"root": f"http://127.0.0.1:{port}", "tmp": tmp, "port": port,
               "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            if not os.environ.get("PROCTOR_KEEP_TEST_TMP"):  # set it to read Ray's logs after a failure
                shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def serve_app(ray_cluster):
    """The real app (config/serve.yaml, test weights) at / on the test run's cluster."""
    if FIXTURES is None or MODELS is None:
        pytest.skip("the end-to-end app needs ../shared (fixtures and weights)")
    from devtools.local_serve import wait_healthy

    args = _app_args(ray_cluster["tmp"], "sessions.sqlite3")
    args["detector"]["weights"] = shared_weights_path()
    # Short enough for a test to watch a session go idle, long enough for no other test to.
    args["ingress"]["idle_timeout_s"] = IDLE_TIMEOUT_S
    deploy(args)
    url = ray_cluster["root"]
    if not wait_healthy(url, timeout=120):
        raise RuntimeError("the app did not become healthy within 120 s")
    yield {**ray_cluster, "url": url, "args": args, "fake": False}


@pytest.fixture(scope="session")
def fake_app(ray_cluster):
    """The app with fake models (tests/fakes.py) at /fake: its own store, a short idle timeout."""
    from devtools.local_serve import wait_healthy

    from devtools.local_serve import free_port

    args = _app_args(ray_cluster["tmp"], "fake-sessions.sqlite3")
    args["ingress"]["idle_timeout_s"] = IDLE_TIMEOUT_S
    lms_port = free_port()
    args["edx"] = {**args["edx"], "enabled": True, "client_id": EDX_CLIENT_ID, "client_secret": EDX_CLIENT_SECRET,
                   "lms_url": f"http://127.0.0.1:{lms_port}", "lms_client_id": LMS_CLIENT_ID,
                   "lms_client_secret": LMS_CLIENT_SECRET, "capture_url": "http://127.0.0.1/capture"}
    # The fakes answer from a frame's script, not its pixels: a scripted phone may sit on unchanged
    # pixels, which the detector gate would rightly skip. The gate is tested on real frames.
    args["detector_gate"]["enabled"] = False
    # Fake faces have no one to recognise: identity is tested on real faces (test_identity.py).
    args["risk"]["identity"]["enabled"] = False
    deploy(args, fake=True)
    url = ray_cluster["root"] + FAKE_PREFIX
    if not wait_healthy(url, timeout=60):
        raise RuntimeError("the fake-model app did not become healthy within 60 s")
    yield {**ray_cluster, "url": url, "args": args, "fake": True, "lms_port": lms_port}
