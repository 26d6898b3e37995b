"""What the routes call: the services one ingress replica builds (deployments/ingress.py) and puts
on its FastAPI app's state."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.requests import HTTPConnection

from auth.tokens import AccessPolicy
from pipeline.audio import AudioPipeline
from pipeline.frame import FramePipeline
from sessions.service import SessionService
from settings import AppConfig
from store.base import SessionStoreBase


@dataclass(frozen=True)
class Services:
    config: AppConfig  # environment applied (settings.resolve_environment)
    access: AccessPolicy
    sessions: SessionService
    frames: FramePipeline
    store: SessionStoreBase
    audio: AudioPipeline


def services_of(connection: HTTPConnection | Request) -> Services:
    return connection.app.state.services
