"""The remediation kill switch and decisions against a real server (uvicorn in a subprocess), on SQLite and
PostgreSQL: ``aurora remedy pause --reason`` / ``status`` / ``resume`` on the server's database (the server obeys
within a second), ``POST /api/v1/remedy/pause|resume`` and ``POST /api/v1/actions/{id}/reject``, with their
scopes and errors.

The server's database is seeded (migrated first, written with the stores) before it starts: an incident, two
runs waiting for approval and one finished run."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aurora.db.database import create_db_engine, migrate
from aurora.db.tables import audit_log
from aurora.incidents.store import IncidentStore
from aurora.remedy.store import ActionStore
from tests.integration.server import ServerProcess

CONFIG = """
remediation:
  playbooks:
    - name: rollback-cart
      mode: approve
      dry_run: false
      match: {category: [errors], service: [cart]}
      steps: [{action: rollback}]
"""
ME = f"cli:{getpass.getuser()}"


@dataclass
class World:
    srv: ServerProcess
    db: str
    incident: int
    pending: list[int]
    done: int
    tokens: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "aurora", "remedy", *args, "--data-dir", str(self.srv.data_dir)]
        return subprocess.run(cmd, env=self.srv.env, capture_output=True, text=True, timeout=60)

    def api(self, scope: str = "admin") -> httpx.Client:
        return self.srv.client(self.tokens[scope])

    def audit(self, action: str) -> list[tuple[str, dict[str, Any]]]:
        engine = create_db_engine(self.db)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(audit_log.c.actor, audit_log.c.detail).where(audit_log.c.action == action)
                                    .order_by(audit_log.c.id)).all()
        finally:
            engine.dispose()
        return [(r.actor, json.loads(r.detail)) for r in rows]


def _run(store: ActionStore, iid: int, status: str) -> int:
    now = time.time()
    return store.add({
        "incident_id": iid, "playbook": "rollback-cart", "incident_kind": "errors", "mode": "approve",
        "dry_run": False, "action": "rollback", "executor": "sim", "target": "cart",
        "steps": [{"action": "rollback", "executor": "sim", "target": "cart", "params": {}, "timeout_s": 30.0}],
        "status": status, "reason": "matched rollback-cart on errors / cart", "requested_at": now,
        "decided_at": None, "decided_by": None, "executed_at": None, "finished_at": None, "output": ""})


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    pg = None if db_url.startswith("sqlite") else db_url
    url = pg or f"sqlite:///{(data / 'aurora.db').resolve()}"
    engine = create_db_engine(url)
    migrate(engine)
    iid = IncidentStore(engine).create({"title": "cart errors after deploy", "status": "open", "severity": "critical",
                                        "opened_at": time.time() - 60, "services": ["cart"], "category": "errors"})
    store = ActionStore(engine)
    pending = [_run(store, iid, "pending_approval") for _ in range(2)]
    done = _run(store, iid, "verified")
    engine.dispose()
    config = tmp_path / "aurora.yaml"
    config.write_text(CONFIG)
    srv = ServerProcess(data, pg, config=config).start()
    try:
        with srv.client() as c:
            tokens = {"admin": srv.env["AURORA_ADMIN_TOKEN"]}
            for scope in ("read", "operate"):
                r = c.post("/api/v1/tokens", json={"name": f"t-{scope}", "scopes": [scope]})
                assert r.status_code == 201, r.text
                tokens[scope] = r.json()["token"]
        yield World(srv, url, iid, pending, done, tokens)
    finally:
        srv.stop()


def _until(check: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the server did not follow the switch in time"
        time.sleep(0.1)


def _paused(w: World) -> bool:
    with w.api("read") as c:
        return bool(c.get("/api/v1/remedy").json()["paused"])


def _status(w: World) -> tuple[dict[str, str], list[str]]:
    """``aurora remedy status``: its ``key: value`` lines, and its lines of runs."""
    r = w.cli("status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    return (dict(ln.split(": ", 1) for ln in lines if ": " in ln and not ln.startswith("#")),
            [ln for ln in lines if ln.startswith("#")])


def _status_lines(w: World) -> dict[str, str]:
    return _status(w)[0]


def test_cli_pause_status_resume_against_a_running_server(world: World) -> None:
    w = world
    before = _status_lines(w)
    assert before["paused"].startswith("no") and "paused by" not in before
    t0 = time.time()
    r = w.cli("pause", "--reason", "deploy freeze until 14:00")
    assert r.returncode == 0 and "remediation paused" in r.stderr, r.stderr
    _until(lambda: _paused(w))  # the running server obeys (its cache is one second)
    with w.api("read") as c:
        state = c.get("/api/v1/remedy").json()["state"]["paused"]
        assert state["value"] == "true" and state["updated_by"] == ME
        assert c.get("/api/v1/playbooks").json()["paused"] is True
    # who, when (UTC, and the local wall clock) and why
    lines, runs = _status(w)
    assert lines["paused"].startswith("yes")
    assert lines["paused by"] == f"{ME} (via cli)"
    assert lines["reason"] == "deploy freeze until 14:00"
    when = dt.datetime.strptime(lines["paused at"].split(" UTC")[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert t0 - 2 <= when.timestamp() <= time.time() + 1
    assert "local time" in lines["paused at"] and " ago)" in lines["paused at"]
    assert f"#{w.pending[0]}\tincident {w.incident}\trollback-cart\trollback cart\tpending_approval" in runs
    js = json.loads(w.cli("status", "--json").stdout)
    assert (js["paused"], js["by"], js["reason"], js["via"]) == (True, ME, "deploy freeze until 14:00", "cli")
    assert abs(js["at"] - state["updated_at"]) < 1e-6 and {a["id"] for a in js["recent"]} >= set(w.pending)
    # while paused, an approval is refused by the guardrails: nothing runs
    with w.api("operate") as c:
        got = c.post(f"/api/v1/actions/{w.pending[0]}/approve")
        assert got.status_code == 200, got.text
        assert got.json()["status"] == "skipped" and "paused" in got.json()["reason"]
    assert w.audit("remedy.pause") == [(ME, {"reason": "deploy freeze until 14:00", "via": "cli"})]

    r = w.cli("resume")
    assert r.returncode == 0 and "remediation resumed" in r.stderr, r.stderr
    _until(lambda: not _paused(w))
    lines = _status_lines(w)
    assert lines["paused"].startswith("no") and lines["last resumed by"].startswith(f"{ME} at ")
    again = w.cli("resume")  # resuming what runs changes nothing, and is not an error
    assert again.returncode == 0 and "nothing was changed" in again.stderr
    assert [a for a, _ in w.audit("remedy.resume")] == [ME]


def test_api_pause_and_resume_need_the_operate_scope(world: World) -> None:
    w = world
    with w.srv.client(None) as anon:
        assert anon.post("/api/v1/remedy/pause").status_code == 401
    with w.api("read") as c:
        r = c.post("/api/v1/remedy/pause")
        assert r.status_code == 403 and "operate" in r.json()["message"]
    assert not _paused(w) and w.audit("remedy.pause") == []
    with w.api("operate") as c:
        r = c.post("/api/v1/remedy/pause", json={"reason": "db migration"})
        assert r.status_code == 200 and r.json() == {"paused": True}
        state = c.get("/api/v1/remedy").json()
        assert state["paused"] is True and state["state"]["paused"]["updated_by"] == "t-operate"
    lines = _status_lines(w)  # the CLI tells who paused it through the API
    assert lines["paused"].startswith("yes") and lines["paused by"] == "t-operate (via api)"
    assert lines["reason"] == "db migration"
    with w.api("read") as c:
        assert c.post("/api/v1/remedy/resume").status_code == 403
    assert _paused(w)
    with w.api("operate") as c:
        r = c.post("/api/v1/remedy/resume")
        assert r.status_code == 200 and r.json() == {"paused": False}
    assert not _paused(w)
    assert [a for a, _ in w.audit("remedy.pause")] == ["t-operate"]
    assert [a for a, _ in w.audit("remedy.resume")] == ["t-operate"]


def test_reject_an_action(world: World) -> None:
    w = world
    aid = w.pending[1]
    with w.api("operate") as c:
        missing = c.post("/api/v1/actions/999999/reject", json={"reason": "x"})
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert "999999" in missing.json()["message"]
    with w.api("read") as c:
        r = c.post(f"/api/v1/actions/{aid}/reject", json={"reason": "no"})
        assert r.status_code == 403 and "operate" in r.json()["message"]
        assert c.get(f"/api/v1/actions/{aid}").json()["status"] == "pending_approval"  # nothing changed
    with w.api("operate") as c:
        bad = c.post(f"/api/v1/actions/{aid}/reject", json={"reason": "x", "force": True})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_input"
        r = c.post(f"/api/v1/actions/{aid}/reject", json={"reason": "the release is fine, it is the CDN"})
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["status"] == "rejected" and rec["decided_by"] == "t-operate"
        assert rec["reason"].endswith("rejected by t-operate: the release is fine, it is the CDN")
        assert c.get(f"/api/v1/actions/{aid}").json()["status"] == "rejected"
        # only a run waiting for approval can be rejected: 409, and nothing changes
        twice = c.post(f"/api/v1/actions/{aid}/reject")
        assert twice.status_code == 409 and twice.json()["error"] == "conflict"
        assert "not waiting for approval" in twice.json()["message"]
        finished = c.post(f"/api/v1/actions/{w.done}/reject")
        assert finished.status_code == 409 and "is verified" in finished.json()["message"]
        assert c.get(f"/api/v1/actions/{w.done}").json()["status"] == "verified"
        # without a body it is rejected with no reason
        other = c.post(f"/api/v1/actions/{w.pending[0]}/reject")
        assert other.status_code == 200 and other.json()["reason"].endswith("rejected by t-operate")
    assert [d["action_id"] for _, d in w.audit("remedy.rejected")] == [aid, w.pending[0]]


def test_cli_errors_exit_2_like_the_other_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AURORA_")}
    base = [sys.executable, "-m", "aurora", "remedy"]
    unreachable = {**env, "AURORA_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    for cmd in ("status", "pause", "resume"):
        r = subprocess.run([*base, cmd, "--data-dir", str(tmp_path)], env=unreachable, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and "error:" in r.stderr and "database cannot be used" in r.stderr, (cmd, r.stderr)
        assert "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("remediation:\n  max_actions_per_hour: none\n")
    r = subprocess.run([*base, "status", "--config", str(bad), "--data-dir", str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "max_actions_per_hour" in r.stderr
