"""Which channels a notification goes to, and with which grouping and repeat settings."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from aurora.notify.config import NotificationsConfig, RouteConfig, RouteMatch
from aurora.notify.message import Notification

_DEFAULT = RouteConfig(channels=["*"])


@dataclass(frozen=True)
class Target:
    channel: str
    group_wait_s: float
    repeat_interval_s: float


def matches(m: RouteMatch, n: Notification) -> bool:
    """Every listed condition holds (an empty list holds for anything)."""
    if m.severity and n.severity not in m.severity:
        return False
    if m.event and n.event not in m.event:
        return False
    if m.service and not any(fnmatchcase(s, p) for s in n.services for p in m.service):
        return False
    return not m.team or (n.team is not None and any(fnmatchcase(n.team, p) for p in m.team))


class Router:
    def __init__(self, cfg: NotificationsConfig) -> None:
        self.channels = [c.name for c in cfg.channels]
        self.routes = cfg.routes

    def route(self, n: Notification) -> list[Target]:
        """The channels of every matching route, each once (the first matching route's settings win); without
        routes every channel. Test messages are not routed (they go to the channel under test only)."""
        if n.event == "test":
            return []
        if not self.routes:
            return [Target(c, _DEFAULT.group_wait_s, _DEFAULT.repeat_interval_s) for c in self.channels]
        out: dict[str, Target] = {}
        for r in self.routes:
            if matches(r.match, n):
                for c in r.channels:
                    out.setdefault(c, Target(c, r.group_wait_s, r.repeat_interval_s))
        return list(out.values())
