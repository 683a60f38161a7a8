"""Browser tests: one real `aurora demo` per database (SQLite, then PostgreSQL), driven by Debian's headless
chromium.

Every page test fails on a console error, an uncaught exception, a failed request or a response >= 400
(see ``Watch``); screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import pg_schema
from tests.integration.server import free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"



@dataclass
class Demo:
    url: str
    data_dir: Path
    admin: str
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin}"}, timeout=30)


def _token(data_dir: Path, scope: str, env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "aurora", "token", "create", "--scope", scope, "--name", f"browser-{scope}",
           "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip().splitlines()[-1]


# Every page on both databases the product supports: the embedded default and PostgreSQL in production.
@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if request.param == "sqlite":  # the demo's embedded default
        yield from _run_demo(tmp_path_factory, None)
        return
    with pg_schema("b") as database_url:
        yield from _run_demo(tmp_path_factory, database_url)


def _run_demo(tmp_path_factory: pytest.TempPathFactory, database_url: str | None) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    data_dir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env["AURORA_HOST_AGENT__ENABLED"] = "false"
    if database_url is not None:
        env["AURORA_DATABASE_URL"] = database_url
    # At 60x the default hour to approve a run is one minute of wall time: less than the browser suite takes.
    env["AURORA_REMEDIATION__APPROVAL_TIMEOUT_S"] = "86400"
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "aurora", "demo", "--port", str(port), "--data-dir", str(data_dir),
                             "--speed", "60x", "--backfill-hours", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"aurora demo exited:\n{(data_dir / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200 and (data_dir / "admin.token").exists():
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("aurora demo did not become ready in 60 s")
            time.sleep(0.2)
        d = Demo(url, data_dir, (data_dir / "admin.token").read_text().strip())
        d.tokens = {"admin": d.admin, "read": _token(data_dir, "read", env),
                    "operate": _token(data_dir, "operate", env)}
        # The demo's first fault (a bad deployment of cart) becomes an incident within seconds at 60x.
        with d.api() as c:
            deadline = time.monotonic() + 60
            while not c.get("/api/v1/incidents", params={"compact": "true"}).json()["incidents"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the demo opened no incident within 60 s")
                time.sleep(0.5)
        if database_url is not None:  # the demo really keeps its state in PostgreSQL
            engine = create_engine(database_url)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM incidents")).scalar_one() > 0
            engine.dispose()
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():  # .ci/run installs it; by hand: apt-get install chromium
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


class Watch:
    """Collects what must not happen on a page. ``allow`` lists (status, url part) pairs a test expects."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        self.allow: list[tuple[int, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self._navigations = 0
        self._issued: dict[Any, int] = {}
        self._aborted: list[tuple[Any, int]] = []
        page.on("request", self._request)
        page.on("framenavigated", lambda f: self._navigated(page, f))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _allowed(self, status: int, url: str) -> bool:
        return any(status == s and part in url for s, part in self.allow)

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        # Chromium also logs every >= 400 response; an expected one (see allow) is not a problem.
        m = re.search(r"status of (\d+)", msg.text)
        if m and self._allowed(int(m.group(1)), str(msg.location.get("url", ""))):
            return
        self.problems.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def _navigated(self, page: Any, frame: Any) -> None:
        # Counted when the new document commits, not when its request starts: until then the old page still
        # runs, and may issue requests (an htmx refresh on a live event during a form post) that leaving aborts.
        if frame == page.main_frame:
            self._navigations += 1

    def _request(self, req: Any) -> None:
        self._issued[req] = self._navigations

    def _failed(self, req: Any) -> None:
        # Leaving a page cancels what it still had in flight (its live stream, which never ends by itself, a
        # favicon, an htmx refresh): the browser aborted those, the server did not fail. Chromium may report the
        # abort before the commit that caused it, so aborts are judged in report(), once every commit is known.
        if req.failure == "net::ERR_ABORTED":
            self._aborted.append((req, self._issued.get(req, self._navigations)))
            return
        self.problems.append(f"request failed: {req.method} {req.url} ({req.failure})")

    def report(self) -> list[str]:
        """Everything that went wrong, including aborts no later page load explains."""
        return self.problems + [f"request failed: {r.method} {r.url} ({r.failure})"
                                for r, issued in self._aborted if issued >= self._navigations]

    def _response(self, resp: Any) -> None:
        if resp.status >= 400 and not self._allowed(resp.status, resp.url):
            self.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")


@dataclass
class Tab:
    page: Any
    watch: Watch
    base: str

    def go(self, path: str) -> Any:
        resp = self.page.goto(self.base + path)
        return resp

    def login(self, token: str, then: str = "/ui/") -> None:
        self.go(f"/ui/login?next={then}")
        self.page.fill("#token", token)
        self.page.click("form[action='/ui/login'] button[type=submit]")
        self.page.wait_for_url(self.base + then)

    def wait_until(self, js: str, timeout_s: float = 10.0) -> Any:
        """Poll a JS expression until it is truthy (wait_for_function compiles its predicate in the page,
        which the dashboard's CSP, rightly, forbids)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.page.evaluate(js)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout_s} s: {js}")
            self.page.wait_for_timeout(100)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Any, demo: Demo) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    watch = Watch(page)
    yield Tab(page, watch, demo.url)
    problems = watch.report()  # before closing, which aborts what the last page still loads (its favicon)
    ctx.close()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session", autouse=True)
def _clean_shots() -> None:
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
