"""The dashboard's login, session cookie, CSRF protection and scopes, in-process (FastAPI TestClient)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aurora.api.server import create_app
from aurora.app import Aurora
from aurora.config import AuroraConfig
from aurora.db.tables import audit_log, incident_timeline


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    aurora = Aurora(cfg)
    aurora.open()
    iid = aurora.incident_store.create({"title": "cart memory leak", "status": "open", "severity": "critical",
                                        "opened_at": time.time() - 60, "services": ["cart"]})
    tokens = {s: aurora.tokens.create(f"web-{s}", [s])[0] for s in ("read", "operate", "ingest")}
    with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "aurora": aurora, "incident": iid, "tokens": tokens}
    aurora.close()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the form"
    return m.group(1)


def _login(client: TestClient, token: str) -> None:
    csrf = _csrf(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"token": token, "csrf": csrf, "next": "/ui/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "aurora_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def _timeline_count(aurora: Aurora, incident_id: int) -> int:
    with aurora.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(incident_timeline)
                                .where(incident_timeline.c.incident_id == incident_id)).scalar_one())


def test_pages_redirect_to_login_without_a_session(web: dict[str, Any]) -> None:
    c = web["client"]
    for path in ("/ui/", "/ui/incidents", f"/ui/incidents/{web['incident']}", "/ui/topology", "/ui/stream"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
    r = c.get("/ui/fragments/overview", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.headers["HX-Redirect"].startswith("/ui/login")
    assert c.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_login_with_a_token_then_logout(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["tokens"]["read"])
    page = c.get("/ui/")
    assert page.status_code == 200 and "Overview" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    with web["aurora"].engine.connect() as conn:
        assert conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "web.login")).scalar() == "web-read"
    r = c.post("/ui/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_a_stolen_session_cookie_stops_working_after_logout(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["tokens"]["read"])
    stolen = c.cookies.get("aurora_session")
    c.post("/ui/logout", data={"csrf": _csrf(c.get("/ui/").text)})
    c.cookies.set("aurora_session", stolen)
    assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_bad_tokens_are_refused_with_a_reason(web: dict[str, Any]) -> None:
    c = web["client"]
    csrf = _csrf(c.get("/ui/login").text)
    r = c.post("/ui/login", data={"token": "aur_nope", "csrf": csrf})
    assert r.status_code == 401 and "not valid" in r.text
    r = c.post("/ui/login", data={"token": web["tokens"]["ingest"], "csrf": _csrf(r.text)})
    assert r.status_code == 403 and "do not include &#39;read&#39;" in r.text
    r = c.post("/ui/login", data={"token": web["tokens"]["read"], "csrf": "forged"})
    assert r.status_code == 403 and "expired" in r.text
    assert "aurora_session" not in c.cookies


def test_a_login_never_redirects_off_site(web: dict[str, Any]) -> None:
    c = web["client"]
    csrf = _csrf(c.get("/ui/login").text)
    r = c.post("/ui/login", data={"token": web["tokens"]["read"], "csrf": csrf, "next": "//evil.example/"},
               follow_redirects=False)
    assert r.headers["location"] == "/ui/"


def test_a_revoked_token_ends_its_sessions(web: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.web import auth

    monkeypatch.setattr(auth, "CACHE_TTL_S", 0.0)
    c, aurora = web["client"], web["aurora"]
    _login(c, web["tokens"]["read"])
    token_id = next(t["id"] for t in aurora.tokens.list() if t["name"] == "web-read")
    aurora.tokens.revoke(token_id)
    assert c.get("/ui/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(web: dict[str, Any],
                                                                          csrf: str | None) -> None:
    c, aurora, iid = web["client"], web["aurora"], web["incident"]
    _login(c, web["tokens"]["operate"])
    before = _timeline_count(aurora, iid)
    for action, form in (("ack", {}), ("resolve", {"reason": "x"}), ("notes", {"text": "forged note"})):
        data = dict(form) if csrf is None else {**form, "csrf": csrf}
        r = c.post(f"/ui/incidents/{iid}/{action}", data=data, follow_redirects=False)
        assert r.status_code == 403, action
        assert "nothing was changed" in r.text
    rec = aurora.incidents.get(iid)
    assert rec["status"] == "open" and rec["acked_at"] is None
    assert _timeline_count(aurora, iid) == before


def test_operator_acts_through_the_incident_service(web: dict[str, Any]) -> None:
    c, aurora, iid = web["client"], web["aurora"], web["incident"]
    _login(c, web["tokens"]["operate"])
    page = c.get(f"/ui/incidents/{iid}").text
    assert 'id="ack"' in page and 'id="resolve"' in page and 'id="add-note"' in page
    csrf = _csrf(page)
    assert c.post(f"/ui/incidents/{iid}/ack", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert c.post(f"/ui/incidents/{iid}/notes", data={"csrf": csrf, "text": "looked at it"},
                  follow_redirects=False).status_code == 303
    r = c.post(f"/ui/incidents/{iid}/notes", data={"csrf": csrf, "text": "  "})
    assert r.status_code == 400 and "note text is empty" in r.text
    assert c.post(f"/ui/incidents/{iid}/resolve", data={"csrf": csrf, "reason": "fixed"},
                  follow_redirects=False).status_code == 303
    r = c.post(f"/ui/incidents/{iid}/resolve", data={"csrf": csrf})
    assert r.status_code == 409 and "already resolved" in r.text
    rec = aurora.incidents.get(iid)
    assert rec["status"] == "resolved" and rec["acked_by"] == "web-operate"
    with aurora.engine.connect() as conn:
        actions = set(conn.execute(select(audit_log.c.action).where(audit_log.c.actor == "web-operate")).scalars())
    assert {"incident.ack", "incident.note", "incident.resolve"} <= actions


def test_read_only_user_sees_no_action_buttons_and_cannot_act(web: dict[str, Any]) -> None:
    c, iid = web["client"], web["incident"]
    _login(c, web["tokens"]["read"])
    page = c.get(f"/ui/incidents/{iid}").text
    for needle in ('id="ack"', 'id="resolve"', 'id="add-note"', 'href="/ui/audit"'):
        assert needle not in page
    r = c.post(f"/ui/incidents/{iid}/ack", data={"csrf": _csrf(page)})
    assert r.status_code == 403 and "operate" in r.text
    assert c.get("/ui/audit").status_code == 403
    assert web["aurora"].incidents.get(iid)["acked_at"] is None


def test_static_files_are_cached_by_version(web: dict[str, Any]) -> None:
    from aurora.web.assets import static_url

    c = web["client"]
    r = c.get(static_url("css/aurora.css"))
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert c.get("/ui/static/css/aurora.css").headers["cache-control"] == "no-cache"
