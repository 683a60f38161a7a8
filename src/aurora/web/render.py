"""Rendering pages: the Jinja2 environment, its filters, and the headers every dashboard response carries."""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from aurora import __version__
from aurora.web import remedy
from aurora.web.assets import missing_vendor, static_url

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
# Scripts only from this origin (no inline script, no eval); inline style attributes are allowed because
# uPlot and ECharts position their tooltips and legends with them.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def fmt_time(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = abs(seconds)
    if s < 90:
        out = f"{s:.0f} s"
    elif s < 5400:
        out = f"{s / 60:.0f} min"
    elif s < 2 * 86_400:
        out = f"{s / 3600:.1f} h"
    else:
        out = f"{s / 86_400:.1f} d"
    return out


def fmt_ago(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    d = now - t
    return f"{fmt_duration(d)} ago" if d >= 0 else f"in {fmt_duration(-d)}"


def fmt_pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v * 100:.{digits}f} %"


def fmt_num(v: float | None, unit: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if unit == "bytes":
        for u in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(v) < 1024:
                return f"{v:.1f} {u}"
            v /= 1024
        return f"{v:.1f} PiB"
    return f"{v:.3g}{(' ' + unit) if unit else ''}"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ts=fmt_time, ago=fmt_ago, pct=fmt_pct, num=fmt_num, dur=fmt_duration, run_tone=remedy.tone,
                       run_label=remedy.label)
    env.globals.update(static=static_url, version=__version__)
    return env


ENV = _env()


def render_text(template: str, **ctx: Any) -> str:
    return ENV.get_template(template).render(**ctx)


def _pending(request: Request) -> int | None:
    """Runs waiting for approval, for the navigation's badge (cached for a second; never breaks a page)."""
    try:
        return remedy.pending_count(request.app.state.aurora)
    except Exception:
        log.exception("counting the actions waiting for approval failed; the badge is hidden")
        return None


def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """A full page or fragment, with the user (if any), the CSRF token and the asset warning in context."""
    user = getattr(request.state, "web_user", None)
    base = {"request": request, "user": user, "csrf": user.session.csrf if user else "",
            "missing_vendor": missing_vendor(), "path": request.url.path,
            "pending": _pending(request) if user else None}
    html = ENV.get_template(template).render(**base, **ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
