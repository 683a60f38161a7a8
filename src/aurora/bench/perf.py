"""``aurora bench perf``: the core's throughput, latency, size and memory figures in one report.

Each figure is produced by a script in the repository's ``benchmarks/`` folder (the single place each
measurement is defined; each prints one JSON line). This runs them in turn, checks each figure against
its target and writes ``report.json`` and ``report.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[3] / "benchmarks"


@dataclass(frozen=True)
class Figure:
    key: str  # the JSON key in the script's output
    label: str
    target: float | None
    higher_is_better: bool
    unit: str


@dataclass(frozen=True)
class Measure:
    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    figures: tuple[Figure, ...]


MEASURES = (
    Measure("ingest_inprocess", "bench_ingest.py", (), ("--batches", "60", "--bulk-batches", "8"), (
        Figure("scrape_append_samples_per_s", "in-process append, 10k series x 1 sample, fresh label strings",
               1e6, True, "samples/s"),
        Figure("scrape_append_decoded_samples_per_s",
               "in-process append, 10k series x 1 sample, labels as the decoders deliver them", 1e6, True,
               "samples/s"),
        Figure("scrape_append_ids_samples_per_s", "in-process append_ids, 10k series x 1 sample", 1e6, True,
               "samples/s"),
        Figure("bulk_append_samples_per_s", "in-process append, 1k series x 100 samples", 1e6, True, "samples/s"),
    )),
    Measure("remote_write_http", "bench_remote_write_http.py", (), ("--rounds", "10"), (
        Figure("samples_per_s", "remote_write over HTTP, 2,000 series x 1 sample per request", 3e5, True,
               "samples/s"),
    )),
    Measure("remote_write_http_large", "bench_remote_write_http.py",
            ("--per-request", "10000", "--samples-per-series", "1"), ("--per-request", "10000", "--rounds", "10"), (
        Figure("samples_per_s", "remote_write over HTTP, 10,000 series x 1 sample per request", 3e5, True,
               "samples/s"),
    )),
    Measure("query_range_http", "bench_query_range_http.py", (), ("--runs", "50"), (
        Figure("median_ms", "query_range over HTTP, one series, 24 h at 15 s (median)", 20, False, "ms"),
    )),
    Measure("store_size", "bench_store_size.py", (), ("--hours", "6"), (
        Figure("chunk_payload_bytes_per_sample", "chunk bytes per sample, simulated fleet day", 2, False, "B"),
        Figure("total_disk_bytes_per_sample", "everything on disk per sample, simulated fleet day", None, False,
               "B"),
    )),
    Measure("codec_mix", "bench_disk_size.py", (), ("--chunks-per-class", "50"), (
        Figure("synthetic_mix_bytes_per_sample", "codec, node-exporter-like mix", 2, False, "B"),
    )),
    Measure("detector", "bench_detector.py", (), ("--batches", "50"), (
        Figure("samples_per_s", "ensemble detector alone, 10k series x 1 sample per batch", 1e6, True,
               "samples/s"),
        Figure("state_bytes_per_series", "ensemble detector state per series", 2048, False, "B"),
    )),
    Measure("detect_stage", "bench_detect_stage.py", (), ("--batches", "50"), (
        Figure("samples_per_s", "live detection stage, 10k series x 1 sample per batch", 1e6, True, "samples/s"),
    )),
    Measure("head_memory", "bench_head_memory.py", (), ("--series", "20000"), (
        Figure("bytes_per_series_beyond_window", "head memory per series beyond the window", 2048, False, "B"),
    )),
)


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise ValueError("the benchmark printed no JSON line")


def run_perf(out: Path, quick: bool = False, only: list[str] | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    if not BENCH_DIR.is_dir():
        raise FileNotFoundError(f"benchmarks folder not found at {BENCH_DIR}; run from a source checkout")
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"quick": quick, "measures": {}, "figures": []}
    for m in MEASURES:
        if only and m.name not in only:
            continue
        if progress:
            progress(m.name)
        cmd = [sys.executable, str(BENCH_DIR / m.script), *m.args, *(m.quick_args if quick else ())]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH_DIR.parent, check=False)
        entry: dict[str, Any] = {"command": " ".join(["python", f"benchmarks/{m.script}", *cmd[2:]]),
                                 "seconds": round(time.perf_counter() - t0, 1)}
        if proc.returncode != 0:
            entry["error"] = proc.stderr.strip().splitlines()[-1:] or ["failed"]
            report["measures"][m.name] = entry
            continue
        result = _last_json(proc.stdout)
        entry["result"] = result
        report["measures"][m.name] = entry
        for f in m.figures:
            value = result.get(f.key)
            met = None
            if value is not None and f.target is not None:
                met = value >= f.target if f.higher_is_better else value <= f.target
            report["figures"].append({"measure": m.name, "figure": f.label, "value": value, "unit": f.unit,
                                      "target": f.target, "met": met, "command": entry["command"]})
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["| figure | value | target | met | command |", "| --- | --- | --- | --- | --- |"]
    for f in report["figures"]:
        value = f["value"]
        shown = f"{value:,.0f}" if isinstance(value, int | float) and value >= 100 else f"{value}"
        target = "" if f["target"] is None else f"{'≥' if f['unit'] == 'samples/s' else '≤'} {f['target']:,g}"
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        lines.append(f"| {f['figure']} | {shown} {f['unit']} | {target} | {met} | `{f['command']}` |")
    for name, m in report["measures"].items():
        if "error" in m:
            lines.append(f"\n{name} failed: {m['error']}")
    return "\n".join(lines) + "\n"
