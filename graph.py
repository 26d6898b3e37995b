"""Builds the Proctor Serve application from the `args:` of config/serve.yaml.

    Ingress (FastAPI) ──┬── FaceGaze (MediaPipe)
                        ├── ObjectDetector (YOLO, @serve.batch)
                        └── FaceIdentity (dlib face descriptors, off the frames' path; absent when
                            risk.identity is off)
    + one RiskSession actor per interview session, created by the ingress at /start-session.

`serve run config/serve.yaml` imports `graph:build_app` (Serve's builder: one argument, the args).
Python callers (tests, benchmarks) call `compose_app` with the config's `deployments:`
(`settings.load_deployment_options()`) to get the resources `serve run` gives, and may inject other
model deployments with the same methods (the fast tests bind fakes,
tests/fakes.py, so the serving layer is tested without loading MediaPipe or YOLO).
"""
from __future__ import annotations

from typing import Any

from ray.serve import Application
from ray.serve.deployment import Deployment

from deployments.face_gaze import FaceGaze
from deployments.face_identity import FaceIdentity
from deployments.ingress import Ingress
from deployments.object_detector import ObjectDetector
from settings import AppConfig


def build_app(args: dict[str, Any]) -> Application:
    """What `serve run` / `serve deploy` call: the app from config/serve.yaml's args."""
    return compose_app(args)


def compose_app(args: dict[str, Any], *, deployment_options: dict[str, dict[str, Any]] | None = None,
              face_gaze: Deployment = FaceGaze, object_detector: Deployment = ObjectDetector,
              face_identity: Deployment = FaceIdentity) -> Application:
    """The app, its config validated once here: a misspelled key fails at deploy time, naming it."""
    cfg = AppConfig(**(args or {}))
    opts = deployment_options or {}
    face_gaze_app = face_gaze.options(**opts.get("FaceGaze", {})).bind(cfg.face_gaze)
    detector_app = object_detector.options(**opts.get("ObjectDetector", {})).bind(cfg.detector)
    identity_app = (face_identity.options(**opts.get("FaceIdentity", {})).bind(cfg.risk.identity)
                    if cfg.risk.identity.enabled else None)
    return Ingress.options(**opts.get("Ingress", {})).bind(face_gaze_app, detector_app, identity_app, cfg)
