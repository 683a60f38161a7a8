"""Runbooks in the dashboard, in-process (FastAPI TestClient): the incident page links the runbooks its API
record lists, and a read-only page renders a runbook's Markdown safely (raw HTML escaped, unsafe links
refused), behind the dashboard's login."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aurora.api.server import create_app
from aurora.app import Aurora
from aurora.config import AuroraConfig
from aurora.remedy.playbook import Playbook
from tests.integration.test_web_auth import _login

LEAK = """tags: memory, leak, restart
# Memory leak on a service

Restart it **before** the limit; then find the leak.

<script>alert("runbook")</script>
<img src=x onerror="alert(1)">

[bad link](javascript:alert(1)) and [good link](https://wiki.example/leaks)

| step | who |
|------|-----|
| restart | Aurora |

## Afterwards
1. Take a heap dump.
"""
DEPLOY = "tags: deployment, rollback\n# Bad deployment\n\nRoll back.\n"
PLAYBOOK = {"name": "restart-leak", "mode": "approve", "dry_run": True, "runbook": "leak.md",
            "match": {"category": ["memory"]}, "steps": [{"action": "restart"}]}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "leak.md").write_text(LEAK)
    (books / "deploy.md").write_text(DEPLOY)
    cfg = AuroraConfig()
    cfg.storage.data_dir = tmp_path / "data"
    cfg.host_agent.enabled = False
    cfg.remediation.runbooks_dir = books
    cfg.remediation.playbooks = [Playbook.model_validate(PLAYBOOK)]
    aurora = Aurora(cfg)
    aurora.open()
    iid = aurora.incident_store.create({
        "title": "cart memory leak", "status": "open", "severity": "critical", "opened_at": time.time() - 60,
        "services": ["cart"], "category": "memory", "summary": "cart memory grows",
        "root_causes": [{"service": "cart", "metric": "container_memory_bytes", "score": 0.9, "evidence": []}]})
    token = aurora.tokens.create("web-read", ["read"])[0]
    with TestClient(create_app(aurora, background=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "aurora": aurora, "incident": iid, "token": token}
    aurora.close()


def test_the_incident_page_links_the_runbooks_its_record_lists(web: dict[str, Any]) -> None:
    c, aurora, iid = web["client"], web["aurora"], web["incident"]
    linked = aurora.incidents.get(iid)["runbooks"]
    assert [r["name"] for r in linked][:1] == ["leak.md"]  # named by the matching playbook, first
    _login(c, web["token"])
    page = c.get(f"/ui/incidents/{iid}").text
    section = page[page.index('id="h-runbooks"'):page.index('id="h-causes"')]
    links = re.findall(r'<a href="(/ui/runbooks/[^"]+)" id="runbook-\d+">([^<]+)</a>', section)
    assert links == [(f"/ui/runbooks/{r['name']}", r["title"]) for r in linked]
    assert "named by a matching playbook" in section
    for href, _ in links:  # every link opens
        assert c.get(href).status_code == 200, href


def test_an_incident_no_runbook_fits_says_so(web: dict[str, Any]) -> None:
    c, aurora = web["client"], web["aurora"]
    other = aurora.incident_store.create({"title": "zzz", "status": "open", "severity": "warning",
                                          "opened_at": time.time(), "services": ["qqq"]})
    assert aurora.incidents.get(other)["runbooks"] == []
    _login(c, web["token"])
    assert "No runbook fits this incident" in c.get(f"/ui/incidents/{other}").text


def test_the_runbook_page_renders_markdown_safely(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["token"])
    r = c.get("/ui/runbooks/leak.md")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    page = r.text
    body = page[page.index('id="runbook"'):]
    assert '<h1 id="runbook-title">Memory leak on a service</h1>' in page
    assert "<strong>before</strong>" in body and "<h2>Afterwards</h2>" in body and "<table>" in body
    assert '<a href="https://wiki.example/leaks">good link</a>' in body
    # raw HTML is text, and a javascript: link is not a link
    assert "&lt;script&gt;alert(&quot;runbook&quot;)&lt;/script&gt;" in body and "<script>alert" not in body
    assert "<img" not in body and 'href="javascript' not in body and "[bad link](javascript:alert(1))" in body
    assert "tags:" not in body and '<span class="tag">memory</span>' in page  # the tags line is shown apart


def test_the_runbooks_list_and_unknown_names(web: dict[str, Any]) -> None:
    c = web["client"]
    _login(c, web["token"])
    listing = c.get("/ui/runbooks").text
    assert 'href="/ui/runbooks/leak.md">Memory leak on a service</a>' in listing
    assert 'href="/ui/runbooks/deploy.md">Bad deployment</a>' in listing
    missing = c.get("/ui/runbooks/nope.md")
    assert missing.status_code == 404 and "No runbook named" in missing.text
    book = c.get("/ui/playbooks").text  # the playbook names its runbook: linked
    assert 'href="/ui/runbooks/leak.md">leak.md</a>' in book


def test_runbook_pages_need_a_session(web: dict[str, Any]) -> None:
    c = web["client"]
    for path in ("/ui/runbooks", "/ui/runbooks/leak.md"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path


def test_without_markdown_it_the_text_is_shown_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.web import runbooks

    monkeypatch.setattr(runbooks, "_MD", None)
    out = str(runbooks.render("<script>x</script> **b**"))
    assert out == '<pre class="runbook-text">&lt;script&gt;x&lt;/script&gt; **b**</pre>'
