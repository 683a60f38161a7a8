"""Routing, grouping, dedup, rate limiting and backoff, driven by a fake clock."""

from __future__ import annotations

import random
from typing import Any

from aurora.notify.config import ChannelConfig, NotificationsConfig
from aurora.notify.message import Notification
from aurora.notify.policy import Backoff, Deduper, Grouper, TokenBucket
from aurora.notify.routing import Router


def _n(**kw: Any) -> Notification:
    base: dict[str, Any] = {"event": "incident_opened", "severity": "critical", "title": "t", "text": "x",
                            "group_key": "incident:1", "dedup_key": "incident:1:opened", "time": 1000.0,
                            "services": ("cart",), "team": "shop"}
    return Notification(**{**base, **kw})


CHANNELS = [{"name": n, "type": "webhook", "url": f"http://127.0.0.1/{n}"} for n in ("pager", "chat", "mail", "fyi")]


def _router(routes: list[dict[str, Any]]) -> Router:
    return Router(NotificationsConfig.model_validate({"channels": CHANNELS, "routes": routes}))


def test_routes_match_severity_service_team_event() -> None:
    r = _router([
        {"match": {"severity": ["critical"], "service": ["cart", "pay*"]}, "channels": ["pager"], "group_wait_s": 5},
        {"match": {"team": ["shop"]}, "channels": ["chat", "pager"], "repeat_interval_s": 60},
        {"match": {"event": ["fixed_fyi"]}, "channels": ["fyi"]},
    ])
    got = r.route(_n())
    assert [(t.channel, t.group_wait_s, t.repeat_interval_s) for t in got] == [("pager", 5, 3600), ("chat", 0, 60)]
    assert [t.channel for t in r.route(_n(severity="warning", services=("payments",)))] == ["chat", "pager"]
    assert [t.channel for t in r.route(_n(severity="warning", team=None))] == []
    assert [t.channel for t in r.route(_n(services=("payments-api",), team="bank"))] == ["pager"]
    assert [t.channel for t in r.route(_n(event="fixed_fyi", severity="info", team=None))] == ["fyi"]


def test_without_routes_every_channel_gets_everything_but_tests() -> None:
    r = _router([])
    assert [t.channel for t in r.route(_n())] == ["pager", "chat", "mail", "fyi"]
    assert r.route(_n(event="test", severity="info")) == []


def test_grouper_collects_until_the_deadline() -> None:
    g = Grouper()
    assert g.add("chat", _n(id="a"), 1, 10.0, now=100.0) is None
    assert g.add("chat", _n(id="b", event="incident_updated"), 2, 10.0, now=105.0) is None
    assert g.add("chat", _n(id="c", group_key="incident:2"), 3, 10.0, now=106.0) is None
    assert g.add("pager", _n(id="d"), 4, 10.0, now=106.0) is None
    assert g.next_deadline() == 110.0
    assert g.due(109.9) == []
    (first,) = g.due(110.0)
    assert (first.channel, first.group_key, [rid for rid, _ in first.items]) == ("chat", "incident:1", [1, 2])
    assert len(g) == 2 and g.next_deadline() == 116.0
    # a new group opens after the first went out
    assert g.add("chat", _n(id="e"), 5, 10.0, now=111.0) is None
    assert {x.channel + x.group_key for x in g.due(200.0)} == {"chatincident:2", "pagerincident:1", "chatincident:1"}


def test_grouper_sends_at_once_without_wait_or_when_full() -> None:
    g = Grouper(max_size=3)
    sent = g.add("chat", _n(), 1, 0.0, now=0.0)
    assert sent is not None and len(sent.items) == 1 and len(g) == 0
    assert g.add("chat", _n(id="a"), 1, 60.0, 0.0) is None
    assert g.add("chat", _n(id="b"), 2, 60.0, 0.0) is None
    full = g.add("chat", _n(id="c"), 3, 60.0, 0.0)
    assert full is not None and len(full.items) == 3


