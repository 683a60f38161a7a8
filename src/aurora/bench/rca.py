"""``aurora bench rca``: root-cause ranking over cases in the RCAEval layout.

Each case is a directory ``<service>_<fault>_<n>/`` holding ``data.csv`` (a ``time`` column, then
``<service>_<metric>`` columns) and ``inject_time.txt``. The file holds a normal block followed by the
anomalous block, each in time order, and the two blocks need not share a clock: the normal block is
usually recorded hours or days earlier, but can be stamped *after* the anomalous one (sockshop1's
orders_mem_5 is, so ``time < inject`` would leave it no normal rows at all). The split is
therefore made in file order, at the earliest row stamped at or after the injection time: rows before
it are the normal period, it and the rest the anomalous one. For a file in time order this is exactly
``time < inject``. The true root cause is ``<service>`` (service level, as RCAEval scores
metric-based methods) and ``<service>_<fault>`` (metric level).

AC@k is the share of cases whose true root cause is among the top k; Avg@5 the mean of AC@1..AC@5.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aurora.bench.nab_scorer import read_columns
from aurora.rca.baseline import REL_RESOLUTION, rank_root_causes, rank_services, service_of
from aurora.rca.live import Column, RcaSettings, rank_incident

CASE_RE = re.compile(r"^(?P<service>.+)_(?P<fault>[A-Za-z]+)_(?P<run>\d+)$")
KS = (1, 2, 3, 4, 5)


@dataclass
class RcaCase:
    name: str
    service: str
    fault: str
    columns: list[str]
    normal: np.ndarray
    anomalous: np.ndarray
    normal_rows_stamped_after_injection: int = 0  # > 0: the normal block's clock is off (see the module doc)

    @property
    def root_metric(self) -> str:
        return f"{self.service}_{self.fault}"


def discover(data_dir: Path, limit: int | None = None) -> list[Path]:
    cases = sorted(p for p in Path(data_dir).iterdir() if (p / "data.csv").exists() and CASE_RE.match(p.name))
    return cases[:limit] if limit else cases


def load_case(path: Path) -> RcaCase:
    m = CASE_RE.match(path.name)
    if m is None:
        raise ValueError(f"case directory {path.name!r} is not <service>_<fault>_<n>")
    cols = read_columns(path / "data.csv")
    time_col = np.array([float(v) for v in cols.pop("time")])
    names = list(cols)
    data = np.array([[float(v) if v.strip() else np.nan for v in cols[c]] for c in names]).T
    inject = float((path / "inject_time.txt").read_text().split()[0])
    k = injection_row(time_col, inject)
    return RcaCase(path.name, m["service"], m["fault"], names, data[:k], data[k:], int((time_col[:k] >= inject).sum()))


def injection_row(times: np.ndarray, inject: float) -> int:
    """File position of the first anomalous row: the earliest row stamped at or after ``inject``.

    Ties go to the first such row in the file; with no such row the whole file is normal.
    """
    times = np.asarray(times, dtype=np.float64)
    after = np.flatnonzero(times >= inject)
    return int(after[np.argmin(times[after])]) if after.size else len(times)


def accuracy(ranks: Sequence[int | None]) -> dict[str, float]:
    """AC@1..5 and Avg@5 from the 1-based rank of the truth in each case (None: not ranked)."""
    n = len(ranks)
    out = {f"AC@{k}": (sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0) for k in KS}
    out["Avg@5"] = sum(out[f"AC@{k}"] for k in KS) / len(KS)
    return out


def _rank_of(ranked: Sequence[tuple[str, float]], truth: str) -> int | None:
    for i, (name, _) in enumerate(ranked, start=1):
        if name == truth:
            return i
    return None


def rank_live(case: RcaCase) -> list[tuple[str, float]]:
    """The live incident ranker (``aurora.rca.live``) on the same case, as it runs without a topology or
    change events (RCAEval gives neither): robust magnitude held two samples, two-sided, and onset order.
    Rows are one second apart in RCAEval's data; the onset is the first anomalous row."""
    data = np.vstack([case.normal, case.anomalous])
    times = np.arange(len(data), dtype=np.float64)
    cols = [Column(service_of(c), c.split("_", 1)[1] if "_" in c else c) for c in case.columns]
    res = rank_incident(times, data, cols, float(len(case.normal)), settings=RcaSettings(guard_s=0.5),
                        max_candidates=len(cols))
    return [(c.service, c.score) for c in res.candidates]


