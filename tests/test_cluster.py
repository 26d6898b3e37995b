"""config/serve.yaml deployed with `serve deploy` to a real two-node Ray cluster: a head and a second
node started with `ray start` on loopback, sessions stored in PostgreSQL.

Each node gets 1 logical CPU, so the unchanged deployment options (ObjectDetector 1 CPU, FaceGaze
0.5, Ingress 0.25) cannot all fit on one node: the model replicas must sit on both nodes, and the
test checks that they do. Everything Ray here runs in subprocesses (this pytest process may already
hold the `serve_app` cluster), and the fixture kills exactly the processes of this cluster.
"""
from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from devtools.local_serve import free_port
from devtools.ray_cluster import RAY, SERVE, cluster_env, kill_processes_naming, run
from tests.conftest import (FIXTURES, ROOT, TEST_API_KEY, TEST_TOKEN_SECRET, needs_fixtures,
                            needs_models, shared_weights_path)

pytestmark = [needs_fixtures, needs_models]

AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}


def _cluster_config(path: Path, http_port: int, store_url: str) -> None:
    """config/serve.yaml as an operator would deploy it to this cluster: same applications and
    deployment options; this machine's weights, store, keys and port."""
    config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
    # Both "nodes" share one loopback address, so one proxy (on the head) instead of one per node.
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = http_port
    args = config["applications"][0]["args"]
    args["detector"]["weights"] = shared_weights_path()
    args["ingress"]["store_url"] = store_url
    args["auth"]["api_keys"] = [TEST_API_KEY]
    args["auth"]["token_secret"] = TEST_TOKEN_SECRET
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def cluster(postgres_admin_url):
    import uuid

    import httpx

    from tests.postgres_server import create_database

    postgres_url = create_database(postgres_admin_url, f"proctor_cluster_{uuid.uuid4().hex[:8]}")

    # Short: Ray's socket paths must stay under the kernel's 107-character limit.
    tmp = Path(tempfile.mkdtemp(prefix="pc-"))
    marker = str(tmp)
    # Token auth, as a cluster should run: every node and client gets the same token (here one for
    # this test only, so ~/.ray/auth_token is neither needed nor touched).
    token = secrets.token_hex(32)
    env = cluster_env(token)
    gcs, dashboard, http_port = free_port(), free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=200000000",
              "--disable-usage-stats"]
    try:
        run([RAY, "start", "--head", f"--port={gcs}", f"--temp-dir={tmp}", "--include-dashboard=true",
              "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
              f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
              f"--ray-client-server-port={free_port()}", "--resources={\"head_node\": 1}", *common], env)
        run([RAY, "start", f"--address=127.0.0.1:{gcs}", f"--dashboard-agent-listen-port={free_port()}",
              f"--metrics-export-port={free_port()}", f"--temp-dir={tmp}", *common], env)
        config = tmp / "serve.yaml"
        _cluster_config(config, http_port, postgres_url)
        dashboard_url = f"http://127.0.0.1:{dashboard}"
        run([SERVE, "deploy", str(config), "--address", dashboard_url], env)
        url = f"http://127.0.0.1:{http_port}"
        deadline, status = time.time() + 300, ""
        while time.time() < deadline:
            status = subprocess.run([SERVE, "status", "--address", dashboard_url], env=env, capture_output=True,
                                    text=True, timeout=60).stdout
            try:
                if "RUNNING" in status and httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            raise RuntimeError(f"the app did not become healthy on the cluster within 300 s:\n{status}")
        yield {"url": url, "dashboard": dashboard_url, "store_url": postgres_url, "env": env,
               "dashboard_auth": {"Authorization": f"Bearer {token}"}}
    finally:
        kill_processes_naming(marker)
        if not os.environ.get("PROCTOR_KEEP_TEST_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive_actors(cluster: dict) -> list[dict]:
    import httpx

    r = httpx.get(f"{cluster['dashboard']}/api/v0/actors", params={"limit": 1000, "detail": "true"},
                  headers=cluster["dashboard_auth"], timeout=30)
    r.raise_for_status()
    return [a for a in r.json()["data"]["result"]["result"] if a["state"] == "ALIVE"]


def _clip_frames(count: int) -> list[str]:
    import cv2

    from vision.evaluation import read_video  # upright, as a browser would send them

    frames = []
    for _, frame in read_video(FIXTURES / "videos" / "webcam_gaze_center.mp4", 1):
        frames.append(base64.b64encode(cv2.imencode(".jpg", frame)[1].tobytes()).decode())
        if len(frames) == count:
            break
    return frames


def test_serve_deploy_spreads_replicas_over_two_nodes_and_runs_a_session(cluster):
    import httpx
    import psycopg

    nodes = httpx.get(f"{cluster['dashboard']}/api/v0/nodes", params={"limit": 100},
                      headers=cluster["dashboard_auth"], timeout=30).json()
    alive_nodes = {n["node_id"] for n in nodes["data"]["result"]["result"] if n["state"] == "ALIVE"}
    assert len(alive_nodes) == 2, nodes

    replicas = {a["class_name"]: a["node_id"] for a in _alive_actors(cluster)
                if a["class_name"].startswith("ServeReplica:proctor:")}
    detector, face = replicas["ServeReplica:proctor:ObjectDetector"], replicas["ServeReplica:proctor:FaceGaze"]
    assert {detector, face} == alive_nodes, replicas  # one model on each node

    with httpx.Client(base_url=cluster["url"], headers=AUTH, timeout=60) as client:
        started = client.post("/start-session", json={"candidate_id": "cluster-1"})
        assert started.status_code == 200, started.text
        session_id = started.json()["session_id"]
        for i, frame in enumerate(_clip_frames(6)):
            r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame, "timestamp": i * 0.5})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["faces"] == 1 and any(o["label"] == "person" for o in body["objects"]), body
        ended = client.post("/end-session", json={"session_id": session_id})
        assert ended.status_code == 200, ended.text
        report = client.get(f"/sessions/{session_id}/report")
        assert report.status_code == 200, report.text
        assert report.json()["verdict"] in {"CLEAN", "SUSPICIOUS", "CHEATING"}

    # The session's actor ran on the cluster, and the session lives in PostgreSQL, not on a node.
    with psycopg.connect(cluster["store_url"]) as conn:
        status, = conn.execute("SELECT status FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        frames, = conn.execute("SELECT count(*) FROM observations WHERE session_id = %s", (session_id,)).fetchone()
    assert status == "ended" and frames == 6
