"""Ray clusters of a test's or benchmark's own on this machine, on loopback, started with `ray start`
in subprocesses and stopped by killing exactly their processes (never `ray stop`, which stops every
Ray here, the test run's own cluster included).

`AutoscalingCluster` is a head with Ray's autoscaler and its fake multi-node provider: when pending
work (a Serve replica, an actor) needs resources no node has, the autoscaler launches a "worker
node" (a local raylet with the declared logical resources), and stops it once it has been idle for
`idle_timeout_s`. Ray's own autoscaler tests work this way (`ray.cluster_utils.AutoscalingCluster`,
which `ray stop --force`s the machine and reads a config file the wheel does not ship).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.local_serve import free_port

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
SERVE = str(Path(sys.executable).parent / "serve")


def run(cmd: list[str], env: dict[str, str], timeout: float = 240) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def kill_processes_naming(marker: str) -> None:
    """SIGTERM, then SIGKILL, every process whose command line names `marker` (a cluster's temp dir:
    its GCS, raylets, dashboard, agents, autoscaler and workers)."""
    import psutil

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if marker in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid():
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = ours()
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)


def cluster_env(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every node and client of a test cluster: token auth (a token of its own,
    so ~/.ray/auth_token is neither needed nor touched), the project on PYTHONPATH (Serve imports
    graph:build_app), no usage stats."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, **(extra or {})}
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class AutoscalingCluster:
    """Head: `head_cpus` logical CPUs. Workers: one node type with `worker_cpus` logical CPUs, at most
    `max_workers` of them, launched and stopped by the autoscaler."""
    head_cpus: float
    worker_cpus: float
    max_workers: int
    idle_timeout_s: float = 10.0
    env_extra: dict[str, str] = field(default_factory=dict)
    tmp: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    gcs_port: int = field(init=False)
    dashboard_url: str = field(init=False)
    auth_header: dict[str, str] = field(init=False)

    def start(self) -> "AutoscalingCluster":
        """Start the head (and its autoscaler). On a loaded machine (a test suite's own cluster beside
        it) Ray's node start-up can time out ("The current node timed out during startup", seen once in
        CI): one more try, from a clean slate with fresh ports."""
        for attempt in range(2):
            try:
                return self._start_once()
            except RuntimeError:
                self.stop()
                if attempt:
                    raise
        return self

    def _start_once(self) -> "AutoscalingCluster":
        # Short: Ray's socket paths must stay under the kernel's 107-character limit.
        self.tmp = Path(tempfile.mkdtemp(prefix="pa-"))
        token = secrets.token_hex(32)
        self.auth_header = {"Authorization": f"Bearer {token}"}
        self.gcs_port, dashboard = free_port(), free_port()
        self.dashboard_url = f"http://127.0.0.1:{dashboard}"
        # The fake provider reads this to start its raylets; the autoscaler checks every second.
        self.env = cluster_env(token, {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                                       **self.env_extra})
        config = {
            "cluster_name": "proctor-autoscaling-test",
            "max_workers": self.max_workers,
            "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{self.gcs_port}"},
            "available_node_types": {
                "ray.head.default": {"resources": {"CPU": self.head_cpus}, "node_config": {}, "max_workers": 0},
                "cpu_worker": {"resources": {"CPU": self.worker_cpus, "object_store_memory": 200_000_000},
                               "node_config": {}, "min_workers": 0, "max_workers": self.max_workers},
            },
            "head_node_type": "ray.head.default",
            "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": self.idle_timeout_s / 60, "docker": {},
            "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
            "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "rsync_exclude": [], "rsync_filter": [],
        }
        config_path = self.tmp / "autoscaling.json"
        config_path.write_text(json.dumps(config))
        run([RAY, "start", "--head", f"--port={self.gcs_port}", f"--temp-dir={self.tmp}",
             f"--autoscaling-config={config_path}", "--node-ip-address=127.0.0.1", f"--num-cpus={self.head_cpus}",
             "--object-store-memory=200000000", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={free_port()}",
             f"--metrics-export-port={free_port()}", f"--ray-client-server-port={free_port()}",
             "--disable-usage-stats"], self.env)
        return self

    def stop(self) -> None:
        # The fake provider's raylets run with --temp-dir of the head's session, so the marker finds them.
        kill_processes_naming(str(self.tmp))
        if not os.environ.get("PROCTOR_KEEP_TEST_TMP"):
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)

    def _get(self, path: str, **params: Any) -> Any:
        import httpx

        r = httpx.get(f"{self.dashboard_url}{path}", params=params, headers=self.auth_header, timeout=30)
        r.raise_for_status()
        return r.json()

    def alive_nodes(self) -> list[dict]:
        nodes = self._get("/api/v0/nodes", limit=100)["data"]["result"]["result"]
        return [n for n in nodes if n["state"] == "ALIVE"]

    def alive_actors(self) -> list[dict]:
        actors = self._get("/api/v0/actors", limit=2000, detail="true")["data"]["result"]["result"]
        return [a for a in actors if a["state"] == "ALIVE"]

    def serve_replicas(self, app: str = "proctor") -> dict[str, int]:
        """Running replicas per deployment, from Serve's REST API."""
        details = self._get("/api/serve/applications/")
        deployments = details.get("applications", {}).get(app, {}).get("deployments", {})
        return {name: sum(1 for r in d.get("replicas", []) if r.get("state") == "RUNNING")
                for name, d in deployments.items()}

    def serve_deploy(self, config_path: Path) -> None:
        run([SERVE, "deploy", str(config_path), "--address", self.dashboard_url], self.env)