def test_dedup_within_repeat_interval_of_event_time() -> None:
    looked: list[tuple[str, str]] = []

    def lookup(channel: str, key: str) -> float | None:
        looked.append((channel, key))
        return 500.0 if key == "old" else None

    d = Deduper(lookup)
    assert not d.seen("chat", "k", 1000.0, 300.0)
    assert d.seen("chat", "k", 1299.0, 300.0)
    assert not d.seen("pager", "k", 1001.0, 300.0)  # per channel
    assert not d.seen("chat", "k", 1300.0, 300.0)  # the interval passed: sent again, and the clock restarts
    assert d.seen("chat", "k", 1500.0, 300.0)
    assert not d.seen("chat", "k2", 1000.0, 0.0) and not d.seen("chat", "k2", 1000.0, 0.0)  # 0: never deduplicated
    assert d.seen("chat", "old", 700.0, 300.0)  # known from the outbox (after a restart)
    assert ("chat", "old") in looked
    d.forget([("chat", "k")])
    assert not d.seen("chat", "k", 1500.0, 300.0)  # asked the outbox again, which (here) knows nothing


def test_token_bucket_queues_excess() -> None:
    b = TokenBucket(per_minute=6, now=0.0, burst=2)  # one token per 10 s, bursts of 2
    assert b.take(0.0) == 0.0 and b.take(0.0) == 0.0
    assert b.take(0.0) == 10.0  # the third waits for the next token
    assert b.take(5.0) == 5.0
    assert b.take(10.0) == 0.0
    assert b.take(10.0) == 10.0
    assert b.take(100.0) == 0.0 and b.take(100.0) == 0.0 and b.take(100.0) > 0  # refills to the burst only
    assert TokenBucket(60, 0.0).capacity == 60  # default burst: a minute's worth


def test_backoff_doubles_with_seeded_jitter() -> None:
    a = Backoff(1.0, 30.0, random.Random(7))
    b = Backoff(1.0, 30.0, random.Random(7))
    da = [a.delay(n) for n in range(1, 9)]
    assert da == [b.delay(n) for n in range(1, 9)]  # deterministic
    for n, d in enumerate(da, 1):
        full = min(30.0, 2.0 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(da) <= 30.0
    assert Backoff(1.0, 30.0, random.Random(0)).delay(10_000) <= 30.0


def test_deduper_primed_from_one_bulk_lookup_does_not_ask_again() -> None:
    looked: list[tuple[str, str]] = []
    d = Deduper(lambda c, k: looked.append((c, k)) or None)
    asked = d.unknown([("chat", "old"), ("chat", "new"), ("pager", "old")])
    assert asked == {("chat", "old"), ("chat", "new"), ("pager", "old")}
    d.prime(asked, {("chat", "old"): 900.0})
    assert d.unknown(asked) == set()
    assert d.seen("chat", "old", 1000.0, 300.0)  # sent 100 s before (event time), by the bulk lookup
    assert not d.seen("chat", "new", 1000.0, 300.0) and not d.seen("pager", "old", 1000.0, 300.0)  # never sent
    assert looked == []  # no lookup one key at a time


def test_channel_target_names_where_it_delivers_without_secrets() -> None:
    def target(**kw: Any) -> str:
        return ChannelConfig.model_validate({"name": "c", **kw}).target

    assert target(type="webhook", url="https://bot:s3cret@hooks.example.com:8443/T0/B1/xyz?token=abc") == \
        "https://hooks.example.com:8443"
    assert target(type="slack", url="https://hooks.slack.com/services/T0/B1/secret") == "https://hooks.slack.com"
    assert target(type="webhook", url="http://[::1]:9000/hook") == "http://[::1]:9000"
    assert target(type="pagerduty", routing_key_env="PD_KEY") == "https://events.pagerduty.com"
    assert target(type="email", smtp={"host": "mail.example.com", "port": 2525, "from": "a@example.com",
                                      "to": ["b@example.com"]}) == "smtp://mail.example.com:2525"
