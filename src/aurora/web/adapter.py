"""The one place the dashboard reaches for engine features that are still being built.

``Aurora.prediction_records(service=None, active=True)`` and ``Aurora.risk_scores()`` may not exist yet:
until they do, the pages show "no predictions" and "-" instead of guessing. A failing hook is logged
and treated the same way, so one broken feature never takes a page down.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def predictions(aurora: Any, service: str | None = None, active: bool = True) -> list[dict[str, Any]] | None:
    """Prediction records in the API's shape, or None when the engine does not issue predictions yet."""
    hook = getattr(aurora, "prediction_records", None)
    if hook is None:
        return None
    try:
        return [dict(p) for p in hook(service=service, active=active)]
    except Exception:
        log.exception("prediction_records failed; the dashboard shows no predictions")
        return None


def risk_by_service(aurora: Any) -> dict[str, dict[str, Any]] | None:
    """``{service: {service, risk, factors}}``, or None when the engine does not score risk yet."""
    hook = getattr(aurora, "risk_scores", None)
    if hook is None:
        return None
    try:
        return {str(r["service"]): dict(r) for r in hook()}
    except Exception:
        log.exception("risk_scores failed; the dashboard shows no risk")
        return None

