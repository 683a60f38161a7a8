"""The dashboard's Settings page (tokens, notification channels) and its pages' honest empty states, in-process."""

from __future__ import annotations

import re
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
from tests.integration.test_web_auth import _csrf, _login


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    cfg.remediation.enabled = False
    aurora = Aurora(cfg)
    aurora.open()
    tokens = {s: aurora.tokens.create(f"web-{s}", [s])[0] for s in ("read", "operate", "admin")}
    with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "aurora": aurora, "tokens": tokens}
    aurora.close()


def _names(aurora: Aurora) -> dict[str, dict[str, Any]]:
    return {str(t["name"]): t for t in aurora.tokens.list()}


def test_admin_creates_a_token_shown_once_and_revokes_it(web: dict[str, Any]) -> None:
    c, aurora = web["client"], web["aurora"]
    _login(c, web["tokens"]["admin"])
    page = c.get("/ui/settings").text
    assert "web-read" in page and 'id="create-token"' in page
    r = c.post("/ui/settings/tokens", data={"csrf": _csrf(page), "name": "grafana", "scope": ["read", "operate"]})
    assert r.status_code == 201
    m = re.search(r'id="new-token-value">(aur_[^<]+)<', r.text)
    assert m, "the new token is shown"
    assert aurora.tokens.verify(m.group(1)) is not None
    tok = _names(aurora)["grafana"]
    assert tok["scopes"] == ["read", "operate"]
    assert m.group(1) not in c.get("/ui/settings").text  # only once
    r = c.post(f"/ui/settings/tokens/{tok['id']}/revoke", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303 and _names(aurora)["grafana"]["revoked"]
    assert "is revoked" in c.get(r.headers["location"]).text
    with aurora.engine.connect() as conn:
        acts = list(conn.execute(select(audit_log.c.action).where(audit_log.c.actor == "web-admin")
                                 .order_by(audit_log.c.id)).scalars())
    assert acts[-2:] == ["token.create", "token.revoke"]


def test_token_form_errors_say_what_to_fix(web: dict[str, Any]) -> None:
    c, aurora = web["client"], web["aurora"]
    _login(c, web["tokens"]["admin"])
    csrf = _csrf(c.get("/ui/settings").text)
    before = set(_names(aurora))
    r = c.post("/ui/settings/tokens", data={"csrf": csrf, "name": "ci"})
    assert r.status_code == 400 and "Tick at least one scope" in r.text
    r = c.post("/ui/settings/tokens", data={"csrf": csrf, "name": " ", "scope": "read"})
    assert r.status_code == 400 and "Give the token a name" in r.text
    r = c.post("/ui/settings/tokens", data={"csrf": csrf, "name": "x", "scope": "root"})
    assert r.status_code == 400 and "choose from" in r.text
    assert c.post("/ui/settings/tokens/999/revoke", data={"csrf": csrf}).status_code == 404
    assert set(_names(aurora)) == before


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_token_forms_without_the_csrf_token_change_nothing(web: dict[str, Any], csrf: str | None) -> None:
    c, aurora = web["client"], web["aurora"]
    _login(c, web["tokens"]["admin"])
    extra = {} if csrf is None else {"csrf": csrf}
    r = c.post("/ui/settings/tokens", data={**extra, "name": "forged", "scope": "admin"})
    assert r.status_code == 403 and "nothing was changed" in r.text
    rid = _names(aurora)["web-read"]["id"]
    assert c.post(f"/ui/settings/tokens/{rid}/revoke", data=extra).status_code == 403
    assert "forged" not in _names(aurora) and not _names(aurora)["web-read"]["revoked"]


def test_settings_are_for_admins_only(web: dict[str, Any]) -> None:
    c, aurora = web["client"], web["aurora"]
    _login(c, web["tokens"]["operate"])
    page = c.get("/ui/").text
    assert 'href="/ui/settings"' not in page
    assert c.get("/ui/settings").status_code == 403
    r = c.post("/ui/settings/tokens", data={"csrf": _csrf(page), "name": "sneaky", "scope": "admin"})
    assert r.status_code == 403 and "sneaky" not in _names(aurora)


def test_empty_states_are_honest(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["tokens"]["admin"])
    page = c.get("/ui/settings").text
    assert 'id="channels-none"' in page and "not configured" in page
    assert "remediation is disabled" in c.get("/ui/playbooks").text
    assert "remediation is disabled" in c.get("/ui/").text
    assert 'id="nav-pending"' in page and "hidden" in page.split('id="nav-pending"')[1].split(">")[0]
    r = c.post("/ui/actions/1/approve", data={"csrf": _csrf(page)})
    assert r.status_code == 404 and "disabled" in r.text
    assert c.get("/ui/models/cart").status_code == 404
    view = c.get("/ui/services/cart/homology.json").json()
    assert view["ok"] is False and "no gauge series" in view["message"]
