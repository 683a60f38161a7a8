"""The `aurora` command."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aurora import __version__

if TYPE_CHECKING:
    from aurora.app import Aurora
from aurora.config import AuroraConfig, load_config
from aurora.errors import AuroraError

app = typer.Typer(help="Aurora: self-hosted AIOps engine.", no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _add_optional_group(module: str, attr: str, name: str) -> None:
    """Sub-command groups live with their stage; importing them is cheap (they import lazily inside)."""
    import importlib

    try:
        group = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a real missing dependency must be seen, not hidden
            raise
        return
    app.add_typer(group, name=name)


_add_optional_group("aurora.bench.cli", "bench_app", "bench")
_add_optional_group("aurora.sim.cli", "sim_app", "sim")
_add_optional_group("aurora.remedy.cli", "remedy_app", "remedy")
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (env AURORA_CONFIG)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory (env AURORA_DATA_DIR)")]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


def _config(config: Path | None, data_dir: Path | None = None, **overrides: object) -> AuroraConfig:
    try:
        cfg = load_config(config)
    except AuroraError as exc:
        raise _fail(exc) from exc
    if data_dir is not None:
        cfg.storage.data_dir = data_dir
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("host", "port"):
            setattr(cfg.server, key, value)
        elif key == "clock":
            cfg.clock = value  # type: ignore[assignment,unused-ignore]
    return cfg


def _open(cfg: AuroraConfig) -> tuple[Aurora, str | None]:
    from aurora.app import Aurora

    try:
        aurora = Aurora(cfg)
        created = aurora.open()
    except AuroraError as exc:
        raise _fail(exc) from exc
    return aurora, created


def _serve(cfg: AuroraConfig, banner: str, opened: tuple[Aurora, str | None] | None = None) -> None:
    import uvicorn

    from aurora.api.server import create_app

    aurora, created = opened or _open(cfg)
    url = f"http://{cfg.server.host}:{cfg.server.port}"
    console.print(f"[bold]Aurora {__version__}[/bold] {banner} on {url}  (data: {cfg.storage.data_dir}, "
                  f"database: {aurora.engine.dialect.name}, clock: {cfg.clock})")
    if created:
        console.print(f"Created an admin token (saved to {cfg.storage.data_dir / 'admin.token'}, mode 0600):")
        print(created, flush=True)
    elif not cfg.server.admin_token:
        console.print(f"Admin token: see {cfg.storage.data_dir / 'admin.token'}")
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that kills the process
    # before `finally` runs, so chunks would not be flushed. Raising SystemExit instead lets close() run.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.run(create_app(aurora), host=cfg.server.host, port=cfg.server.port, log_level="warning",
                    access_log=False)
    finally:
        aurora.close()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    data_dir: DataDirOpt = None,
    clock: Annotated[str | None, typer.Option(help="wall or data")] = None,
) -> None:
    """Run the server: ingestion, API, scraping and the host agent."""
    _logging()
    if clock not in (None, "wall", "data"):
        raise _fail(ValueError("--clock must be 'wall' or 'data'"))
    _serve(_config(config, data_dir, host=host, port=port, clock=clock), "serving")


@app.command()
def demo(
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    data_dir: DataDirOpt = None,
    speed: Annotated[str, typer.Option(help="fleet speed: realtime or Nx (e.g. 10x)")] = "realtime",
    backfill_hours: Annotated[float, typer.Option(help="fault-free history to load first")] = 6.0,
    seed: Annotated[int, typer.Option(help="fleet seed")] = 1,
) -> None:
    """Run the demo: the server with the simulated "shop" fleet, faults arriving on a schedule."""
    from aurora.sim.faults import demo_schedule
    from aurora.sim.runner import parse_speed, run_live
    from aurora.sim.topology import shop_fleet

    _logging()
    cfg = _config(config, data_dir, port=port)
    if not cfg.services:  # the fleet's topology is the demo's service catalogue
        cfg.services = shop_fleet().declared_services()
    schedule = demo_schedule()
    if not cfg.remediation.playbooks and cfg.remediation.playbooks_dir is None:
        from aurora.remedy.demo import demo_playbooks

        cfg.remediation.playbooks = demo_playbooks()
    if cfg.remediation.runbooks_dir is None:
        from aurora.remedy.demo import RUNBOOKS

        cfg.remediation.runbooks_dir = RUNBOOKS
    if not cfg.notifications.channels:
        _demo_notifications(cfg)
    if parse_speed(speed) != 1.0 and cfg.host_agent.enabled:
        # Faster than real time the fleet's event time lies in the past; the host agent's samples (wall
        # time) would drag event time ahead of it, so the demo's incidents would age at the wrong pace.
        cfg.host_agent.enabled = False
        logging.getLogger("aurora.demo").info("host agent off: the fleet runs faster than real time")
    aurora, created = _open(cfg)
    log = logging.getLogger("aurora.demo")

    async def fleet() -> None:
        log.info("demo fleet: %d services, %.0f h of history, then live at %s; faults: %s", len(cfg.services),
                 backfill_hours, speed, ", ".join(f"{f.kind}@{f.service}" for f in schedule.faults))
        # the fleet obeys Aurora's remediation (the sim executor), as a real one would its runbooks
        await run_live(aurora, schedule, speed, seed=seed, backfill_hours=backfill_hours,
                       on_start=lambda runner: aurora.use_simulated_fleet(runner.fleet.apply_action))
        log.info("demo schedule finished")

    aurora.add_background(fleet)
    aurora.add_background(lambda: _print_feed(aurora))
    token_path = cfg.storage.data_dir / "admin.token"
    console.print("Demo: the simulated shop fleet (gateway, web, catalog, cart, checkout, payment, inventory, "
                  "postgres, redis, queue, worker, recommender) streams into Aurora. Try:\n"
                  f"  curl -H \"Authorization: Bearer $(cat {token_path})\" "
                  f"'http://{cfg.server.host}:{cfg.server.port}/api/v1/query?query=http_request_error_ratio'")
    _serve(cfg, "demo", (aurora, created))


def _demo_notifications(cfg: AuroraConfig) -> None:
    """Without channels of its own the demo notifies a local webhook receiver that prints what it gets."""
    import os

    from aurora.notify.config import ChannelConfig, RouteConfig
    from aurora.notify.demo_receiver import DemoReceiver

    def show(msg: dict[str, Any], signed: bool) -> None:
        colour = {"critical": "red", "warning": "yellow"}.get(str(msg.get("severity")), "green")
        console.print(f"[{colour}]notification[/{colour}] ({msg.get('event')}, "
                      f"{'signature ok' if signed else 'BAD SIGNATURE'}) {msg.get('title')}", highlight=False)

    receiver = DemoReceiver(show).start()
    os.environ["AURORA_DEMO_WEBHOOK_SECRET"] = receiver.secret
    cfg.notifications.channels = [ChannelConfig(name="demo-webhook", type="webhook", url=receiver.url,
                                                secret_env="AURORA_DEMO_WEBHOOK_SECRET")]
    cfg.notifications.routes = [RouteConfig(channels=["demo-webhook"])]


def _print_incident(i: dict[str, Any]) -> None:
    """An incident change for the demo's console: its ranked causes and summary once they are known."""
    if i["change"] == "ranked":
        causes = ", ".join(f"{c['service']} {c['score']:.0%}" for c in i["root_causes"])
        colour = "red" if i["severity"] == "critical" else "yellow"
        console.print(f"[bold {colour}]incident #{i['id']}[/bold {colour}] {i['title']} [{i['severity']}]\n"
                      f"  ranked causes: {causes} (confidence: {i['confidence']})\n  {i['summary']}", highlight=False)
    else:
        console.print(f"[bold]incident #{i['id']}[/bold] {i['change']}: {', '.join(i['services'])}", highlight=False)


