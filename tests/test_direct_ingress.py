"""ingress.direct_ingress (the default): `make run` (scripts/run_service.py) with the Ingress replica
serving HTTP on the service's port itself, no Serve proxy in between, and a replica that replaces a
crashed one taking the same port at once. A local Ray of its own in a subprocess
(this pytest process may already hold the `serve_app` cluster), stopped as `make run` is stopped."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import yaml

from devtools.local_serve import free_port, wait_healthy
from tests.conftest import (FIXTURES, ROOT, TEST_API_KEY, TEST_TOKEN_SECRET, needs_fixtures,
                            needs_models, shared_weights_path)

pytestmark = [needs_fixtures, needs_models]


def _listener(port: int) -> psutil.Process | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def test_make_run_with_direct_ingress_serves_a_session():
    import httpx

    # Short: Ray's socket paths must stay under the kernel's 107-character limit.
    tmp_path = Path(tempfile.mkdtemp(prefix="pd-"))

    config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
    args = config["applications"][0]["args"]
    args["ingress"].update(direct_ingress=True, store_path=str(tmp_path / "sessions.sqlite3"))
    args["detector"]["weights"] = shared_weights_path()
    args["auth"].update(api_keys=[TEST_API_KEY], token_secret=TEST_TOKEN_SECRET)
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    # A new local Ray in its own temp dir, whatever else runs here.
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp_path / "run_service.log").open("w")
    service = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_service.py"), "--config", str(config_path),
                                "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, timeout=180, interval=1, starting=lambda: service.poll() is None):
            raise AssertionError(f"not healthy: {(tmp_path / 'run_service.log').read_text()[-3000:]}")

        owner = _listener(port)
        assert owner is not None and "ServeReplica:proctor:Ingress" in " ".join(owner.cmdline()), owner

        frames = [base64.b64encode((FIXTURES / "images" / name).read_bytes()).decode()
                  for name in ("webcam_single_face_center.jpg", "two_faces_obama_biden.jpg")]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_API_KEY}"}, timeout=60) as client:
            started = client.post("/start-session", json={"candidate_id": "direct-1"})
            assert started.status_code == 200, started.text
            session_id = started.json()["session_id"]
            faces = []
            for i in range(4):
                r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frames[i % 2],
                                                        "timestamp": i * 0.5})
                assert r.status_code == 200, r.text
                faces.append(r.json()["faces"])
            assert faces == [1, 2, 1, 2]
            bad = client.post("/analyze-frame", json={"session_id": session_id, "frame": "not base64!", "timestamp": 3})
            assert bad.status_code == 400, bad.text

            # The Ingress replica crashes while this client holds a keep-alive connection to it, so
            # the kernel leaves the port's old connection in TIME_WAIT. The replica Serve starts in
            # its place must bind the same port (Ray binds without SO_REUSEADDR; the replica sets
            # it), and the session goes on from the store.
            owner.kill()
            owner.wait(timeout=30)
            if not wait_healthy(url, timeout=120, interval=1, starting=lambda: service.poll() is None):
                raise AssertionError(f"no Ingress came back on the port: {(tmp_path / 'run_service.log').read_text()[-3000:]}")
            replacement = _listener(port)
            assert replacement is not None and replacement.pid != owner.pid
            r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frames[0], "timestamp": 4})
            assert r.status_code == 200 and r.json()["faces"] == 1, r.text

            ended = client.post("/end-session", json={"session_id": session_id})
            assert ended.status_code == 200 and ended.json()["frames"] == 5, ended.text
    finally:
        service.send_signal(signal.SIGTERM)  # as Ctrl-C on `make run`
        try:
            service.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "run_service.log").read_text()
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert service.returncode == 0, output[-3000:]
    assert _listener(port) is None
