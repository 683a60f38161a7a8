"""``aurora bench``: the evaluation harness (wired into the main CLI as ``aurora bench``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
    try:
        with _progress() as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = run_bench(
                nab, out, labels=labels, limit=limit, detectors=names, reference=reference, progress=progress
            )
    except (ValueError, FileNotFoundError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
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

    try:
        with _progress() as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = run_bench(data, out, limit=limit, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for level in ("service", "metric"):
        table = Table(title=f"RCA, {level} level ({report['overall']['cases']} cases)")
        table.add_column("fault")
        for k in KS:
            table.add_column(f"AC@{k}", justify="right")
        table.add_column("Avg@5", justify="right")
        for fault, s in [*report["by_fault"].items(), ("all", report["overall"])]:
            a = s[level]
            table.add_row(fault, *(f"{a[f'AC@{k}']:.2f}" for k in KS), f"{a['Avg@5']:.3f}")
        Console().print(table)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}")