def _print_prediction(p: dict[str, Any]) -> None:
    """A prediction as it is issued and as it ends (its minute-by-minute updates are on the API)."""
    if p["change"] == "issued":
        console.print(f"[bold magenta]prediction #{p['id']}[/bold magenta] {p['explanation']} "
                      f"[P(within 1 h) {p['probabilities'].get('1h', 0):.0%}]", highlight=False)
    elif p["change"] in ("confirmed", "withdrawn"):
        console.print(f"[bold]prediction #{p['id']}[/bold] {p['change']}: {p['close_reason']}", highlight=False)


def _print_action(a: dict[str, Any]) -> None:
    """A remediation decision: what runs, waits, was verified or refused, and why."""
    change = a["change"]
    if change not in ("running", "verified", "pending_approval", "dry_run", "notified", "skipped", "escalated",
                      "rolled_back", "verification_failed", "failed", "rejected"):
        return
    colour = {"verified": "green", "pending_approval": "yellow", "skipped": "dim", "escalated": "red",
              "failed": "red", "verification_failed": "red"}.get(change, "cyan")
    extra = (f" - approve: POST /api/v1/actions/{a['id']}/approve" if change == "pending_approval"
             else f" - {a.get('why')}" if change == "escalated" else f" - {str(a['reason']).split('; ')[-1]}")
    console.print(f"[{colour}]action #{a['id']}[/{colour}] incident #{a['incident_id']} {a['playbook']}: "
                  f"{a['action']} {a['target']} {change.replace('_', ' ')}{extra}", highlight=False)


