"""GET /demo: the browser demo, a static page the ingress serves (api/static/: demo.html, demo.js,
demo.css, audio-worklet.js; no build step). It is a reference client for the stream protocol; see demo.js.

The page holds no secret (the user types an API key), so it is served without auth, like /docs.
Its Content-Security-Policy lets it talk to this origin only: the page cannot fetch or send
anything elsewhere even if it were changed to.
"""
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # shipped as package data (pyproject.toml)
FILES = {
    "demo.html": "text/html; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
    "audio-worklet.js": "text/javascript; charset=utf-8",  # the microphone's AudioWorklet (demo.js)
}
# 'self' covers ws:// and wss:// to this host. blob:/data: are the report copy the page builds
# (demo.js, linkReport), which inherits this policy; the report has inline styles, hence
# 'unsafe-inline' for styles only. Scripts: only demo.js and its AudioWorklet, from this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' blob:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def _static(name: str) -> Response:
    media_type = FILES.get(name)
    if media_type is None:  # only the listed files: no path from the URL ever reaches the disk
        raise NotFound(f"no demo file {name!r}")
    return Response((STATIC_DIR / name).read_bytes(), media_type=media_type,
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                             "X-Content-Type-Options": "nosniff"})


@router.get("/demo", include_in_schema=False)
async def demo_page() -> Response:
    return _static("demo.html")


@router.get("/demo/{name}", include_in_schema=False)
async def demo_asset(name: str) -> Response:
    return _static(name)
