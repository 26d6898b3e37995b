"""Builds the Proctor Serve application from the `args:` of config/serve.yaml.

    Ingress (FastAPI) ──┬── FaceGaze (MediaPipe)
                        └── ObjectDetector (YOLO, @serve.batch)
    + one RiskSession actor per interview session, created by the ingress at /start-session.

`serve run config/serve.yaml` imports `graph:build_app`; tests call `build_app(load_args(...))`.
"""
from __future__ import annotations

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
