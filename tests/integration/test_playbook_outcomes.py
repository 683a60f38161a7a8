"""Success rates per playbook and incident kind, as ``GET /api/v1/playbooks`` and the Playbooks page show them,
equal the counts of the runs that really happened: verified fixes over verified plus failed ones (failed,
verification failed, rolled back), real runs only (dry runs, refusals, rejections, expiries and inconclusive
runs count neither way). In-process (FastAPI TestClient).

One playbook's runs are made by the remediation engine itself (a fix that works is verified, one that does not
is rolled back), written to the store the server reads; the others' are recorded in that store directly, every
final status on two incident kinds. The expected figures are tallied here from what was run, not read back
from ``ActionStore.outcomes``."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aurora.api.server import create_app
from aurora.app import Aurora
from aurora.config import AuroraConfig
from aurora.remedy.engine import RemedyEngine
from aurora.remedy.executors import SimExecutor
from aurora.remedy.playbook import Playbook
from tests.integration.test_web_auth import _csrf, _login

T0 = 1_700_000_000.0
WORKED = {"verified"}
DID_NOT = {"failed", "verification_failed", "rolled_back"}
RESTART: dict[str, Any] = {
    "name": "restart-leak", "match": {"category": ["memory"]}, "mode": "auto", "dry_run": False,
    "steps": [{"action": "restart"}], "rollback": {"action": "failover"}, "verify": {"settle_s": 30, "timeout_s": 120},
    "guardrails": {"cooldown_s": 86_400, "max_per_hour": 10}}  # one run per incident (each its own target)
ROLLBACK: dict[str, Any] = {"name": "rollback-deploy", "match": {"category": ["errors"]}, "mode": "approve",
                            "dry_run": False, "steps": [{"action": "rollback"}]}
FLUSH: dict[str, Any] = {"name": "flush-cache", "match": {"category": ["cache"]}, "mode": "auto", "dry_run": False,
                         "steps": [{"action": "cache_flush"}]}
NEW: dict[str, Any] = {"name": "new-and-dry", "match": {"category": ["disk"]}, "steps": [{"action": "restart"}]}
# (playbook, incident kind, status, dry run, how many) recorded straight into the store
RECORDED: list[tuple[str, str | None, str, bool, int]] = [
    ("rollback-deploy", "errors", "verified", False, 2),
    ("rollback-deploy", "errors", "failed", False, 1),
    ("rollback-deploy", "errors", "verification_failed", False, 1),
    ("rollback-deploy", "errors", "rolled_back", False, 1),
    ("rollback-deploy", "errors", "verified", True, 3),  # dry runs: not real fixes
    ("rollback-deploy", "errors", "failed", True, 2),
    ("rollback-deploy", "errors", "skipped", False, 2),  # refused by a guardrail
    ("rollback-deploy", "errors", "rejected", False, 1),
    ("rollback-deploy", "errors", "expired", False, 1),
    ("rollback-deploy", "errors", "inconclusive", False, 1),  # no verdict
    ("rollback-deploy", "latency", "verified", False, 3),
    ("rollback-deploy", None, "failed", False, 1),  # a run whose incident had no kind
    ("flush-cache", "cache", "skipped", False, 2),  # real decisions, none ran: no rate yet
    ("new-and-dry", "disk", "dry_run", True, 4),
]


class Judge:
    """The incident side of verification: which incidents recovered after their fix."""

    def __init__(self, incidents: dict[int, dict[str, Any]], recovered: set[int]) -> None:
        self.incidents = incidents
        self.recovered = recovered

    def recovery(self, iid: int, now: float, after: float | None = None,
                 service: str | None = None) -> tuple[bool, str]:
        ok = iid in self.recovered
        return ok, "memory back to its usual level" if ok else "still high"

    def mitigate(self, iid: int, now: float, reason: str) -> bool:
        self.incidents[iid]["status"] = "mitigated"
        return True


def _incident(iid: int) -> dict[str, Any]:
    service = f"svc{iid}"
    return {"id": iid, "status": "open", "severity": "warning", "category": "memory", "services": [service],
            "root_causes": [{"service": service, "metric": "container_memory_bytes", "labels": {"service": service},
                             "score": 1.0, "evidence": [{"type": "trend", "text": "rising"}]}], "signals": []}


def _record(aurora: Aurora, playbook: str, kind: str | None, status: str, dry: bool, n: int) -> None:
    for i in range(n):
        aurora.actions.add({
            "incident_id": 900 + i, "playbook": playbook, "incident_kind": kind, "mode": "auto", "dry_run": dry,
            "action": "x", "executor": "sim", "target": f"t{i}", "steps": [], "status": status, "reason": "recorded",
            "requested_at": T0, "decided_at": T0, "decided_by": None, "executed_at": T0, "finished_at": T0 + 60,
            "output": ""})


def _run_the_engine(aurora: Aurora) -> Counter[str]:
    """Four memory incidents through the remediation engine on the server's store: three recover after the
    restart (verified), one does not (rolled back). Returns the statuses the runs ended in."""
    incidents = {i: _incident(i) for i in (1, 2, 3, 4)}
    calls: list[tuple[str, str]] = []
    eng = RemedyEngine(aurora.actions, [Playbook.model_validate(RESTART)],
                       {"sim": SimExecutor(lambda kind, service, t: calls.append((kind, service)) or {"note": "ok"})},
                       incidents.get, Judge(incidents, {1, 2, 3}))
    for k, iid in enumerate((1, 2, 3, 4)):
        t = T0 + 1000 * k
        eng.offer({"id": iid, "change": "ranked", "status": "open"})
        eng.step(t)
        eng.step(t + 45)  # judged after settle_s: the recovered ones are verified
        eng.step(t + 130)  # past timeout_s: the one that did not recover is rolled back
    assert ("failover", "svc4") in calls  # the rollback really ran
    return Counter(a["status"] for a in aurora.actions.query(playbook="restart-leak"))


def _expected(runs: list[tuple[str, str | None, str, bool, int]]) -> dict[str, dict[str, tuple[int, int]]]:
    """playbook -> kind -> (verified, failed) over real runs, tallied from the statuses."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for pb, kind, status, dry, n in runs:
        if dry:
            continue
        v, f = out.setdefault(pb, {}).get(kind or "", (0, 0))
        out[pb][kind or ""] = (v + n * (status in WORKED), f + n * (status in DID_NOT))
    return out


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    cfg.remediation.playbooks = [Playbook.model_validate(p) for p in (RESTART, ROLLBACK, FLUSH, NEW)]
    aurora = Aurora(cfg)
    aurora.open()
    ended = _run_the_engine(aurora)
    assert ended == Counter({"verified": 3, "rolled_back": 1}), ended
    for row in RECORDED:
        _record(aurora, *row)
    runs = [("restart-leak", "memory", status, False, n) for status, n in ended.items()] + RECORDED
    token = aurora.tokens.create("web-read", ["read"])[0]
    with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "aurora": aurora, "token": token, "expected": _expected(runs)}
    aurora.close()


