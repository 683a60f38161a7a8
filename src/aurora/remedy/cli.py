"""``aurora remedy pause|resume|status``: the global kill switch, straight on the database.

The switch is a row in ``remedy_state`` (its value, who changed it and when, wall clock); a running server
reads it before every decision (cached for a second), so ``pause`` stops a running Aurora within a second
without a token or a restart. Why it was paused is in the audit log (``remedy.pause``, ``detail.reason``).

Exit codes as the other commands: 0 done (``status`` also when paused: it answered the question), 2 when the
configuration or the database cannot be used (``error: ...`` on stderr).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from aurora.remedy.store import ActionStore

remedy_app = typer.Typer(help="The remediation kill switch and its state.", no_args_is_help=True)
console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (env AURORA_CONFIG)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory (env AURORA_DATA_DIR)")]
Audit = Callable[[str, dict[str, object]], None]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be reached or read is an error of the command (exit 2), not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from aurora.cli import _fail

    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise _fail(RuntimeError(f"the database cannot be used: {getattr(exc, 'orig', None) or exc}")) from exc


def _open(config: Path | None, data_dir: Path | None) -> Engine:
    from aurora.cli import _config
    from aurora.db.database import create_db_engine, migrate

    cfg = _config(config, data_dir)
    with _database_errors():
        engine = create_db_engine(cfg.database_url())
        migrate(engine)
    return engine


def _store(config: Path | None, data_dir: Path | None) -> tuple[ActionStore, Audit, Engine]:
    from sqlalchemy import insert

    from aurora.db.tables import audit_log

    engine = _open(config, data_dir)

    def audit(action: str, detail: dict[str, object]) -> None:
        with engine.begin() as conn:
            conn.execute(insert(audit_log).values(time=time.time(), actor=_actor(), action=action,
                                                  target="remediation", detail=json.dumps(detail, sort_keys=True)))

    return ActionStore(engine), audit, engine


def switch_state(store: ActionStore, engine: Engine) -> dict[str, Any]:
    """Whether remediation is paused; who changed the switch last, when (wall clock) and, for a pause, why
    (the reason its ``remedy.pause`` audit row recorded) and how (``via``: cli, api or dashboard)."""
    from sqlalchemy import select

    from aurora.db.tables import audit_log

    row = store.state().get("paused")
    out: dict[str, Any] = {"paused": bool(row and row["value"] == "true"), "by": None, "at": None, "reason": None,
                           "via": None}
    if row is None:
        return out
    out["by"], out["at"] = row["updated_by"], float(row["updated_at"])
    action = "remedy.pause" if out["paused"] else "remedy.resume"
    q = (select(audit_log.c.actor, audit_log.c.detail).where(audit_log.c.action == action)
         .where(audit_log.c.target == "remediation").order_by(audit_log.c.id.desc()).limit(50))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    # the row of this change: the newest by the same actor (another one may have flipped it since)
    mine = next((r for r in rows if r.actor == out["by"]), None)
    if mine is not None:
        try:
            detail = json.loads(mine.detail)
        except ValueError:
            detail = None
        detail = detail if isinstance(detail, dict) else {}
        out["reason"] = str(detail.get("reason") or "").strip() or None
        out["via"] = detail.get("via") or ("cli" if str(out["by"]).startswith("cli:") else "api")
    return out


def _when(t: float, now: float | None = None) -> str:
    """``2024-05-01 12:00:00 UTC (14:00:00 CEST local time, 5 min ago)``: the switch's time is wall clock."""
    utc = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    local = dt.datetime.fromtimestamp(t).astimezone()
    ago = (time.time() if now is None else now) - t
    s = abs(ago)
    span = (f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h" if s < 172_800
            else f"{s / 86_400:.1f} d")
    rel = f"{span} ago" if ago >= 0 else f"in {span}"
    return f"{utc} ({local.strftime('%Y-%m-%d %H:%M:%S %Z')} local time, {rel})"


@remedy_app.command("pause")
def pause(reason: Annotated[str, typer.Option(help="why (kept in the audit log, shown by `status`)")] = "",
          config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop all remediation now: no run starts until `aurora remedy resume` (runs under way finish)."""
    store, audit, engine = _store(config, data_dir)
    with _database_errors():
        before = switch_state(store, engine)
        store.set_paused(True, _actor())
        audit("remedy.pause", {"reason": reason.strip(), "via": "cli"})
    console.print("[bold red]remediation paused[/bold red]: no action will run until `aurora remedy resume`"
                  + (f" (it was already paused by {before['by']})" if before["paused"] else ""))


@remedy_app.command("resume")
def resume(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Let remediation act again (within its playbooks and guardrails)."""
    store, audit, engine = _store(config, data_dir)
    with _database_errors():
        if not switch_state(store, engine)["paused"]:
            console.print("remediation is not paused: nothing was changed")
            return
        store.set_paused(False, _actor())
        audit("remedy.resume", {"via": "cli"})
    console.print("remediation resumed")


@remedy_app.command("status")
def status(config: ConfigOpt = None, data_dir: DataDirOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Whether remediation is paused (by whom, since when, why), and the latest runs."""
    store, _, engine = _store(config, data_dir)
    with _database_errors():
        state = switch_state(store, engine)
        runs = store.query(limit=10)
    if as_json:
        keep = ("id", "incident_id", "playbook", "action", "target", "status", "dry_run", "requested_at")
        print(json.dumps({**state, "recent": [{k: a.get(k) for k in keep} for a in runs]}, sort_keys=True))
        return
    if state["paused"]:
        print("paused: yes (no remediation runs until `aurora remedy resume`)")
        print(f"paused by: {state['by']}" + (f" (via {state['via']})" if state["via"] else ""))
        print(f"paused at: {_when(state['at'])}")
        print(f"reason: {state['reason'] or 'none given'}")
    else:
        print("paused: no (playbooks run under their guardrails)")
        if state["by"] is not None:
            print(f"last resumed by: {state['by']} at {_when(state['at'])}")
    if not runs:
        print("no remediation runs yet")
    for a in runs:
        print(f"#{a['id']}\tincident {a['incident_id']}\t{a['playbook']}\t{a['action']} {a['target']}\t{a['status']}"
              f"{' (dry run)' if a['dry_run'] else ''}")
