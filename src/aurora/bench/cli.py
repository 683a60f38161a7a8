"""``aurora bench``: the evaluation harness (wired into the main CLI as ``aurora bench``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

bench_app = typer.Typer(help="Measure Aurora against public benchmarks.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    with Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        yield start


Progress_ = Callable[[str, int], Callable[[int], None]]
# Options the simulator benches (predict, e2e, incidents) share.
SeedsOpt = Annotated[int, typer.Option("--seeds", min=1, help="seeds per scenario")]
SeedBaseOpt = Annotated[
    int, typer.Option("--seed-base", help="first seed (reported runs: 1000+; development used < 1000)")
]
RunLimitOpt = Annotated[int | None, typer.Option("--limit", help="only the first N runs (scores not comparable)")]


def _run(work: Callable[[Progress_], dict[str, Any]], quiet_warnings: bool = False) -> dict[str, Any]:
    """Run a bench with progress bars; bad arguments or data end the command with their message, exit 2."""
    try:
        with _progress() as progress, warnings.catch_warnings():
            if quiet_warnings:
                warnings.simplefilter("ignore")
            return work(progress)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _scenario_names(scenarios: str | None, default: Sequence[str]) -> list[str]:
    return [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else list(default)


@bench_app.command("detect")
def detect(
    nab: Annotated[Path, typer.Option("--nab", help="NAB data folder (<category>/<file>.csv)", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/nab"),
    labels: Annotated[
        Path | None, typer.Option("--labels", help="combined_windows.json (default DIR/../labels)")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N files (scores not comparable)")] = None,
    detectors: Annotated[str, typer.Option("--detectors", help="comma list")] = "aurora,river_hst,pyod_knn",
    reference: Annotated[bool, typer.Option(help="also re-score DIR/../reference_results for context")] = True,
) -> None:
    """Run Aurora and peer detectors over a NAB corpus, score them as NAB does, write a report."""
    from aurora.bench.detect import run_bench
    from aurora.bench.nab_scorer import PROFILE_NAMES

    names = [d.strip() for d in detectors.split(",") if d.strip()]
    report = _run(lambda progress: run_bench(nab, out, labels=labels, limit=limit, detectors=names,
                                             reference=reference, progress=progress), quiet_warnings=True)
    table = Table(title=f"NAB ({report['corpus']['files']} files, {report['corpus']['points']} rows)")
    table.add_column("detector")
    for p in PROFILE_NAMES:
        table.add_column(p, justify="right")
    table.add_column("points/s", justify="right")
    for name, r in report["detectors"].items():
        if "error" in r:
            table.add_row(name, "-", "-", "-", r["error"])
        else:
            table.add_row(name, *(f"{r[p]:.2f}" for p in PROFILE_NAMES), f"{r['points_per_s']:,.0f}")
    for name, r in report.get("reference", {}).items():
        table.add_row(f"{name} (published results)", *(f"{r[p]:.2f}" for p in PROFILE_NAMES), "")
    Console().print(table)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}, {out / 'report.png'}")


@bench_app.command("rca")
def rca(
    data: Annotated[Path, typer.Option("--data", help="folder of RCAEval cases", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/rca"),
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N cases")] = None,
) -> None:
    """Rank root causes of RCAEval-layout cases and report AC@k and Avg@5 per fault type."""
    from aurora.bench.rca import KS, run_bench

    report = _run(lambda progress: run_bench(data, out, limit=limit, progress=progress), quiet_warnings=True)
    for level in ("service", "metric", "live_service"):
        what = "service level, the live incident ranker" if level == "live_service" else f"{level} level"
        table = Table(title=f"RCA, {what} ({report['overall']['cases']} cases)")
        table.add_column("fault")
        for k in KS:
            table.add_column(f"AC@{k}", justify="right")
        table.add_column("Avg@5", justify="right")
        for fault, s in [*report["by_fault"].items(), ("all", report["overall"])]:
            a = s[level]
            table.add_row(fault, *(f"{a[f'AC@{k}']:.2f}" for k in KS), f"{a['Avg@5']:.3f}")
        Console().print(table)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}")


@bench_app.command("perf")
def perf(
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/perf"),
    quick: Annotated[bool, typer.Option(help="smaller runs (figures are indicative only)")] = False,
    only: Annotated[str | None, typer.Option(help="comma list of measures")] = None,
) -> None:
    """The core's throughput, latency, size and memory figures, checked against their targets."""
    from aurora.bench.perf import MEASURES, render_markdown, run_perf

    names = [n.strip() for n in only.split(",")] if only else None
    with Progress(TextColumn("[bold]perf[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("", total=len([m for m in MEASURES if not names or m.name in names]))
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(name)
            progress.update(task, description=name)

        try:
            report = run_perf(out, quick=quick, only=names, progress=step)
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        progress.advance(task)
    console.print(render_markdown(report))
    console.print(f"report: {out / 'report.json'}")


def _minutes(v: float | None) -> str:
    return "-" if v is None else f"{v / 60:.1f} min"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


@bench_app.command("predict")
def predict(
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/predict"),
    seeds: SeedsOpt = 20,
    seed_base: SeedBaseOpt = 1000,
    limit: RunLimitOpt = None,
    scenarios: Annotated[
        str | None, typer.Option("--scenarios", help="comma list (default: the slow-burn faults and fast variants)")
    ] = None,
    fault_free: Annotated[bool, typer.Option(help="also run fault_free (24 h) per seed for false predictions")] = True,
    models: Annotated[
        str | None, typer.Option("--models", help="comma list of trend, baseline, logreg, gbm, cfc (default: "
                                                  "trend,baseline; the first one's scores are the report's top-level "
                                                  "keys; logreg, gbm and cfc are trained first on seeds < 1000; cfc "
                                                  "needs the lnn extra)")
    ] = None,
) -> None:
    """Predict limit breaches (memory, disk, DB pool, model accuracy) on the simulated fleet and score them,
    the trend forecaster, the baseline and (on request) the learned risk models side by side."""
    from aurora.bench.predict import DEFAULT_MODELS, DEFAULT_SCENARIOS, MODELS, run_bench

    names = _scenario_names(scenarios, DEFAULT_SCENARIOS)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else list(DEFAULT_MODELS)
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        console.print(f"[red]error:[/red] unknown model(s) {', '.join(unknown) or '(none)'}; "
                      f"known: {', '.join(MODELS)}")
        raise typer.Exit(2)
    if "cfc" in chosen:
        from rich.markup import escape

        from aurora.predict.learned import cfc

        if not cfc.available():
            console.print(f"[red]error:[/red] {escape(cfc.INSTALL_HINT)}")
            raise typer.Exit(2)
    report = _run(lambda progress: run_bench(out, seeds=seeds, seed_base=seed_base, scenarios=names,
                                             fault_free=fault_free, limit=limit, progress=progress, models=chosen))
    table = Table(title=f"Failure prediction ({report['runs']} runs, seeds {report['seeds'][0]}..)")
    for col in ("model", "scenario", "runs", "recall", "precision", "lead median", "lead p10", "ETA coverage",
                "first ETA coverage"):
        table.add_column(col, justify="left" if col in ("model", "scenario") else "right")
    for m, ms in report["models"].items():
        rows = [*ms["by_scenario"].items(), ("all", ms)]
        if ms.get("slow_burn"):
            rows.append(("slow-burn", ms["slow_burn"]))
        for name, s in rows:
            table.add_row(m, name, str(s["runs"]), _ratio(s["recall"]), _ratio(s["precision"]),
                          _minutes(s["lead_time_median_s"]), _minutes(s["lead_time_p10_s"]),
                          _ratio(s["eta_interval_coverage"]), _ratio(s["eta_interval_coverage_first"]))
        table.add_section()
    Console().print(table)
    for m, ms in report["models"].items():
        console.print(f"{m}: false predictions per 1,000 series-days (fault-free): "
                      f"{_ratio(ms['false_predictions_per_1000_series_days'])}; forecast "
                      f"{_ratio(ms['forecast_us_per_series_eval'])} µs per series and evaluation")
    cls = Table(title="P(breach within 4 h) per (series, evaluation): classification")
    for col in ("model", "ROC AUC", "avg precision", "Brier", "positives", "threshold", "fit s", "train data s"):
        cls.add_column(col, justify="left" if col == "model" else "right")
    for m, ms in report["models"].items():
        c = ms.get("classification") or {}
        cls.add_row(m, _num(c.get("roc_auc"), ".4f"), _num(c.get("average_precision"), ".4f"),
                    _num(c.get("brier"), ".5f"), f"{c['positives']:,} / {c['evaluations']:,}" if c else "-",
                    _num(ms.get("threshold"), ".2f"), _num(ms.get("fit_seconds"), ".1f"),
                    _num(ms.get("train_data_seconds"), ".1f"))
    Console().print(cls)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}, {out / 'report.png'}")


@bench_app.command("e2e")
def e2e(
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/e2e"),
    seeds: SeedsOpt = 10,
    seed_base: SeedBaseOpt = 1000,
    limit: RunLimitOpt = None,
    scenarios: Annotated[
        str | None, typer.Option("--scenarios", help="comma list (default: every fixable fault)")
    ] = None,
    oracle: Annotated[bool, typer.Option(help="also run the oracle remediator (validates the harness)")] = True,
    fault_free: Annotated[bool, typer.Option(help="also run a fault-free fleet per seed for false alarms")] = True,
    fault_free_hours: Annotated[
        float, typer.Option("--fault-free-hours", min=1.5, help="length of each fault-free run (the first hour is "
                                                                "warm-up)")
    ] = 24.0,
    engine: Annotated[bool, typer.Option("--engine", help=(
        "run the whole engine per case instead (ingest, detection, prediction, incidents, remediation with the "
        "demo's playbooks in auto mode, verification) and the flap scenarios: time to detect, to a verified "
        "fix, actions outside policy"))] = False,
) -> None:
    """Closed loop on the simulated fleet: time to detect, to a correct root cause, to a verified fix."""
    from aurora.bench.e2e import DEFAULT_SCENARIOS, NO_ENGINE_NOTE, E2eConfig, run_bench

    if engine:
        _e2e_engine(out, [seed_base + i for i in range(seeds)], scenarios)
        return

    names = _scenario_names(scenarios, DEFAULT_SCENARIOS)
    report = _run(lambda progress: run_bench(out, seeds=seeds, seed_base=seed_base, scenarios=names,
                                             fault_free=fault_free, oracle=oracle, limit=limit,
                                             config=E2eConfig(fault_free_hours=fault_free_hours), progress=progress))
    table = Table(title=f"Closed loop ({report['cases']} cases, seeds {report['seeds'][0]}..; times from onset)")
    for col in ("fault", "cases", "detected", "detect median", "detect p90", "root cause right", "RC median",
                "FA /1k series-h", "FA pre-onset", "verified fix", "oracle fix median"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    orc = report.get("oracle") or {"by_fault": {}}
    for name, s in [*report["by_fault"].items(), ("all", report)]:
        o = orc if name == "all" else orc["by_fault"].get(name, {})
        table.add_row(name, str(s["cases"]), _ratio(s["detected"]), _minutes(s["time_to_detect_median_s"]),
                      _minutes(s["time_to_detect_p90_s"]), _ratio(s["root_cause_correct"]),
                      _minutes(s["time_to_root_cause_median_s"]),
                      _ratio(s["false_alarms_per_1000_series_hours_faulty"]),
                      _ratio(s["false_alarms_per_1000_series_hours_before_onset"]), "null",
                      _minutes(o.get("time_to_verified_fix_median_s")))
    Console().print(table)
    analyzers = report["analyzers"]
    votes = Table(title="Analyzers voting in the alert that detected each fault (last row: in the false alarms)")
    votes.add_column("fault")
    votes.add_column("detected", justify="right")
    for a in analyzers:
        votes.add_column(a, justify="right")
    for name, s in [*report["by_fault"].items(), ("all", report)]:
        votes.add_row(name, str(s["detected_cases"]), *(str(s["first_alarm_votes"].get(a, 0)) for a in analyzers))
    votes.add_row("false alarms", "-", *(str(report["false_alarm_votes"].get(a, 0)) for a in analyzers))
    Console().print(votes)
    console.print(f"time to verified fix: null ({NO_ENGINE_NOTE}); the oracle column validates the harness only")
    console.print("FA: false alarms per 1,000 series-hours on the faulty runs: before the onset, or after it on a "
                  "series off the fault's services (some are its cascade); FA pre-onset: before the onset only")
    console.print(f"false alarms, fault-free fleet ({report['fault_free_runs']} runs, "
                  f"{report['fault_free_series_hours']:,.0f} series-hours): {report['false_alarms_fault_free']} = "
                  f"{_ratio(report['false_alarms_per_1000_series_hours_fault_free'])} per 1,000 series-hours, "
                  f"{_ratio(report['false_alarms_per_day_fault_free'])} per fleet-day")
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}, {out / 'report.png'}")


def _e2e_engine(out: Path, seeds: list[int], scenarios: str | None) -> None:
    from aurora.bench.loop import LOOP_SCENARIOS, run_loop_bench

    names = _scenario_names(scenarios, LOOP_SCENARIOS)
    r = _run(lambda progress: run_loop_bench(out, seeds, names, progress=progress), quiet_warnings=True)
    table = Table(title=f"Closed loop through the engine ({r['runs']} runs, seeds {seeds[0]}..{seeds[-1]})")
    for col in ("fault", "runs", "detected", "detection median", "verified fixes", "right fix",
                "detect to verified median", "max", "breach avoided"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    for kind, k in r["by_kind"].items():
        table.add_row(kind, str(k["runs"]), str(k["detected"]), _minutes(k["detection_delay_median_s"]),
                      str(k["verified_fixes"]), str(k["right_fix"]), _minutes(k["detect_to_verified_median_s"]),
                      _minutes(k["detect_to_verified_max_s"]), str(k["breach_avoided"]))
    Console().print(table)
    console.print(f"abrupt faults detected within 2 scrapes: {_ratio(r['abrupt_detected_within_2_scrapes'])}; "
                  f"detection to verified fix median {_minutes(r['detect_to_verified_median_s'])}, within 60 s "
                  f"{_ratio(r['verified_within_60s'])}; executed runs {r['executed']}, outside policy "
                  f"{r['outside_policy']}")
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}")


@bench_app.command("incidents")
def incidents(
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("bench-out/incidents"),
    seeds: SeedsOpt = 10,
    seed_base: SeedBaseOpt = 1000,
    limit: RunLimitOpt = None,
    scenarios: Annotated[
        str | None, typer.Option("--scenarios", help="comma list (default: every fault of the catalogue)")
    ] = None,
    fault_free: Annotated[
        bool, typer.Option(help="also run a fault-free fleet day per seed for false incidents")
    ] = True,
) -> None:
    """Correlation and root-cause ranking on the simulated fleet: one incident per fault, AC@1, false incidents."""
    from aurora.bench.incidents import DEFAULT_SCENARIOS, run_bench

    names = _scenario_names(scenarios, DEFAULT_SCENARIOS)
    report = _run(lambda progress: run_bench(out, seeds=seeds, seed_base=seed_base, scenarios=names,
                                             fault_free=fault_free, limit=limit, progress=progress))
    table = Table(title=f"Incidents ({report['cases']} faulty runs, seeds {report['seeds'][0]}..)")
    for col in ("fault", "runs", "one incident", "none", "several", "AC@1", "AC@3", "AC@1 at first ranking",
                "to incident (median)"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    for name, s in [*report["by_fault"].items(), ("all", report)]:
        table.add_row(name, str(s["cases"]), _ratio(s["one_incident_share"]), str(s["no_incident"]),
                      str(s["several_incidents"]), _ratio(s["AC@1"]), _ratio(s["AC@3"]), _ratio(s["AC@1_first"]),
                      _minutes(s["time_to_incident_median_s"]))
    Console().print(table)
    console.print(f"false incidents: {report['false_incidents']} before an onset; fault-free: "
                  f"{report['false_incidents_fault_free']} in {report['fault_free_days']:.1f} fleet-days "
                  f"({_ratio(report['false_incidents_per_day_fault_free'])} per fleet-day)")
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}")
