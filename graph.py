"""Builds the Proctor Serve application from the `args:` of config/serve.yaml.

    Ingress (FastAPI) ──┬── FaceGaze (MediaPipe)
                        └── ObjectDetector (YOLO, @serve.batch)
    + one RiskSession actor per interview session, created by the ingress at /start-session.

`serve run config/serve.yaml` imports `graph:build_app`; tests call `build_app(load_args(...))`.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from ray.serve import Application

from deployments.face_gaze import FaceGaze
from auth.tokens import AuthConfig
from deployments.ingress import Ingress, IngressConfig
from deployments.object_detector import ObjectDetector
from risk.config import RiskConfig
from vision.detector import DetectorConfig
from vision.face_gaze import FaceGazeConfig

CONFIG_PATH = Path(__file__).resolve().parent / "config" / "serve.yaml"


class AppConfig(BaseModel):
    """The application's `args:` block, one field per section."""

    ingress: IngressConfig = Field(default_factory=IngressConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    face_gaze: FaceGazeConfig = Field(default_factory=FaceGazeConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)


def load_serve_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def load_args(path: Path = CONFIG_PATH, app_name: str = "proctor") -> dict[str, Any]:
    """The `args:` of one application in a Serve config file."""
    for application in load_serve_config(path)["applications"]:
        if application["name"] == app_name:
            return application.get("args", {})
    raise KeyError(f"no application named {app_name!r} in {path}")


def load_deployment_options(path: Path = CONFIG_PATH, app_name: str = "proctor") -> dict[str, dict[str, Any]]:
    """The `deployments:` overrides of one application, keyed by deployment name."""
    for application in load_serve_config(path)["applications"]:
        if application["name"] == app_name:
            return {d["name"]: {k: v for k, v in d.items() if k != "name"}
                    for d in application.get("deployments", [])}
    raise KeyError(f"no application named {app_name!r} in {path}")


def direct_ingress_env(port: int) -> dict[str, str]:
    """Environment for a local Ray on which the Ingress replica serves HTTP itself on `port`, with no
    Serve proxy in the request path (Ray 2.60's RAY_SERVE_ENABLE_DIRECT_INGRESS): about 40 ms less
    CPU and 50 ms less p50 per frame on 2 cores (docs/PERFORMANCE.md). Set it before Ray starts: the
    controller and replicas read it once. For one machine with one Ingress replica only: a cluster
    needs HAProxy (RAY_SERVE_ENABLE_HA_PROXY) in front of the replicas' ports, so it keeps the proxy.
    Opt-in (ingress.direct_ingress): Ray binds the port without SO_REUSEADDR, so a replica replacing
    one that served traffic fails to bind while old connections are in TIME_WAIT, and Serve then
    blocks that port, its only one, until Ray restarts."""
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


def start_local_serve(http_port: int, direct_ingress: bool, **ray_init_kwargs: Any) -> None:
    """ray.init + serve.start for Python callers (tests, benchmarks) serving on 127.0.0.1:http_port
    the way `make run` does: with `direct_ingress`, the Ingress replica takes that port itself. Ray's
    processes read the environment when ray.init starts them; it is put back after, so a cluster
    this process starts later keeps Serve's proxy."""
    import ray
    from ray import serve

    saved = dict(os.environ)
    if direct_ingress:
        os.environ.update(direct_ingress_env(http_port))
    try:
        ray.init(**ray_init_kwargs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # With direct ingress the head node's proxy is only Serve's fallback: any free port will do.
    serve.start(http_options={"host": "127.0.0.1", "port": free_port() if direct_ingress else http_port})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build_app(args: dict[str, Any]) -> Application:
    """The app builder `serve run config/serve.yaml` calls; Serve applies `deployments:` itself."""
    return build_app_with_options(args, {})


def build_app_with_options(args: dict[str, Any], deployment_options: dict[str, dict[str, Any]]) -> Application:
    """For Python callers (tests, benchmarks) using `serve.run`: pass the config's `deployments:`
    (`load_deployment_options()`) to get the same resources as `serve run config/serve.yaml`."""
    cfg = AppConfig(**(args or {}))
    opts = deployment_options or {}
    face_gaze = FaceGaze.options(**opts.get("FaceGaze", {})).bind(cfg.face_gaze.model_dump())
    object_detector = ObjectDetector.options(**opts.get("ObjectDetector", {})).bind(cfg.detector.model_dump())
    return Ingress.options(**opts.get("Ingress", {})).bind(
        face_gaze, object_detector, cfg.ingress.model_dump(), cfg.risk.model_dump(), cfg.face_gaze.model_dump(),
        cfg.auth.model_dump(),
    )
