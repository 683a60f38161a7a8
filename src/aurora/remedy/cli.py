"""``aurora remedy pause|resume|status``: the global kill switch, straight on the database.

The switch is a row in ``remedy_state``; a running server reads it before every decision (cached for a
second), so ``pause`` stops a running Aurora within a second without a token or a restart."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aurora.remedy.store import ActionStore

remedy_app = typer.Typer(help="The remediation kill switch and its state.", no_args_is_help=True)
console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (env AURORA_CONFIG)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory (env AURORA_DATA_DIR)")]


def _store(config: Path | None, data_dir: Path | None) -> tuple[ActionStore, Callable[[str, dict[str, object]], None]]:
    from sqlalchemy import insert

    from aurora.cli import _config
    from aurora.db.database import create_db_engine, migrate
    from aurora.db.tables import audit_log

    cfg = _config(config, data_dir)
    engine = create_db_engine(cfg.database_url())
    migrate(engine)

    def audit(action: str, detail: dict[str, object]) -> None:
        with engine.begin() as conn:
            conn.execute(insert(audit_log).values(time=time.time(), actor=f"cli:{getpass.getuser()}", action=action,
                                                  target="remediation", detail=json.dumps(detail, sort_keys=True)))

    return ActionStore(engine), audit


@remedy_app.command("pause")
def pause(reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "",
          config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop all remediation now: no run starts until `aurora remedy resume` (runs under way finish)."""
    store, audit = _store(config, data_dir)
    store.set_paused(True, f"cli:{getpass.getuser()}")
    audit("remedy.pause", {"reason": reason})
    console.print("[bold red]remediation paused[/bold red]: no action will run until `aurora remedy resume`")


@remedy_app.command("resume")
def resume(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Let remediation act again (within its playbooks and guardrails)."""
    store, audit = _store(config, data_dir)
    store.set_paused(False, f"cli:{getpass.getuser()}")
    audit("remedy.resume", {})
    console.print("remediation resumed")


@remedy_app.command("status")
def status(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Whether remediation is paused, and the latest runs."""
    store, _ = _store(config, data_dir)
    print(f"paused: {store.paused()}")
    for a in store.query(limit=10):
        print(f"#{a['id']}\tincident {a['incident_id']}\t{a['playbook']}\t{a['action']} {a['target']}\t{a['status']}"
              f"{' (dry run)' if a['dry_run'] else ''}")