def test_the_api_rates_equal_the_counts(web: dict[str, Any]) -> None:
    expected = web["expected"]
    assert expected["restart-leak"] == {"memory": (3, 1)}
    assert expected["rollback-deploy"] == {"errors": (2, 3), "latency": (3, 0), "": (0, 1)}
    r = web["client"].get("/api/v1/playbooks", headers={"Authorization": f"Bearer {web['token']}"})
    assert r.status_code == 200, r.text
    got = {p["name"]: p["outcomes"] for p in r.json()["playbooks"]}
    assert got["new-and-dry"] == {}  # only dry runs: nothing to rate
    assert got["flush-cache"] == {"cache": {"verified": 0, "failed": 0, "success_rate": None, "smoothed": 0.5}}
    for name in ("restart-leak", "rollback-deploy"):
        assert set(got[name]) == set(expected[name]), name
        for kind, (v, f) in expected[name].items():
            o = got[name][kind]
            assert (o["verified"], o["failed"]) == (v, f), (name, kind)
            assert o["success_rate"] == pytest.approx(v / (v + f)), (name, kind)
            assert o["smoothed"] == pytest.approx((v + 1) / (v + f + 2)), (name, kind)
    assert got["restart-leak"]["memory"]["success_rate"] == 0.75
    assert got["rollback-deploy"]["errors"]["success_rate"] == pytest.approx(0.4)


def _card(page: str, playbook: str) -> str:
    start = page.index(f'id="pb-{playbook}"')
    return page[start:page.index("</article>", start)]


def _page_rows(page: str, playbook: str) -> dict[str, tuple[int, int, str]]:
    """The Success table of one playbook's card: kind -> (verified, failed, rate as shown)."""
    card = _card(page, playbook)
    rows = re.findall(r'<tr class="outcome" data-kind="([^"]*)"><td>[^<]*</td><td class="verified">(\d+)</td>'
                      r'<td class="failed">(\d+)</td><td class="rate">([^<]*)</td></tr>', card)
    return {html.unescape(kind): (int(v), int(f), rate) for kind, v, f, rate in rows}


