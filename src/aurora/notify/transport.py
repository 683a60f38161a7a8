"""Sending bytes: HTTP POST with aiohttp and SMTP with the standard library (in a thread). Each send returns
an ``Outcome`` that says whether to retry; error texts name the receiver by scheme and host only, because
webhook URLs often carry their secret in the path.

aiohttp rather than httpx here: a notifier is CPU-bound in a burst, and on loopback aiohttp's client costs
about a seventh of httpx's per request (``benchmarks/bench_notify.py``)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import aiohttp

from aurora.notify.config import SmtpSettings

# Client errors that a retry cannot fix (bad payload, bad credentials, gone). 404 is retried: an n8n workflow
# that is being switched on, or a receiver being deployed, answers 404 for a while.
PERMANENT_HTTP = frozenset({400, 401, 403, 405, 410, 411, 413, 414, 415, 422})
BODY_SNIPPET = 300


@dataclass(frozen=True)
class Outcome:
    ok: bool
    latency_ms: float
    http_status: int | None = None
    error: str | None = None
    permanent: bool = False  # do not retry
    retry_after_s: float | None = None  # the receiver asked for this pause (429/503 Retry-After)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class HttpTransport:
    """One aiohttp session (a keep-alive connection pool); create it inside the loop that will use it."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, limit_per_host=16), headers={"Accept": "*/*"},
            auto_decompress=True)

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float, target: str) -> Outcome:
        t0 = time.perf_counter()
        try:
            # No redirects: a webhook that redirects is misconfigured, and following one could leak the signed body.
            async with self.session.post(url, data=body, headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                code = resp.status
                text = "" if 200 <= code < 300 else await resp.text(errors="replace")
                after = resp.headers.get("retry-after")
        except TimeoutError:
            return Outcome(False, (time.perf_counter() - t0) * 1000, error=f"{target} did not answer within "
                           f"{timeout_s:g} s (timeout_s)")
        except aiohttp.InvalidURL:
            return Outcome(False, (time.perf_counter() - t0) * 1000, permanent=True,
                           error=f"the channel's url for {target} is not a valid URL")
        except (aiohttp.ClientError, OSError) as exc:
            detail = str(exc).replace(url, target) or "connection failed"
            return Outcome(False, (time.perf_counter() - t0) * 1000,
                           error=f"cannot reach {target}: {type(exc).__name__}: {detail}")
        ms = (time.perf_counter() - t0) * 1000
        if 200 <= code < 300:
            return Outcome(True, ms, http_status=code)
        snippet = " ".join(text[:BODY_SNIPPET].split())
        hint = {401: "; check the channel's secret or key", 403: "; check the channel's secret or key",
                404: "; check the channel's url", 400: "; the receiver refused the payload",
                422: "; the receiver refused the payload", 429: "; rate-limited by the receiver"}.get(code, "")
        error = f"{target} answered HTTP {code}{hint}" + (f": {snippet}" if snippet else "")
        return Outcome(False, ms, http_status=code, error=error, permanent=code in PERMANENT_HTTP,
                       retry_after_s=retry_after(after, time.time()))

    async def aclose(self) -> None:
        await self.session.close()


def _smtp_send(cfg: SmtpSettings, password: str | None, msg: EmailMessage, timeout_s: float) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP = (smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout_s, context=context) if cfg.ssl
                          else smtplib.SMTP(cfg.host, cfg.port, timeout=timeout_s))
    with smtp:
        smtp.ehlo()
        if cfg.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, password or "")
        smtp.send_message(msg, from_addr=cfg.from_, to_addrs=cfg.to)


async def send_email(cfg: SmtpSettings, password: str | None, msg: EmailMessage, timeout_s: float) -> Outcome:
    target = f"smtp://{cfg.host}:{cfg.port}"
    t0 = time.perf_counter()
    try:
        await asyncio.to_thread(_smtp_send, cfg, password, msg, timeout_s)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        detail = "; ".join(f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items())
        return Outcome(False, (time.perf_counter() - t0) * 1000, error=f"{target} refused the recipients: {detail}",
                       permanent=all(c >= 500 for c in codes))
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        what = "rejected the login (check username and password_env)" if exc.smtp_code == 535 else "answered"
        return Outcome(False, (time.perf_counter() - t0) * 1000, error=f"{target} {what} {exc.smtp_code} {text}",
                       permanent=exc.smtp_code >= 500)
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(False, (time.perf_counter() - t0) * 1000, permanent=True,
                       error=f"{target} does not support what the channel asks for ({exc}); check starttls/ssl")
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, TLS: the server may come back
        return Outcome(False, (time.perf_counter() - t0) * 1000,
                       error=f"cannot deliver to {target}: {type(exc).__name__}: {exc}")
    return Outcome(True, (time.perf_counter() - t0) * 1000)
