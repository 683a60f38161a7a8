"""Static files: the dashboard's own CSS/JS and the npm libraries ``make setup`` copies into ``vendor/``.

URLs carry a content hash (``?v=``) so browsers may cache them for a year; a changed file gets a new URL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
# What the pages load from vendor/ (see the Makefile's web-assets target, which copies them from node_modules).
VENDOR_FILES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "echarts.min.js")
IMMUTABLE = "public, max-age=31536000, immutable"


def _version() -> str:
    h = hashlib.sha256()
    for p in sorted(STATIC_DIR.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(STATIC_DIR).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


VERSION = _version()


def missing_vendor() -> list[str]:
    """Vendor files that are not there (npm ci / make setup has not run)."""
    return [f for f in VENDOR_FILES if not (VENDOR_DIR / f).is_file()]


def static_url(path: str) -> str:
    return f"/ui/static/{path}?v={VERSION}"


class CachedStatic(StaticFiles):
    """StaticFiles with Cache-Control: versioned URLs are immutable, others revalidate (ETag)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response
