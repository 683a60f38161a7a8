"""The ``notifications:`` section: channels (where messages go) and routes (which messages go where).

Secrets never sit in the file: a channel names the environment variable that holds its HMAC key
(``secret_env``), its PagerDuty routing key (``routing_key_env``) or its SMTP password (``password_env``);
``aurora.notify.channels.resolve_secrets`` reads them when the notifier starts.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from aurora.config_base import Section

ChannelType = Literal["webhook", "slack", "pagerduty", "n8n", "email"]
EventKind = Literal["incident_opened", "incident_updated", "incident_mitigated", "incident_resolved", "prediction",
                    "action_pending_approval", "action_done", "fixed_fyi"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]
Severity = Literal["info", "warning", "critical"]
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_HTTP_TYPES = ("webhook", "slack", "pagerduty", "n8n")
_SIGNED_TYPES = ("webhook", "n8n")


def _env_name(value: str | None, what: str) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"{what} must name an environment variable (letters, digits, _), not {value!r}: the "
                         "secret itself never goes into the config file")
    return value


class SmtpSettings(Section):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS (port 587)")
    ssl: bool = Field(False, description="implicit TLS from the first byte (port 465)")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the SMTP password")
    from_: str = Field(alias="from", description="the sender address")
    to: list[str] = Field(min_length=1, description="recipient addresses")

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, v: str | None) -> str | None:
        return _env_name(v, "password_env")

    @field_validator("from_")
    @classmethod
    def _from(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError(f"{v!r} is not an e-mail address (name@domain)")
        return v

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not _EMAIL.match(a)]
        if bad:
            raise ValueError(f"not e-mail addresses (name@domain): {bad}")
        return v

    @model_validator(mode="after")
    def _tls(self) -> SmtpSettings:
        if self.ssl and self.starttls:
            raise ValueError("set either ssl (implicit TLS, port 465) or starttls (port 587), not both")
        if self.username and not (self.ssl or self.starttls):
            raise ValueError("username without ssl or starttls would send the password in clear text; "
                             "enable starttls or ssl")
        if self.password_env and not self.username:
            raise ValueError("password_env is set but username is not: set the SMTP login name")
        return self


class ChannelConfig(Section):
    name: str = Field(description="what routes call this channel")
    type: ChannelType
    url: str | None = Field(None, description=f"the receiver's URL (pagerduty: default {PAGERDUTY_URL})")
    smtp: SmtpSettings | None = Field(None, description="email channels: the SMTP server and the addresses")
    secret_env: str | None = Field(None, description=(
        "webhook and n8n: environment variable holding the HMAC-SHA256 key that signs each body "
        "(header X-Aurora-Signature)"))
    routing_key_env: str | None = Field(None, description="pagerduty: environment variable holding the routing key")
    timeout_s: float = Field(5.0, gt=0, le=120, description="per attempt")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers sent with every request")
    rate_limit_per_minute: float = Field(60, gt=0, description=(
        "messages per minute at most (a token bucket holding a minute's worth); excess waits, it is not dropped"))
    max_in_flight: int = Field(4, ge=1, le=64, description="concurrent requests to this receiver")
    max_retries: int = Field(60, ge=0, le=1000, description=(
        "attempts after the first before a message fails (at the default 30 s cap: about half an hour); while a "
        "channel is down only one message at a time spends these"))
    backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles per consecutive failure (with jitter)")
    max_backoff_s: float = Field(30.0, gt=0, description=(
        "longest delay between two attempts: also how long a recovered receiver may wait for the backlog"))
    max_age_s: float = Field(86400.0, gt=0, description="a message not delivered this long after it was made fails")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"channel name {v!r} must be 1-100 letters, digits, '_', '.' or '-'")
        return v

    @field_validator("secret_env", "routing_key_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _env_name(v, "secret_env / routing_key_env")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url {v!r} must be an absolute http:// or https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", k) or "\n" in val or "\r" in val:
                raise ValueError(f"header {k!r} is not a valid HTTP header name and value")
            if k.lower() in ("content-type", "content-length", "x-aurora-signature", "x-aurora-timestamp", "host"):
                raise ValueError(f"header {k!r} is set by Aurora and cannot be overridden")
        return v

    @model_validator(mode="after")
    def _fits_type(self) -> ChannelConfig:
        t = self.type
        if t == "email":
            if self.smtp is None:
                raise ValueError(f"channel {self.name!r} is an email channel: give smtp: {{host, from, to}}")
            if self.url is not None or self.headers:
                raise ValueError(f"channel {self.name!r} is an email channel: url and headers do not apply")
        else:
            if self.smtp is not None:
                raise ValueError(f"channel {self.name!r} is a {t} channel: smtp applies to email channels only")
            if self.url is None and t != "pagerduty":
                raise ValueError(f"channel {self.name!r} ({t}) needs a url: where to POST the messages")
        if t == "pagerduty" and not self.routing_key_env:
            raise ValueError(f"channel {self.name!r} (pagerduty) needs routing_key_env: the environment variable "
                             "holding the integration's routing key")
        if t != "pagerduty" and self.routing_key_env:
            raise ValueError(f"channel {self.name!r}: routing_key_env applies to pagerduty channels only")
        if self.secret_env and t not in _SIGNED_TYPES:
            raise ValueError(f"channel {self.name!r}: secret_env (HMAC signing) applies to webhook and n8n channels "
                             f"only; {t} receivers authenticate by their URL or key")
        if self.max_backoff_s < self.backoff_s:
            raise ValueError(f"max_backoff_s ({self.max_backoff_s:g}) must be at least backoff_s ({self.backoff_s:g})")
        return self

    @property
    def target(self) -> str:
        """Where this channel delivers, for logs (no secrets: URLs may hold tokens, so only scheme and host)."""
        if self.smtp is not None:
            return f"smtp://{self.smtp.host}:{self.smtp.port}"
        parts = urlsplit(self.url or PAGERDUTY_URL)  # hostname, not netloc: a URL may carry user:password@
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address keeps its brackets, or its last group reads as a port
            host = f"[{host}]"
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class RouteMatch(Section):
    """Every listed condition must hold; an empty list matches anything. Services and teams take shell-style
    patterns (``pay*``)."""

    severity: list[Severity] = Field(default_factory=list)
    service: list[str] = Field(default_factory=list, description="matches if any of the message's services fits")
    team: list[str] = Field(default_factory=list, description="the owner of the service (services[].owner)")
    event: list[EventKind] = Field(default_factory=list)


class RouteConfig(Section):
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)
    group_wait_s: float = Field(0.0, ge=0, le=3600, description=(
        "collect messages about the same thing (an incident, a service's predictions) this long (wall time) "
        "and send them as one"))
    repeat_interval_s: float = Field(3600.0, ge=0, description=(
        "an identical message (same dedup key) goes to a channel at most once per this much event time"))


class NotificationsConfig(Section):
    """Where Aurora's messages go. Every route whose match fits sends to its channels (a channel listed by
    several matching routes gets the message once, with the first route's settings); no routes at all:
    every channel gets every message."""

    enabled: bool = True
    dashboard_url: str | None = Field(None, description=(
        "the address people open Aurora at (e.g. https://aurora.example.com); links in messages use it "
        "(default: http://<server.host>:<server.port>)"))
    channels: list[ChannelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    log_retention_days: float = Field(30, gt=0, description="keep the delivery log and the sent outbox this long")

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"dashboard_url {v!r} must be an absolute http:// or https:// URL")
            v = v.rstrip("/")
        return v

    @model_validator(mode="after")
    def _references(self) -> NotificationsConfig:
        errors: list[InitErrorDetails] = []
        seen: dict[str, int] = {}
        for i, ch in enumerate(self.channels):
            if ch.name in seen:
                errors.append(InitErrorDetails(type=PydanticCustomError(
                    "duplicate_channel", "channel name {name} is used twice (also channels.{first}); names must "
                    "be unique", {"name": repr(ch.name), "first": seen[ch.name]}),
                    loc=("channels", i, "name"), input=ch.name))
            seen.setdefault(ch.name, i)
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.channels):
                if name not in seen:
                    known = ", ".join(sorted(seen)) or "none are defined"
                    errors.append(InitErrorDetails(type=PydanticCustomError(
                        "unknown_channel", "route sends to unknown channel {name}; channels: {known}",
                        {"name": repr(name), "known": known}), loc=("routes", i, "channels", j), input=name))
        if errors:
            raise ValidationError.from_exception_data("NotificationsConfig", errors)
        return self

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)
