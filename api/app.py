"""The FastAPI app of one ingress replica: middleware, the error table's handlers, the routers."""
from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.middleware import BodySizeLimit
from api.routes import demo, frames, reports, reviews, sessions, webhooks
from api.services import Services

DESCRIPTION = ("AI proctoring: per-frame face, gaze and object analysis with a live risk score. "
               "Integrator calls take `Authorization: Bearer <API key>` (or `X-API-Key`); "
               "/analyze-frame also takes the session token that /start-session returns. "
               "The WebSocket stream, `WS /sessions/{session_id}/stream`, is described in README.md.")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Proctor", description=DESCRIPTION, version="0.2.0",
                  generate_unique_id_function=lambda route: route.name)  # operationId = the handler name
    app.state.services = services
    app.add_middleware(BodySizeLimit, max_bytes=services.config.ingress.max_body_bytes)
    install_error_handlers(app)
    for module in (sessions, frames, reports, reviews, webhooks, demo):
        app.include_router(module.router)
    if services.edx is not None:
        from api.routes.edx import create_edx_app

        app.mount("/edx", create_edx_app(services))  # edX's contract, with its own /edx/openapi.json
    return app
