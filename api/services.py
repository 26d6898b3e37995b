"""What the routes call: the services one ingress replica builds (deployments/ingress.py) and puts
on its FastAPI app's state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.requests import HTTPConnection

from auth.tokens import AccessPolicy
from outbox.webhooks import WebhookRegistry
from pipeline.audio import AudioPipeline
from pipeline.frame import FramePipeline
from reviews.service import ReviewService
from sessions.service import SessionService
from settings import AppConfig
from store.base import SessionStoreBase

if TYPE_CHECKING:
    from edx.provider import EdxProvider
    from edx.tokens import EdxTokens


@dataclass(frozen=True)
class Services:
    config: AppConfig  # environment applied (settings.resolve_environment)
    access: AccessPolicy
    sessions: SessionService
    frames: FramePipeline
    store: SessionStoreBase
    audio: AudioPipeline
    reviews: ReviewService
    webhooks: WebhookRegistry
    edx: "EdxProvider | None" = None  # edx.enabled
    edx_tokens: "EdxTokens | None" = None


def services_of(connection: HTTPConnection | Request) -> Services:
    return connection.app.state.services
