"""Remediation in the browser: an operator approves the demo's pending rollback and watches it run and verify.

Runs before test_pages.py (file order), whose operator test resolves an open incident: the rollback is
approved while its incident is still open.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.browser.conftest import Demo, Tab


def _pending_rollback(demo: Demo) -> dict[str, Any]:
    """The demo's first fault (cart's bad deployment) gets a rollback that waits for approval."""
    with demo.api() as c:
        deadline = time.monotonic() + 60
        while True:
            found = [a for a in c.get("/api/v1/actions", params={"status": "pending_approval"}).json()["actions"]
                     if a["playbook"] == "rollback-bad-deployment"]
            if found:
                return dict(found[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no pending rollback within 60 s: {c.get('/api/v1/actions').json()}")
            time.sleep(0.5)


def test_operator_approves_the_pending_rollback_and_sees_it_verified(tab: Tab, demo: Demo) -> None:
    action = _pending_rollback(demo)
    aid, iid = action["id"], action["incident_id"]
    tab.login(demo.tokens["operate"], "/ui/")
    assert int(tab.page.inner_text("#nav-pending").split()[0]) >= 1  # the waiting badge in the navigation
    tab.go(f"/ui/incidents/{iid}")
    run = f"#action-{aid}"
    assert "waiting for approval" in tab.page.inner_text(run)
    tab.shot("incident-pending-approval")
    tab.page.click(f"#approve-{aid}")
    tab.page.wait_for_url(re.compile(rf".*/ui/incidents/{iid}\?approved={aid}#actions$"))
    assert f"You approved action #{aid}" in tab.page.inner_text("#decided")
    assert tab.page.locator(f"#approve-{aid}").count() == 0
    # The live stream's "action" events refresh the panel in place (htmx) until the fix is verified.
    tab.wait_until(f"(document.querySelector('{run}') || {{dataset: {{}}}}).dataset.status === 'verified'", 40)
    text = tab.page.inner_text(run)
    assert "verified" in text and "browser-operate" in text and "rollback" in text
    # ... and the incident's status shows it (a verified fix mitigates it; the meta line is re-fetched on the
    # stream's incident and action events, from the fragment below)
    tab.wait_until("['mitigated', 'resolved'].includes(document.getElementById('incident-status').textContent)", 20)
    meta = tab.page.request.get(f"{demo.url}/ui/incidents/{iid}/meta").text()
    assert 'id="incident-status"' in meta and ("mitigated" in meta or "resolved" in meta)
    tab.shot("incident-approved-verified")
    with demo.api() as c:
        rec = c.get(f"/api/v1/actions/{aid}").json()
    assert rec["status"] == "verified" and rec["decided_by"] == "browser-operate"


def test_read_only_user_sees_actions_but_no_decision_buttons(tab: Tab, demo: Demo) -> None:
    with demo.api() as c:
        actions = c.get("/api/v1/actions").json()["actions"]
    assert actions, "the demo decided nothing yet"
    tab.login(demo.tokens["read"], f"/ui/incidents/{actions[0]['incident_id']}")
    assert tab.page.locator("#runs li.run").count() >= 1
    assert tab.page.locator("button.approve, button.reject").count() == 0
