"""Ingress deployment: the HTTP/WebSocket front, as wiring. It builds one replica's services (the
store, access policy, session service and reaper, frame pipeline, metrics, reviews, webhooks and
the outbox deliverer, and the edX provider when it is on) and hands Serve the
FastAPI app that routes to them (`api.app.create_app`, through Serve's `__serve_build_asgi_app__`
hook, so every route reaches the services through the app's state)."""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from ray import serve
from ray.serve.handle import DeploymentHandle

from api.app import create_app
from api.services import Services
from auth.limits import FrameRateLimiter
from auth.tokens import AccessPolicy, new_secret
from observability import ProctorMetrics
from outbox.deliverer import Deliverer
from outbox.webhooks import WebhookChannel, WebhookRegistry
from pipeline.audio import AudioPipeline
from pipeline.frame import FramePipeline
from pipeline.gate import DetectorGate
from pipeline.identity import IdentityChecks
from pipeline.models import ModelStages
from reviews.service import ReviewService
from sessions.directory import SessionDirectory
from sessions.reaper import SessionReaper
from sessions.service import SessionService
from settings import AppConfig, resolve_environment
from store import open_store

logger = logging.getLogger("ray.serve")

AUTH_OFF_WARNING = ("=" * 72 + "\nPROCTOR AUTH IS OFF: no API keys configured (auth.api_keys or $PROCTOR_API_KEYS). "
                    "Anyone who can reach this port can read and write every session. Keep it on 127.0.0.1, "
                    "or configure keys.\n" + "=" * 72)


def rebind_direct_ingress_port_at_once() -> None:
    """With direct ingress, Ray 2.60 binds this replica's HTTP port without SO_REUSEADDR
    (`ray/serve/_private/http_util.start_asgi_http_server`), so a replica that replaces one which
    served traffic cannot bind while the old connections sit in TIME_WAIT (~60 s), and Serve then
    blocks the port for good. Set SO_REUSEADDR (only: no SO_REUSEPORT, so no second live listener
    can share the port) on the socket Ray creates. Runs in this replica's process before Serve
    starts its server (after the constructor); `tests/test_direct_ingress.py` crashes the replica to check."""
    if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") != "1":
        return
    from ray.serve._private import http_util, replica

    start = replica.start_asgi_http_server
    if getattr(start, "reuses_address", False):
        return

    def reuse_address(sock: socket.socket) -> bool:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return True

    async def start_reusing_address(app, http_options, *, event_loop, enable_so_reuseport=False):
        # Ray's own switch sets SO_REUSEADDR through set_socket_reuse_port; this process's copy sets only that.
        return await start(app, http_options, event_loop=event_loop, enable_so_reuseport=True)

    http_util.set_socket_reuse_port = reuse_address
    start_reusing_address.reuses_address = True
    replica.start_asgi_http_server = start_reusing_address


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    async def __init__(self, face_gaze: DeploymentHandle, object_detector: DeploymentHandle,
                       face_identity: DeploymentHandle | None, config: AppConfig):
        rebind_direct_ingress_port_at_once()
        cfg = resolve_environment(config)  # $PROCTOR_* on the node this replica runs on
        store = open_store(cfg.ingress.store_location())
        # Every replica must sign with the same secret: the configured one, else one kept in the store.
        token_secret = cfg.auth.token_secret or store.setting("token_secret", new_secret())
        access = AccessPolicy(cfg.auth.api_keys, token_secret, cfg.auth.token_ttl_s, cfg.auth.reviewer_keys)
        if not access.enabled:
            logger.warning(AUTH_OFF_WARNING)
        metrics = ProctorMetrics()
        limiter = FrameRateLimiter(cfg.ingress.max_fps_per_session, cfg.ingress.fps_burst)
        directory = SessionDirectory(cfg.risk, store.target, cfg.ingress.session_actor_num_cpus,
                                     cfg.ingress.session_call_timeout_s, warm=cfg.ingress.warm_session_actors,
                                     warm_ttl_s=cfg.ingress.warm_actor_ttl_s)
        gate = DetectorGate(cfg.detector_gate, max_sessions=2 * cfg.ingress.max_open_sessions)
        caches = [limiter, gate]  # forgotten when a session ends; the audio pipeline joins below
        sessions = SessionService(store, directory, caches, metrics, cfg.ingress.max_open_sessions)
        models = ModelStages(face_gaze, object_detector, cfg.ingress.model_timeout_s)
        identity = None if face_identity is None else IdentityChecks(face_identity, models, sessions, cfg.ingress)
        frames = FramePipeline(cfg.ingress, access, sessions, models, limiter, gate, metrics, identity)
        audio = AudioPipeline(cfg.audio, access, sessions, FrameRateLimiter(cfg.audio.max_audio_rate, cfg.audio.audio_burst_s),
                              metrics, keep_samples=cfg.risk.voice.evidence_max_s > 0,
                              max_sessions=2 * cfg.ingress.max_open_sessions)
        caches.append(audio)
        channels = [WebhookChannel(store, cfg.webhooks, cfg.ingress.public_url)]
        edx = edx_tokens = None
        if cfg.edx.enabled:
            from edx.provider import EdxProvider
            from edx.results import EdxChannel
            from edx.tokens import EdxTokens

            edx = EdxProvider(store, sessions, access, cfg.edx)
            edx_tokens = EdxTokens(cfg.edx.client_id, cfg.edx.client_secret, token_secret, cfg.edx.token_ttl_s)
            channels.append(EdxChannel(store, cfg.edx, cfg.webhooks))
        self.services = Services(config=cfg, access=access, sessions=sessions, frames=frames, store=store, audio=audio,
                                 reviews=ReviewService(store, cfg.risk), webhooks=WebhookRegistry(store, cfg.webhooks),
                                 edx=edx, edx_tokens=edx_tokens)
        await sessions.refresh_open_count()
        directory.top_up()
        self._directory = directory
        loop = asyncio.get_running_loop()
        self._reaper = loop.create_task(SessionReaper(sessions, store, cfg.ingress).run())
        # One deliverer per application (a lease): webhooks and edX results from the outbox.
        self._deliverer = (loop.create_task(Deliverer(store, cfg.webhooks, channels,
                                                      cfg.ingress.retention_days * 86400).run())
                           if cfg.webhooks.enabled else None)

    def __serve_build_asgi_app__(self):
        return create_app(self.services)

    def __del__(self):
        for task in (getattr(self, "_reaper", None), getattr(self, "_deliverer", None)):
            if task is not None:
                task.cancel()
        directory = getattr(self, "_directory", None)
        if directory is not None:
            directory.close()
