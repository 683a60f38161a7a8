"""The Playbooks, Model health, Persistent homology and Settings pages in Chromium against the running demo
(each fails on a console error or a failed request, see conftest.Watch)."""

from __future__ import annotations

from tests.browser.conftest import Demo, Tab


def test_overview_says_what_aurora_did_and_playbooks_page(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["operate"])
    assert tab.page.locator("#did-runs li").count() >= 1
    tab.go("/ui/playbooks")
    assert tab.page.locator("article.playbook").count() == 5
    assert tab.page.inner_text("#switch-state") == "active"
    assert tab.page.locator("#pause").count() == 1  # operators may pull the kill switch
    text = tab.page.inner_text("#pb-rollback-bad-deployment")
    assert "approve" in text and "rollback" in text and "deployment" in text
    tab.shot("playbooks")


def test_model_health_charts_with_the_accuracy_floor(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"], "/ui/models")
    tab.page.click("#models a[href='/ui/models/recommender']")
    tab.page.wait_for_selector("#charts figure.chart canvas")
    captions = tab.page.inner_text("#charts")
    for metric in ("model_accuracy_ratio", "model_prediction_drift_score", "model_inference_latency_seconds"):
        assert metric in captions
    assert "floor 0.85" in captions  # the limit line's legend
    assert "accuracy" in tab.page.inner_text("#model-latest")
    tab.shot("model-health-recommender")


def test_persistent_homology_diagram(tab: Tab, demo: Demo) -> None:
    tab.login(demo.tokens["read"], "/ui/services/cart/homology")
    loaded = tab.wait_until("document.getElementById('homology').dataset.loaded", 20)
    if loaded == "diagram":
        assert tab.page.locator("#diagram canvas").count() >= 1
        assert tab.page.locator("#homology-table tbody tr").count() == 2  # H0 and H1
        assert "cart's metrics" in tab.page.inner_text("#homology-explanation")
    else:  # too little data is said, not drawn
        assert "Too little" in tab.page.inner_text("#homology-message")
    tab.shot("homology-cart")


def test_settings_create_and_revoke_a_token(tab: Tab, demo: Demo) -> None:
    tab.login(demo.admin, "/ui/settings")
    assert tab.page.locator("#channels, #channels-none").count() == 1
    tab.page.fill("#token-name", "made-in-the-browser")
    tab.page.check("#scope-read")
    tab.page.click("#create-token-submit")
    token = tab.page.inner_text("#new-token-value")
    assert token.startswith("aur_")
    tab.shot("settings-token-created")
    with demo.api() as c:
        found = [t for t in c.get("/api/v1/tokens").json()["tokens"] if t["name"] == "made-in-the-browser"]
    assert len(found) == 1 and found[0]["scopes"] == ["read"]
    tab.page.click(f"#revoke-{found[0]['id']}")
    tab.page.wait_for_selector("#revoked")
    assert "revoked" in tab.page.inner_text(f"#token-{found[0]['id']}")
    tab.shot("settings")
