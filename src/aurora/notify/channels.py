"""A configured channel: its secrets (read from the environment once, at start), how it renders a group of
notifications for its receiver, and how it sends them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from aurora.errors import ConfigError
from aurora.notify import formats
from aurora.notify.config import PAGERDUTY_URL, ChannelConfig, NotificationsConfig
from aurora.notify.message import Notification
from aurora.notify.transport import HttpTransport, Outcome, send_email


@dataclass(frozen=True)
class Secrets:
    hmac_key: bytes | None = None
    routing_key: str | None = None
    smtp_password: str | None = None


def resolve_secrets(cfg: NotificationsConfig, environ: Mapping[str, str] | None = None) -> dict[str, Secrets]:
    """Every channel's secrets from the environment. Raises ConfigError naming each variable that is missing,
    so a channel never starts half-configured (unsigned, or unable to log in)."""
    env = os.environ if environ is None else environ
    out: dict[str, Secrets] = {}
    missing: list[str] = []

    def read(ch: ChannelConfig, key: str, var: str | None) -> str | None:
        if var is None:
            return None
        value = env.get(var)
        if not value:
            missing.append(f"notifications channel {ch.name!r}: {key} names environment variable {var}, which is "
                           "not set (or empty); export it before starting Aurora")
        return value or None

    for ch in cfg.channels:
        key = read(ch, "secret_env", ch.secret_env)
        out[ch.name] = Secrets(hmac_key=key.encode() if key else None,
                               routing_key=read(ch, "routing_key_env", ch.routing_key_env),
                               smtp_password=read(ch, "smtp.password_env", ch.smtp.password_env if ch.smtp else None))
    if missing:
        raise ConfigError("\n".join(missing))
    return out


@dataclass(frozen=True)
class HttpRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class Channel:
    def __init__(self, cfg: ChannelConfig, secrets: Secrets, http: HttpTransport | None,
                 client_url: str | None = None) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.http = http
        self.client_url = client_url

    @property
    def name(self) -> str:
        return self.cfg.name

    def render(self, group: Sequence[Notification], delivery_id: int, now: float) -> HttpRequest | EmailMessage:
        """The exact request (or e-mail) for this group; ``now`` is the send time (wall clock)."""
        cfg = self.cfg
        sent_at = int(now)
        if cfg.type == "email":
            assert cfg.smtp is not None
            return formats.email_message(group, cfg.smtp.from_, cfg.smtp.to, now)
        if cfg.type == "pagerduty":
            assert self.secrets.routing_key is not None
            body = formats.encode(formats.pagerduty_body(group, self.secrets.routing_key, self.client_url))
            headers: dict[str, str] = {}
        elif cfg.type == "slack":
            body = formats.encode(formats.slack_body(group))
            headers = {}
        else:
            make = formats.webhook_body if cfg.type == "webhook" else formats.n8n_body
            body = formats.encode(make(group, sent_at))
            headers = formats.signed_headers(self.secrets.hmac_key, body, sent_at)
        headers = {**cfg.headers, **headers, "Content-Type": "application/json", "User-Agent": formats.USER_AGENT,
                   formats.DELIVERY_HEADER: str(delivery_id)}
        return HttpRequest(cfg.url or PAGERDUTY_URL, headers, body)

    async def send(self, group: Sequence[Notification], delivery_id: int, now: float) -> Outcome:
        out = self.render(group, delivery_id, now)
        if isinstance(out, EmailMessage):
            assert self.cfg.smtp is not None
            return await send_email(self.cfg.smtp, self.secrets.smtp_password, out, self.cfg.timeout_s)
        if self.http is None:
            raise RuntimeError("an HTTP channel needs an HttpTransport")
        return await self.http.post(out.url, out.headers, out.body, self.cfg.timeout_s, self.cfg.target)
