"""A local Ray + Serve for Python callers (tests, benchmarks, `make run`), a free port, and a wait
for /health. Light to import: Ray is imported only when a cluster is started."""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float, interval: float = 0.5, starting: Callable[[], bool] = lambda: True) -> bool:
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


def local_ray_env(ingress: dict[str, Any], port: int) -> dict[str, str]:
    """The environment of a local Ray for the app's `ingress` config: its `local_ray_env`, and with
    `direct_ingress` the settings for it (`direct_ingress_env`)."""
    env = {k: str(v) for k, v in (ingress.get("local_ray_env") or {}).items()}
    if ingress.get("direct_ingress", False):
        env.update(direct_ingress_env(port))
    return env


def direct_ingress_env(port: int) -> dict[str, str]:
    """Environment for a local Ray on which the Ingress replica serves HTTP itself on `port`, with no
    Serve proxy in the request path (Ray 2.60's RAY_SERVE_ENABLE_DIRECT_INGRESS): less CPU and
    latency per frame (docs/PERFORMANCE.md). Set it before Ray starts: the controller and replicas
    read it once. For one machine with one Ingress replica only: a cluster needs HAProxy
    (RAY_SERVE_ENABLE_HA_PROXY) in front of the replicas' ports, so it keeps the proxy. Ray binds
    the port without SO_REUSEADDR; the Ingress replica sets it (deployments/ingress.py)."""
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        # The replica port pool is just `port`, so clients keep the address they were given.
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
        # No load balancer has to notice a replica leaving, so no 30 s drain on every stop or
        # redeploy, and a released port is reusable at once (a restarted replica needs the same one).
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def start_local_serve(http_port: int, ingress: dict[str, Any], **ray_init_kwargs: Any) -> None:
    """ray.init + serve.start serving on 127.0.0.1:http_port the way `make run` does for the app's
    `ingress` config: its `local_ray_env`, and with `direct_ingress` the Ingress replica takes that
    port itself. Ray's processes read the environment when ray.init starts them; it is put back
    after, so a cluster this process starts later gets Ray's defaults."""
    import ray
    from ray import serve

    saved = dict(os.environ)
    direct_ingress = ingress.get("direct_ingress", False)
    os.environ.update(local_ray_env(ingress, http_port))
    try:
        ray.init(**ray_init_kwargs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # With direct ingress the head node's proxy is only Serve's fallback: any free port will do.
    serve.start(http_options={"host": "127.0.0.1", "port": free_port() if direct_ingress else http_port})