def test_the_playbooks_page_shows_the_same_rates(web: dict[str, Any]) -> None:
    c, expected = web["client"], web["expected"]
    _login(c, web["token"])
    page = c.get("/ui/playbooks").text
    for name in ("restart-leak", "rollback-deploy"):
        rows = _page_rows(page, name)
        want = {kind or "unknown": (v, f, f"{100 * v / (v + f):.0f} %") for kind, (v, f) in expected[name].items()}
        assert rows == want, name
    assert _page_rows(page, "rollback-deploy")["errors"] == (2, 3, "40 %")
    assert _page_rows(page, "restart-leak")["memory"] == (3, 1, "75 %")
    assert _page_rows(page, "flush-cache") == {"cache": (0, 0, "-")}
    start = page.index('id="pb-new-and-dry"')
    assert "no real runs yet" in page[start:page.index("</article>", start)]


def test_a_new_outcome_moves_the_rate(web: dict[str, Any]) -> None:
    """The figures are read per request, not cached: one more failed fix shows at once."""
    c = web["client"]
    _record(web["aurora"], "restart-leak", "memory", "verification_failed", False, 1)
    r = c.get("/api/v1/playbooks", headers={"Authorization": f"Bearer {web['token']}"})
    memory = {p["name"]: p["outcomes"] for p in r.json()["playbooks"]}["restart-leak"]["memory"]
    assert (memory["verified"], memory["failed"], memory["success_rate"]) == (3, 2, 0.6)
    _login(c, web["token"])
    assert _page_rows(c.get("/ui/playbooks").text, "restart-leak")["memory"] == (3, 2, "60 %")


def test_an_open_circuit_breaker_shows_on_the_api_and_an_operator_closes_it(tmp_path: Path) -> None:
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    aurora = Aurora(cfg)
    aurora.open()
    try:
        incidents = {i: _incident(i) for i in (1, 2)}
        pb = {**RESTART, "rollback": None}
        aurora.remedy = RemedyEngine(aurora.actions, [Playbook.model_validate(pb)],
                                     {"sim": SimExecutor(lambda kind, service, t: {"note": "ok"})},
                                     incidents.get, Judge(incidents, set()), audit=aurora.record_audit)
        for k, iid in enumerate((1, 2)):  # two fixes that do not work
            aurora.remedy.offer({"id": iid, "change": "ranked", "status": "open"})
            aurora.remedy.step(T0 + 1000 * k)
            aurora.remedy.step(T0 + 1000 * k + 130)
            incidents[iid]["status"] = "resolved"
        reader = aurora.tokens.create("r", ["read"])[0]
        operator = aurora.tokens.create("o", ["operate"])[0]
        with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as c:
            def breaker() -> dict[str, Any]:
                r = c.get("/api/v1/playbooks", headers={"Authorization": f"Bearer {reader}"})
                return {p["name"]: p["breaker"] for p in r.json()["playbooks"]}["restart-leak"]

            assert breaker() == {"open": True, "failures": 2, "limit": 2, "until": T0 + 130 + 6 * 3600}
            _login(c, reader)  # the Playbooks page shows it; a reader gets no button
            card = _card(c.get("/ui/playbooks").text, "restart-leak")
            assert 'class="pill critical">open</span> 2 failed fixes' in card and "reset-breaker" not in card
            path = "/api/v1/playbooks/restart-leak/reset-breaker"
            assert c.post(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
            r = c.post("/api/v1/playbooks/nope/reset-breaker", headers={"Authorization": f"Bearer {operator}"})
            assert r.status_code == 404
            r = c.post(path, headers={"Authorization": f"Bearer {operator}"})
            assert r.status_code == 200 and r.json()["breaker"]["open"] is False, r.text
            assert breaker()["open"] is False and breaker()["failures"] == 0
            for k, iid in enumerate((3, 4)):  # two more failures, then an operator closes it on the page
                incidents[iid] = _incident(iid)
                aurora.remedy.offer({"id": iid, "change": "ranked", "status": "open"})
                aurora.remedy.step(T0 + 5000 + 1000 * k)
                aurora.remedy.step(T0 + 5000 + 1000 * k + 130)
                incidents[iid]["status"] = "resolved"
            assert breaker()["open"] is True
            c.cookies.clear()
            _login(c, operator)
            page = c.get("/ui/playbooks").text
            assert 'action="/ui/playbooks/restart-leak/reset-breaker"' in _card(page, "restart-leak")
            r = c.post("/ui/playbooks/restart-leak/reset-breaker", data={"csrf": _csrf(page)}, follow_redirects=False)
            assert r.status_code == 303, r.text
            assert 'class="pill ok">closed</span>' in _card(c.get("/ui/playbooks").text, "restart-leak")
            assert breaker()["open"] is False
    finally:
        aurora.close()