async def _print_feed(aurora: Aurora, per_service_s: float = 300.0) -> None:
    """The demo's console feed: incidents as they open, get ranked, mitigate and resolve; predictions as they are
    issued and end; and each anomaly with its explanation, one line per service per 5 min."""
    import datetime as dt

    queue = aurora.bus.subscribe()
    last: dict[str, float] = {}
    while True:
        msg = await queue.get()
        if msg["event"] == "incident":
            _print_incident(msg["data"])
            continue
        if msg["event"] == "prediction":
            _print_prediction(msg["data"])
            continue
        if msg["event"] == "action":
            _print_action(msg["data"])
            continue
        if msg["event"] != "anomaly":
            continue
        a = msg["data"]
        service = a.get("service") or "-"
        if a["time"] - last.get(service, float("-inf")) < per_service_s:
            continue
        last[service] = a["time"]
        when = dt.datetime.fromtimestamp(a["time"], dt.UTC).strftime("%H:%M:%S")
        colour = "red" if a["severity"] == "critical" else "yellow"
        console.print(f"[{colour}]anomaly[/{colour}] {when} {a['explanation']}", highlight=False)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration file and environment; errors name the key and line."""
    from aurora.notify.channels import resolve_secrets
    from aurora.remedy.checks import load_playbooks

    try:
        cfg = load_config(config)
        playbooks = load_playbooks(cfg.remediation)  # as a server would load them, files with their lines
        resolve_secrets(cfg.notifications)  # every secret a channel names must be in the environment
    except AuroraError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    dry = sum(p.dry_run for p in playbooks)
    console.print(f"[green]configuration is valid[/green] ({config or os.environ.get('AURORA_CONFIG') or 'defaults'}"
                  f": {len(cfg.services)} services, {len(cfg.scrape)} scrape jobs, {len(playbooks)} playbooks "
                  f"({dry} in dry-run), {len(cfg.notifications.channels)} notification channels, "
                  f"{len(cfg.slos)} SLOs)")


@token_app.command("create")
def token_create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="ingest, read, operate or admin (repeatable)")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from aurora.auth import TokenStore
    from aurora.db.database import create_db_engine, migrate

    cfg = _config(config, data_dir)
    engine = create_db_engine(cfg.database_url())
    migrate(engine)
    try:
        plain, tid = TokenStore(engine).create(name, scope)
    except AuroraError as exc:
        raise _fail(exc) from exc
    console.print(f"token {tid} ({name}) with scopes {', '.join(scope)}:")
    print(plain)


@token_app.command("list")
def token_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List tokens (never their values)."""
    from aurora.auth import TokenStore
    from aurora.db.database import create_db_engine, migrate

    cfg = _config(config, data_dir)
    engine = create_db_engine(cfg.database_url())
    migrate(engine)
    for t in TokenStore(engine).list():
        state = "revoked" if t["revoked"] else "active"
        print(f"{t['id']}\t{t['prefix']}…\t{' '.join(t['scopes'])}\t{state}\t{t['name']}")  # type: ignore[arg-type]


@token_app.command("revoke")
def token_revoke(token_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke a token by id."""
    from aurora.auth import TokenStore
    from aurora.db.database import create_db_engine, migrate

    cfg = _config(config, data_dir)
    engine = create_db_engine(cfg.database_url())
    migrate(engine)
    if not TokenStore(engine).revoke(token_id):
        raise _fail(ValueError(f"no token with id {token_id}"))
    console.print(f"revoked token {token_id}")


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="CSV (time column + series columns, or time,metric,value,labels...) "
                                              "or JSON lines")],
    url: Annotated[str | None, typer.Option(help="send to a running server instead of the local data dir")] = None,
    token: Annotated[str | None, typer.Option(help="ingest token for --url (env AURORA_TOKEN)")] = None,
    metric: Annotated[str | None, typer.Option(help="metric name for a single unnamed value column")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="k=v added to every series")] = None,
    batch_size: Annotated[int, typer.Option(help="samples per batch")] = 10_000,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Feed a file of samples through the ingest path in event time."""
    from aurora.api.json_ingest import batch_to_json
    from aurora.replay import read_samples

    extra = {}
    for item in label or []:
        if "=" not in item:
            raise _fail(ValueError(f"--label {item!r} must be key=value"))
        k, v = item.split("=", 1)
        extra[k] = v
    if not file.exists():
        raise _fail(FileNotFoundError(f"{file} does not exist"))
    try:
        samples = read_samples(file, metric, extra)
    except AuroraError as exc:
        raise _fail(exc) from exc
    progress = Progress(TextColumn("[bold]replay[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("samples"), TimeRemainingColumn(), console=console)
    sent = 0
    if url:
        import httpx

        tok = token or os.environ.get("AURORA_TOKEN")
        if not tok:
            raise _fail(ValueError("--url needs --token or AURORA_TOKEN (a token with the ingest scope)"))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tok}"}, timeout=60) as client, progress:
            task = progress.add_task(file.name, total=len(samples))
            for batch in samples.batches(batch_size):
                r = client.post("/api/v1/ingest", params={"sync": "true"}, content=json.dumps(batch_to_json(batch)),
                                headers={"Content-Type": "application/json"})
                if r.status_code >= 300:
                    raise _fail(RuntimeError(f"server refused a batch ({r.status_code}): {r.text}"))
                sent += batch.n_samples
                progress.update(task, advance=batch.n_samples)
    else:
        cfg = _config(config, data_dir, clock="data")
        cfg.host_agent.enabled = False
        aurora, _ = _open(cfg)
        try:
            with progress:
                task = progress.add_task(file.name, total=len(samples))
                for batch in samples.batches(batch_size):
                    sent += aurora.ingest(batch, "replay", sync=True)
                    progress.update(task, advance=batch.n_samples)
        except AuroraError as exc:
            raise _fail(exc) from exc
        finally:
            aurora.close()
    console.print(f"replayed {sent} samples of {len(samples.metrics)} series from {file}")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
