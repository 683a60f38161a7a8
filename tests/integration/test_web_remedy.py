"""The dashboard's remediation forms (Approve / Reject, the kill switch), in-process (FastAPI TestClient)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from aurora.api.server import create_app
from aurora.app import Aurora
from aurora.config import AuroraConfig
from aurora.db.tables import audit_log
from aurora.remedy.playbook import Playbook
from tests.integration.test_web_auth import _csrf, _login

PLAYBOOK = {"name": "rollback-cart", "description": "roll back a bad cart release", "mode": "approve",
            "dry_run": False, "match": {"category": ["errors"], "service": ["cart"]},
            "steps": [{"action": "rollback"}]}


def _pending(aurora: Aurora, iid: int) -> int:
    now = time.time()
    steps = [{"action": "rollback", "executor": "sim", "target": "cart", "params": {}, "timeout_s": 30.0}]
    return aurora.actions.add({
        "incident_id": iid, "playbook": "rollback-cart", "incident_kind": "errors", "mode": "approve",
        "dry_run": False, "action": "rollback", "executor": "sim", "target": "cart", "steps": steps,
        "status": "pending_approval", "reason": "matched rollback-cart on errors / cart; waiting for approval",
        "requested_at": now, "decided_at": None, "decided_by": None, "executed_at": None, "finished_at": None,
        "output": ""})


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    cfg.remediation.playbooks = [Playbook.model_validate(PLAYBOOK)]
    aurora = Aurora(cfg)
    aurora.open()
    applied: list[tuple[str, str]] = []
    aurora.use_simulated_fleet(lambda kind, service, t: applied.append((kind, service)) or "done")
    iid = aurora.incident_store.create({"title": "cart errors after deploy", "status": "open", "severity": "critical",
                                        "opened_at": time.time() - 60, "services": ["cart"]})
    action = _pending(aurora, iid)
    tokens = {s: aurora.tokens.create(f"web-{s}", [s])[0] for s in ("read", "operate")}
    with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "aurora": aurora, "incident": iid, "action": action, "tokens": tokens,
               "applied": applied}
    aurora.close()


def _status(aurora: Aurora, action_id: int) -> str:
    assert aurora.remedy is not None
    rec = aurora.remedy.store.get(action_id)
    assert rec is not None
    return str(rec["status"])


def test_the_incident_page_lists_its_actions_with_buttons_for_operators(web: dict[str, Any]) -> None:
    c, iid, aid = web["client"], web["incident"], web["action"]
    _login(c, web["tokens"]["operate"])
    page = c.get(f"/ui/incidents/{iid}").text
    assert f'id="action-{aid}"' in page and "waiting for approval" in page
    assert f'id="approve-{aid}"' in page and f'id="reject-{aid}"' in page
    assert "1 waiting" in page  # the navigation's badge
    fragment = c.get(f"/ui/incidents/{iid}/actions").text
    assert f'id="approve-{aid}"' in fragment and "<html" not in fragment


def test_operator_approves_and_the_result_shows_after_the_redirect(web: dict[str, Any]) -> None:
    c, aurora, iid, aid = web["client"], web["aurora"], web["incident"], web["action"]
    _login(c, web["tokens"]["operate"])
    csrf = _csrf(c.get(f"/ui/incidents/{iid}").text)
    r = c.post(f"/ui/actions/{aid}/approve", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/ui/incidents/{iid}?approved={aid}#actions"
    assert web["applied"] == [("rollback", "cart")]
    assert _status(aurora, aid) == "verifying"
    page = c.get(r.headers["location"]).text
    assert f"You approved action #{aid} (rollback-cart); when this page loaded it was verifying." in page
    assert f'id="approve-{aid}"' not in page and "web-operate" in page  # decided_by
    with aurora.engine.connect() as conn:
        acts = set(conn.execute(select(audit_log.c.action).where(audit_log.c.actor == "web-operate")).scalars())
    assert "remedy.running" in acts
    r = c.post(f"/ui/actions/{aid}/approve", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 409 and "not waiting for approval" in r.text  # only once


def test_operator_rejects_with_a_reason(web: dict[str, Any]) -> None:
    c, aurora, iid, aid = web["client"], web["aurora"], web["incident"], web["action"]
    _login(c, web["tokens"]["operate"])
    csrf = _csrf(c.get(f"/ui/incidents/{iid}").text)
    r = c.post(f"/ui/actions/{aid}/reject", data={"csrf": csrf, "reason": "the release is fine, it is the CDN"},
               follow_redirects=False)
    assert r.status_code == 303
    assert _status(aurora, aid) == "rejected" and web["applied"] == []
    page = c.get(r.headers["location"]).text
    assert "when this page loaded it was rejected" in page and "the release is fine, it is the CDN" in page
    assert c.post("/ui/actions/999999/reject", data={"csrf": csrf}).status_code == 404


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_decisions_without_the_csrf_token_change_nothing(web: dict[str, Any], csrf: str | None) -> None:
    c, aurora, aid = web["client"], web["aurora"], web["action"]
    _login(c, web["tokens"]["operate"])
    for path in (f"/ui/actions/{aid}/approve", f"/ui/actions/{aid}/reject", "/ui/remedy/pause"):
        r = c.post(path, data={} if csrf is None else {"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 403 and "nothing was changed" in r.text, path
    assert _status(aurora, aid) == "pending_approval" and web["applied"] == []
    assert aurora.remedy is not None and not aurora.remedy.store.paused()


def test_read_only_users_get_no_buttons_and_a_403(web: dict[str, Any]) -> None:
    c, aurora, iid, aid = web["client"], web["aurora"], web["incident"], web["action"]
    _login(c, web["tokens"]["read"])
    page = c.get(f"/ui/incidents/{iid}").text
    assert f'id="action-{aid}"' in page and f'id="approve-{aid}"' not in page and f'id="reject-{aid}"' not in page
    assert "operate</code> scope to approve" in page
    book = c.get("/ui/playbooks").text
    assert 'id="pause"' not in book and "rollback-cart" in book
    csrf = _csrf(page)
    for path in (f"/ui/actions/{aid}/approve", f"/ui/actions/{aid}/reject", "/ui/remedy/pause"):
        r = c.post(path, data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 403 and "operate" in r.text, path
    assert _status(aurora, aid) == "pending_approval"
    assert aurora.remedy is not None and not aurora.remedy.store.paused()


def test_kill_switch_pause_and_resume_are_audited(web: dict[str, Any]) -> None:
    c, aurora = web["client"], web["aurora"]
    assert aurora.remedy is not None
    _login(c, web["tokens"]["operate"])
    page = c.get("/ui/playbooks").text
    assert 'id="switch-state">active' in page and "rollback-cart" in page and "roll back a bad cart release" in page
    r = c.post("/ui/remedy/pause", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303 and aurora.remedy.store.paused()
    page = c.get(r.headers["location"]).text
    assert 'id="switch-state">paused' in page and "paused by web-operate" in page and 'id="resume"' in page
    assert "kill switch is on" in c.get("/ui/").text
    c.post("/ui/remedy/resume", data={"csrf": _csrf(page)})
    assert not aurora.remedy.store.paused()
    with aurora.engine.connect() as conn:
        acts = list(conn.execute(select(audit_log.c.action).where(audit_log.c.actor == "web-operate")
                                 .order_by(audit_log.c.id)).scalars())
    assert acts[-2:] == ["remedy.pause", "remedy.resume"]


def test_overview_says_what_aurora_did(web: dict[str, Any]) -> None:
    c, iid, aid = web["client"], web["incident"], web["action"]
    _login(c, web["tokens"]["read"])
    page = c.get("/ui/").text
    assert 'id="did-waiting">1<' in page
    assert f'href="/ui/incidents/{iid}#action-{aid}"' in page


def test_the_navigation_badge_fragment(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["tokens"]["read"])
    r = c.get("/ui/fragments/nav-pending")
    assert r.status_code == 200 and 'id="nav-pending"' in r.text and "1 waiting" in r.text
