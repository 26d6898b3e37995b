"""Autoscaling on a real autoscaling Ray cluster (devtools/ray_cluster.AutoscalingCluster): a head
with room for one replica of each deployment and the Ray autoscaler, whose worker nodes (1 logical
CPU: one ObjectDetector replica) it launches and stops itself. `serve deploy` of config/serve.yaml
with its own autoscaling_config (delays shortened so the test fits CI), then a wave of interviews
streaming real webcam frames: Serve adds an ObjectDetector replica, the autoscaler adds a node for
it, sessions keep being answered and nothing they were answered is lost; after the wave the replica
and the node go away again, and a session open all along goes on (its actor stayed on a node that
stays, or was rebuilt from the store on its next frame: the test says which).

Everything Ray here runs in subprocesses on loopback (this pytest process may hold the suite's own
cluster), and only this cluster's processes are killed after.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from devtools.load_ramp import Phase, run_ramp
from devtools.local_serve import free_port, wait_healthy
from devtools.ray_cluster import AutoscalingCluster
from tests.conftest import ROOT, TEST_API_KEY, TEST_TOKEN_SECRET, needs_fixtures, needs_models, shared_weights_path

pytestmark = [needs_fixtures, needs_models]

AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}
# The config's autoscaling, with its waits shortened so a wave fits a CI run: what scales, and to
# how many replicas, stays config/serve.yaml's.
FAST = {"upscale_delay_s": 2, "downscale_delay_s": 8, "look_back_period_s": 4}


def autoscaling_config(path: Path, http_port: int, store_url: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
    config["proxy_location"] = "HeadOnly"  # every "node" is this machine's loopback: one proxy
    config["http_options"]["port"] = http_port
    args = config["applications"][0]["args"]
    args["detector"]["weights"] = shared_weights_path()
    args["ingress"]["store_url"] = store_url
    args["auth"].update(api_keys=[TEST_API_KEY], token_secret=TEST_TOKEN_SECRET)
    # YOLO on every frame, so a few sessions load the detector the way many would with the gate on.
    args["detector_gate"]["enabled"] = False
    for deployment in config["applications"][0]["deployments"]:
        if "autoscaling_config" in deployment:
            deployment["autoscaling_config"].update(FAST)
            deployment["autoscaling_config"]["max_replicas"] = min(2, deployment["autoscaling_config"]["max_replicas"])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


@pytest.fixture(scope="module")
def cluster(postgres_admin_url):
    import uuid

    from tests.postgres_server import create_database

    store_url = create_database(postgres_admin_url, f"proctor_scale_{uuid.uuid4().hex[:8]}")
    # Head: Ingress 0.25 + FaceGaze 0.5 + ObjectDetector 1 CPU fit in 2; a second detector does not.
    # Autoscaling metrics pushed every second (Serve: 10 s) so the wave is seen in time.
    cluster = AutoscalingCluster(head_cpus=2, worker_cpus=1, max_workers=2, idle_timeout_s=6, env_extra={
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"})
    cluster.start()
    try:
        http_port = free_port()
        config_path = cluster.tmp / "serve.yaml"
        autoscaling_config(config_path, http_port, store_url)
        cluster.serve_deploy(config_path)
        url = f"http://127.0.0.1:{http_port}"
        if not wait_healthy(url, timeout=300, interval=2):
            raise RuntimeError("the app did not become healthy on the autoscaling cluster within 300 s")
        yield {"cluster": cluster, "url": url, "store_url": store_url}
    finally:
        cluster.stop()


def webcam_frames(count: int = 48) -> list[str]:
    """640x480 webcam JPEGs (base64) from a development clip, as bench/load.py sends them."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import common

    return common.clip_frames(count * 3, "webcam_gaze_center_left_center.mp4", size=(640, 480))[::3]


def test_a_wave_scales_replicas_and_nodes_up_then_down_and_loses_nothing(cluster):
    import psycopg

    scaler: AutoscalingCluster = cluster["cluster"]
    head = {n["node_id"] for n in scaler.alive_nodes()}
    assert len(head) == 1

    def sample() -> dict:
        actors = scaler.alive_actors()
        return {"replicas": scaler.serve_replicas(), "nodes": len(scaler.alive_nodes()),
                "detector_nodes": sorted(a["node_id"] for a in actors
                                         if a["class_name"] == "ServeReplica:proctor:ObjectDetector"),
                "session_nodes": {a["name"]: a["node_id"] for a in actors if a["class_name"] == "RiskSession"}}

    phases = [Phase(8, 2, 1.0), Phase(45, 8, 2.0), Phase(55, 1, 0.2)]
    result = asyncio.run(run_ramp(cluster["url"], AUTH, webcam_frames(), phases, sample, sample_every_s=2))
    wave_end = result.phase_starts[2]

    # Up: a second ObjectDetector replica, on a node the autoscaler added for it.
    during = [s for s in result.timeline if "replicas" in s and s["t"] <= wave_end + 10]
    assert max(s["replicas"].get("ObjectDetector", 0) for s in during) >= 2, result.timeline
    assert max(s["nodes"] for s in during) >= 2, result.timeline
    assert any(set(s["detector_nodes"]) - head for s in during), "no detector replica ran on an added node"

    # Answered throughout: every status a 200 or a deliberate 503, and frames served in the wave.
    statuses = {status for _, _, status, _ in result.records}
    assert statuses <= {200, 503}, statuses
    served_in_wave = sum(1 for t, _, status, _ in result.records
                         if status == 200 and result.phase_starts[1] <= t < wave_end)
    assert served_in_wave >= 45, served_in_wave

    # Down: back to one replica each and the head alone once the wave has passed (about 60 s on a
    # quiet machine, bench/scale.py; seen over 90 s once in a loaded full run).
    deadline = time.time() + 150
    while time.time() < deadline:
        now = result.timeline[-1] if result.timeline and "replicas" in result.timeline[-1] else sample()
        if now["nodes"] == 1 and now["replicas"].get("ObjectDetector") == 1:
            break
        time.sleep(2)
        result.timeline.append({"t": -1, **sample()})
    final = result.timeline[-1]
    assert final["nodes"] == 1 and final["replicas"].get("ObjectDetector") == 1, result.timeline[-6:]

    # Nothing lost: each session's stored frames are the frames it was answered.
    assert len(result.summaries) >= 8
    with psycopg.connect(cluster["store_url"]) as conn:
        for session_id, summary in result.summaries.items():
            stored, = conn.execute("SELECT count(*) FROM observations WHERE session_id = %s", (session_id,)).fetchone()
            assert summary["frames"] == stored == result.answered(session_id), session_id

    # The session open all along: where its actor lived while nodes came and went.
    from deployments.risk_session import actor_name

    placements = {s["session_nodes"].get(actor_name(result.resident)) for s in result.timeline if "session_nodes" in s}
    placements.discard(None)
    rebuilt = result.resident_state.get("rebuilt_frames", 0)
    print(f"wave: ObjectDetector replicas up to {max(s['replicas'].get('ObjectDetector', 0) for s in during)}, "
          f"nodes up to {max(s['nodes'] for s in during)}; statuses {sorted(map(str, statuses))}; the open "
          f"session's actor on {'the head' if placements <= head else 'an added node'}, {rebuilt} frames rebuilt")
    if placements <= head:
        assert rebuilt == 0  # it stayed on the head, which stays: nothing to rebuild
    else:
        assert rebuilt > 0  # its node went away: rebuilt from the store on its next frame
    assert result.resident_state["frames"] == result.answered(result.resident)