def run_bench(
    data_dir: Path,
    out_dir: Path,
    limit: int | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict:
    paths = discover(data_dir, limit)
    if not paths:
        raise ValueError(f"no RCAEval cases (<service>_<fault>_<n>/data.csv) under {data_dir}")
    advance = progress("rca", len(paths)) if progress else None
    cases: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    rank_seconds = 0.0
    for p in paths:
        case = load_case(p)
        t1 = time.perf_counter()
        ranked = rank_root_causes(case.columns, case.normal, case.anomalous)
        rank_seconds += time.perf_counter() - t1
        services = rank_services(ranked)
        live = rank_live(case)
        cases.append(
            {
                "case": case.name,
                "fault": case.fault,
                "root_cause_service": case.service,
                "root_cause_metric": case.root_metric,
                "service_rank": _rank_of(services, case.service),
                "metric_rank": _rank_of(ranked, case.root_metric),
                "live_service_rank": _rank_of(live, case.service),
                "live_ranked_services": [{"service": s, "score": v} for s, v in live],
                "normal_rows": len(case.normal),
                "anomalous_rows": len(case.anomalous),
                "normal_rows_stamped_after_injection": case.normal_rows_stamped_after_injection,
                "ranked_services": [{"service": s, "score": v} for s, v in services],
                "ranked_metrics": [{"metric": c, "score": v} for c, v in ranked],
            }
        )
        if advance is not None:
            advance(1)

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "cases": len(rows),
            "service": accuracy([r["service_rank"] for r in rows]),
            "metric": accuracy([r["metric_rank"] for r in rows]),
            "live_service": accuracy([r["live_service_rank"] for r in rows]),
        }

    faults = sorted({c["fault"] for c in cases})
    report: dict[str, Any] = {
        "data": str(data_dir),
        "method": (
            "BARO-style robust z-score (median and IQR of the normal period, the scale floored at"
            f" {REL_RESOLUTION:.1%} of the normal level), max over the anomalous period; a column is dropped"
            " only if it never changes"
        ),
        "overall": summary(cases),
        "by_fault": {f: summary([c for c in cases if c["fault"] == f]) for f in faults},
        "seconds": time.perf_counter() - t0,
        "ranking_seconds": rank_seconds,
        "cases": cases,
    }
    # Flat headline keys: service-level figures, the level RCAEval reports for metric-based methods.
    report.update(report["overall"]["service"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))
    return report


def render_markdown(report: dict) -> str:
    head = "| level | fault | cases | AC@1 | AC@2 | AC@3 | AC@4 | AC@5 | Avg@5 |"
    lines = ["# RCA benchmark", "", f"Data: `{report['data']}`. Method: {report['method']}.", "", head]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    groups = [*report["by_fault"].items(), ("all", report["overall"])]
    for level in ("service", "metric", "live_service"):
        for fault, s in groups:
            a = s[level]
            cells = " | ".join(f"{a[f'AC@{k}']:.2f}" for k in KS)
            lines.append(f"| {level} | {fault} | {s['cases']} | {cells} | {a['Avg@5']:.2f} |")
    lines += ["", "| case | truth | service rank | metric rank | top 3 metrics |", "|---|---|---:|---:|---|"]
    for c in report["cases"]:
        top = ", ".join(m["metric"] for m in c["ranked_metrics"][:3])
        lines.append(f"| {c['case']} | {c['root_cause_metric']} | {c['service_rank']} | {c['metric_rank']} | {top} |")
    return "\n".join(lines) + "\n"
