"""Every dashboard page in real headless Chromium against a running `aurora demo`."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import Demo, Tab


def _open_incident(demo: Demo) -> dict[str, Any]:
    with demo.api() as c:
        for status in ("open", "mitigated"):
            found = c.get("/api/v1/incidents", params={"status": status, "compact": "true"}).json()["incidents"]
            if found:
                return dict(found[0])
        return dict(c.get("/api/v1/incidents", params={"compact": "true"}).json()["incidents"][0])


def test_login_required_then_back_to_the_page(tab: Tab, demo: Demo) -> None:
    tab.go("/ui/topology")
    assert "/ui/login" in tab.page.url
    tab.watch.allow.append((401, "/ui/login"))
    tab.page.fill("#token", "aur_not-a-real-token")
    tab.page.click("form[action='/ui/login'] button[type=submit]")
    assert "not valid" in tab.page.inner_text("#login-error")
    tab.page.fill("#token", demo.tokens["read"])
    tab.page.click("form[action='/ui/login'] button[type=submit]")
    tab.page.wait_for_url(re.compile(r".*/ui/topology$"))


def test_overview(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin)
    rows = tab.page.locator("#health-services tbody tr")
    assert rows.count() >= 12
    assert "cart" in tab.page.inner_text("#health-services")
    assert tab.page.locator("#health-hosts tbody tr").count() >= 3
    tab.page.wait_for_selector("#live.on")  # the live stream connected
    tab.shot("overview")


def test_overview_at_phone_width_in_light_mode(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin)
    assert tab.page.evaluate("document.documentElement.dataset.theme") == "dark"
    tab.page.click("#theme-toggle")
    tab.page.set_viewport_size({"width": 390, "height": 844})
    tab.page.reload()
    assert tab.page.evaluate("document.documentElement.dataset.theme") == "light"  # kept in localStorage
    overflow = tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the phone screen"
    tab.shot("overview-phone-light")


def test_keyboard_skip_link_and_focus(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin)
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.className") == "skip"
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "main"


def test_service_page_draws_charts_and_follows_live_data(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin, "/ui/services/cart")
    tab.page.wait_for_selector("#charts figure.chart canvas")
    assert tab.page.locator("#charts figure.chart").count() >= 5
    assert "postgres" in tab.page.inner_text("#h-deps + ul")
    first = tab.page.get_attribute("#charts", "data-loaded")
    # At 60x the demo's data time moves every few hundred ms: the stream's "data" event re-fetches the charts.
    tab.wait_until(f"document.getElementById('charts').dataset.loaded !== '{first}'", 8)
    tab.shot("service-cart")


def test_services_models_playbooks(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"], "/ui/services")
    assert tab.page.locator(".card.svc").count() >= 12
    tab.go("/ui/models")
    assert "recommender" in tab.page.inner_text("main")
    tab.shot("models")
    tab.go("/ui/playbooks")
    assert "rollback-bad-deployment" in tab.page.inner_text("main")
    breakers = tab.page.locator("article.playbook dd.breaker")
    assert breakers.count() == tab.page.locator("article.playbook").count() >= 5
    assert all("closed" in breakers.nth(k).inner_text() for k in range(breakers.count()))  # no fix failed twice
    tab.go("/ui/runbooks")
    names = tab.page.locator("main a[href^='/ui/runbooks/']")
    assert names.count() >= 2, tab.page.inner_text("main")  # the demo's runbooks, each linked
    tab.shot("runbooks")


def test_topology_graph(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"], "/ui/topology")
    tab.wait_until("Number(document.getElementById('topology').dataset.loaded) >= 12")
    assert tab.page.locator("#topology canvas").count() >= 1
    tab.page.click("text=The graph as a table")
    assert tab.page.locator("#topology-table tbody tr").count() >= 12
    tab.shot("topology")


def test_incidents_list_filters_and_reports(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"], "/ui/incidents")
    assert tab.page.locator("#incidents tbody tr").count() >= 1
    tab.page.select_option("select[name=severity]", "critical")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url(re.compile(r".*severity=critical.*"))
    tab.shot("incidents")
    inc = _open_incident(demo)
    tab.go(f"/ui/incidents/{inc['id']}")
    assert tab.page.locator("#causes li").count() >= 1 or "No causes ranked yet" in tab.page.inner_text("main")
    with tab.page.expect_download() as dl:
        tab.page.click("text=Export Markdown")
    assert dl.value.suggested_filename == f"incident-{inc['id']}.md"
    report = tab.go(f"/ui/incidents/{inc['id']}/report.html")
    assert report.status == 200 and f"Incident #{inc['id']}" in tab.page.inner_text("h1")


def test_incident_page_draws_the_evidence_charts_of_its_causes(tab: Tab, demo: Demo) -> None:
    inc = _open_incident(demo)
    tab.login(demo.tokens["read"], f"/ui/incidents/{inc['id']}")
    tab.wait_until("document.getElementById('charts') && document.getElementById('charts').dataset.loaded", 10)
    drawn = tab.page.locator("#charts figure.chart canvas").count()
    data = tab.page.request.get(f"{demo.url}/ui/incidents/{inc['id']}/charts.json").json()  # the session's cookie
    top = inc["root_causes"][0] if inc.get("root_causes") else None
    assert top is not None and data["charts"], data
    assert data["charts"][0]["metric"].startswith(f"{top['service']} · ")
    assert any(e["kind"] == "incident" for e in data["events"])  # the opening is marked
    assert drawn == len(data["charts"])
    tab.shot("incident-evidence-charts")


def test_incident_page_links_its_runbooks_and_the_runbook_reads(tab: Tab, demo: Demo) -> None:
    """The demo indexes src/aurora/remedy/demo_runbooks: an incident's page links the runbooks its API record
    lists (those its playbooks name first), and the link opens the runbook rendered from its Markdown."""
    with demo.api() as c:
        found = [c.get(f"/api/v1/incidents/{i['id']}").json()
                 for i in c.get("/api/v1/incidents", params={"compact": "true"}).json()["incidents"]]
    inc = next((i for i in found if i.get("runbooks")), None)
    assert inc is not None, [(i["id"], i["title"], i.get("runbooks")) for i in found]
    tab.login(demo.tokens["read"], f"/ui/incidents/{inc['id']}")
    links = tab.page.locator("#runbook-links a")
    shown = [(links.nth(k).get_attribute("href"), links.nth(k).inner_text()) for k in range(links.count())]
    assert shown == [(f"/ui/runbooks/{r['name']}", r["title"]) for r in inc["runbooks"]]
    tab.shot("incident-runbooks")
    first = inc["runbooks"][0]
    tab.page.click("#runbook-1")
    tab.page.wait_for_url(re.compile(rf".*/ui/runbooks/{re.escape(first['name'])}$"))
    assert tab.page.inner_text("#runbook-title") == first["title"]
    assert tab.page.locator("#runbook ol li, #runbook ul li, #runbook p").count() >= 1  # Markdown, rendered
    tab.shot("runbook")


def test_read_only_user_sees_no_action_buttons(tab: Tab, demo: Demo) -> None:
    inc = _open_incident(demo)
    tab.login(demo.tokens["read"], f"/ui/incidents/{inc['id']}")
    for sel in ("#ack", "#resolve", "#add-note"):
        assert tab.page.locator(sel).count() == 0, sel
    assert tab.page.locator("a[href='/ui/audit']").count() == 0


def test_operator_acknowledges_notes_and_resolves(tab: Tab, demo: Demo) -> None:
    inc = _open_incident(demo)
    tab.login(demo.tokens["operate"], f"/ui/incidents/{inc['id']}")
    if tab.page.locator("#ack").count():
        tab.page.click("#ack")
        tab.page.wait_for_selector("#timeline li.tl-ack")
    tab.page.fill("#note-text", "checked the cart rollout from the browser test")
    tab.page.click("#add-note")
    tab.page.wait_for_selector("#timeline li.tl-note")
    tab.page.fill("#reason", "rolled back")
    tab.page.click("#resolve")
    tab.wait_until("document.getElementById('incident-status').textContent === 'resolved'")
    assert tab.page.locator("#resolve").count() == 0
    tab.shot("incident-resolved")
    with demo.api() as c:
        rec = c.get(f"/api/v1/incidents/{inc['id']}").json()
    assert rec["status"] == "resolved"


def test_admin_audit_log_and_tokens(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin, "/ui/audit")
    assert "web.login" in tab.page.inner_text("#audit")
    tab.shot("audit")
    tab.go("/ui/settings/tokens")
    assert "browser-read" in tab.page.inner_text("#tokens")


def test_logout_ends_the_session(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"])
    tab.page.click("form[action='/ui/logout'] button")
    tab.page.wait_for_url(re.compile(r".*/ui/login$"))
    tab.go("/ui/")
    assert "/ui/login" in tab.page.url
