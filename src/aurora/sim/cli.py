"""``aurora sim list`` and ``aurora sim run`` (wired into the main CLI as ``app.add_typer(sim_app, name="sim")``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aurora.sim.faults import CATALOGUE, KINDS, Scenario, demo_schedule, get_scenario
from aurora.sim.fleet import DEFAULT_START, Fleet
from aurora.sim.runner import EventSink, HttpSink, SimRunner, Sink, anchored_start, inprocess_sinks, parse_speed

sim_app = typer.Typer(help="The simulated fleet: scenarios with ground truth, fed to Aurora.", no_args_is_help=True,
                      add_completion=False)
console = Console(stderr=True)


def _fmt_dur(s: float | None) -> str:
    if s is None:
        return "-"
    h, m = divmod(round(s / 60), 60)
    return (f"{h} h" if h else "") + (" " if h and m else "") + (f"{m} min" if m or not h else "")


def _iso(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@sim_app.command("list")
def list_scenarios(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="add root-cause metric, description")] = False,
) -> None:
    """Print the scenario catalogue with each fault's ground truth."""
    table = Table(title="Aurora sim scenarios (onset and breach relative to the run start)")
    cols = ["scenario", "fault", "root cause", "onset", "breach", "fix", "hours"]
    if verbose:
        cols += ["root-cause metric", "description"]
    for col in cols:
        table.add_column(col, overflow="fold")
    scenarios: list[Scenario] = [*CATALOGUE.values(), demo_schedule()]
    for sc in scenarios:
        if not sc.faults:
            table.add_row(sc.name, "-", "-", "-", "-", "none", f"{sc.hours:g}", *(["-", sc.description] * verbose))
            continue
        for k, f in enumerate(sc.faults):
            gt = f.at(0.0).ground_truth()
            ttb = gt["breach_time"] - gt["onset"] if gt["breach_time"] is not None else None
            fix = gt["fix"] + (f" ({gt['fix_service']})" if gt["fix_service"] != gt["root_cause_service"] else "")
            row = [sc.name if k == 0 else "", f.kind, gt["root_cause_service"], _fmt_dur(f.offset_s),
                   "+" + _fmt_dur(ttb) if ttb is not None else "-", fix, f"{sc.hours:.3g}" if k == 0 else ""]
            if verbose:
                row += [gt["root_cause_metric"], sc.description if k == 0 else KINDS[f.kind].description]
            table.add_row(*row)
    Console().print(table)


def _parse_start(start: str, hours: float, speed: float | None, step_s: float) -> float:
    s = start.strip().lower()
    if s in ("now", "auto"):
        return anchored_start(hours, speed, time.time(), step_s)
    if s == "default":
        return DEFAULT_START
    try:
        return float(s)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter("use now, default, unix seconds or an ISO date-time", param_hint="--start") from None
    return (d if d.tzinfo else d.replace(tzinfo=dt.UTC)).timestamp()


@sim_app.command("run")
def run(
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="name (see `aurora sim list`)")] = "fault_free",
    seed: Annotated[int, typer.Option(help="random seed; same seed + scenario + start = identical data")] = 0,
    hours: Annotated[float | None, typer.Option(help="length of the run (default: the scenario's)")] = None,
    speed: Annotated[str, typer.Option(help="max | realtime | Nx (e.g. 10x)")] = "max",
    url: Annotated[str | None, typer.Option(help="send to a running Aurora over HTTP (http://127.0.0.1:8000)")] = None,
    token: Annotated[str | None, typer.Option(help="API token with the ingest scope (env AURORA_TOKEN)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="feed an in-process Aurora here")] = None,
    start: Annotated[str, typer.Option(help="now (runs end at the wall clock), default (Mon 2024-01-08 06:00 UTC), "
                                            "unix seconds or ISO time")] = "now",
    step: Annotated[float, typer.Option(help="scrape interval, seconds")] = 15.0,
    chunk: Annotated[int, typer.Option(help="scrapes per batch at full speed")] = 20,
    truth: Annotated[Path | None, typer.Option(help="write the ground truth (and run facts) to this JSON file")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Run a scenario: generate the fleet and deliver it (HTTP, in-process, or nowhere to just measure)."""
    try:
        sc = get_scenario(scenario)
        sp = parse_speed(speed)
    except (KeyError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(2) from exc
    if url and data_dir:
        console.print("[red]error:[/red] give either --url or --data-dir, not both")
        raise typer.Exit(2)
    h = sc.hours if hours is None else hours
    if not (h > 0 and math.isfinite(h)):
        raise typer.BadParameter("must be positive", param_hint="--hours")
    t0 = _parse_start(start, h, sp, step)
    fleet = Fleet(seed=seed, start=t0, step_s=step, faults=sc.at(t0))
    aurora: Any = None
    http: HttpSink | None = None
    sink: Sink
    event_sink: EventSink | None
    if url:
        http = HttpSink(url, token or os.environ.get("AURORA_TOKEN"))
        sink, event_sink, target = http, http.events, url
    elif data_dir is not None:
        from aurora.app import Aurora
        from aurora.config import load_config

        cfg = load_config(None, {"AURORA_DATA_DIR": str(data_dir), "AURORA_CLOCK": "data",
                                 "AURORA_HOST_AGENT__ENABLED": "false"})
        aurora = Aurora(cfg)
        aurora.open()
        sink, event_sink = inprocess_sinks(aurora)
        target = f"in-process Aurora ({data_dir})"
    else:
        sink, event_sink, target = (lambda b: None), None, "nowhere (dry run)"
    console.print(f"scenario [bold]{sc.name}[/bold], seed {seed}, {_iso(t0)} UTC + {h:g} h at {speed} "
                  f"-> {target}  (reproduce with --start {t0:.0f})")
    runner = SimRunner(fleet, t0 + h * 3600, sink, event_sink, speed=sp, chunk_steps=chunk, progress=not quiet,
                       console=console)
    try:
        stats = runner.run()
    except KeyboardInterrupt:
        stats = runner.stats
        console.print("[yellow]interrupted[/yellow]")
    finally:
        if http is not None:
            http.close()
        if aurora is not None:
            aurora.close()
    n_series = len(fleet.series())
    rate = stats.samples / stats.wall_s if stats.wall_s else float("inf")
    console.print(f"{stats.steps} scrapes x {n_series} series = {stats.samples} samples, {stats.events} events "
                  f"in {stats.wall_s:.2f} s ({rate:,.0f} samples/s, {stats.sim_s / 3600:g} sim-hours)")
    gt = fleet.ground_truth()
    if gt:
        table = Table(title="ground truth")
        for col in ("fault", "root cause", "metric", "onset (UTC)", "breach (UTC)", "observed breach", "fix"):
            table.add_column(col)
        for g, obs in zip(gt, fleet.observed_breaches(), strict=True):
            table.add_row(g["kind"], g["root_cause_service"], g["root_cause_metric"], _iso(g["onset"]),
                          _iso(g["breach_time"]), _iso(obs), f"{g['fix']} {g['fix_service']}")
        Console().print(table)
    if truth is not None:
        truth.write_text(json.dumps({
            "scenario": sc.name, "seed": seed, "start": t0, "end": t0 + h * 3600, "step_s": fleet.step_s,
            "ground_truth": gt, "observed_breaches": fleet.observed_breaches(), "topology": fleet.topology(),
            "log": fleet.log, "stats": stats.as_dict()}, indent=2, default=str))
