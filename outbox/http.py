"""One outgoing POST, guarded and bounded: the SSRF guard picks the address (`outbox.guard`), no
redirect is followed (a 3xx is an answer, and a failure), the whole exchange has one deadline, and
at most 1 KiB of the answer is read. Never raises: every outcome is an `Answer`."""
from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass

import httpx

from outbox.guard import TargetRefused, resolve

USER_AGENT = "Proctor-Webhooks/1.0"
MAX_ANSWER_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    retry_after_s: float | None = None
    error: str | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def new_client() -> httpx.AsyncClient:
    # No keep-alive (each request goes to the address checked for it, with its own TLS name); no
    # proxies from the environment (they would bypass the guard); redirects are not followed.
    return httpx.AsyncClient(follow_redirects=False, trust_env=False,
                             limits=httpx.Limits(max_keepalive_connections=0))


async def post(client: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str], *,
               allow_loopback: bool, timeout_s: float) -> Answer:
    started = time.monotonic()
    try:
        target = await asyncio.wait_for(resolve(url, allow_loopback), timeout_s)
    except TargetRefused as exc:
        return Answer(None, error=f"refused: {exc}")
    except asyncio.TimeoutError:
        return Answer(None, error="refused: the host did not resolve in time")
    request = client.build_request(
        "POST", target.url, content=content,
        headers={"user-agent": USER_AGENT, **headers, "host": target.host_header},
        extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else {},
        timeout=httpx.Timeout(timeout_s))

    async def exchange() -> Answer:
        response = await client.send(request, stream=True)
        try:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_ANSWER_BYTES:
                    break
        finally:
            await response.aclose()
        return Answer(response.status_code, parse_retry_after(response.headers.get("retry-after"), time.time()),
                      None, body[:MAX_ANSWER_BYTES].decode("utf-8", "replace"))

    try:
        return await asyncio.wait_for(exchange(), max(0.1, timeout_s - (time.monotonic() - started)))
    except asyncio.TimeoutError:
        return Answer(None, error=f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:300])
