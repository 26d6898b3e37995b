"""ASGI middleware: request bodies over the limit are refused with 413 before they are read."""
from __future__ import annotations

from fastapi.responses import JSONResponse


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge()
            return message

        try:
            return await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            return await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = JSONResponse(status_code=413, content={"detail": f"request body over {self.max_bytes} bytes"})
        await body({"type": "http"}, None, send)


class _BodyTooLarge(Exception):
    pass
