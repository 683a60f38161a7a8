"""Drawing a 10,000-point chart with the dashboard's own chart code (charts.js over uPlot) in headless Chromium.

Loads the vendored uPlot and ``charts.js`` into a blank page and times, with ``performance.now()``: the
first draw of one chart (options, uPlot construction and its first paint, band and anomaly marks included)
and a live update (``setData`` with the same number of points). Median and p95 over the runs.

    python benchmarks/bench_web_chart.py [--points 10000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "aurora" / "web" / "static"

MEASURE = """async ([n, runs]) => {
  const t0 = 1.7e9, x = [], y = [], lo = [], hi = [];
  for (let i = 0; i < n; i++) {
    x.push(t0 + i * 15); const v = 50 + 10 * Math.sin(i / 200) + Math.random() * 3;
    y.push(v); lo.push(v - 5); hi.push(v + 5);
  }
  const spec = { metric: "bench_metric", unit: "", x, series: [{ label: "bench", values: y }], band: { lo, hi },
                 limit: null, anomalies: [{ time: x[n - 100], observed: 80, expected: [40, 60], severity: "critical",
                 explanation: "bench" }], predictions: [], events: [{ time: x[n / 2], text: "deployment 1.2.3" }] };
  const box = document.getElementById("box"), first = [], update = [];
  for (let r = 0; r < runs; r++) {
    box.innerHTML = "";
    let a = performance.now();
    const c = window.AuroraCharts.build(box, spec);
    await null;  // uPlot paints in a microtask after construction
    first.push(performance.now() - a);
    a = performance.now();
    c.u.setData([x, y, hi, lo]);
    await null;
    update.push(performance.now() - a);
    c.u.destroy();
  }
  return { first, update };
}"""


def stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"median_ms": round(s[len(s) // 2], 2), "p95_ms": round(s[int(0.95 * (len(s) - 1))], 2),
            "max_ms": round(s[-1], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    uplot = STATIC / "vendor" / "uPlot.iife.min.js"
    if not uplot.exists():
        raise SystemExit(f"{uplot} is missing: run `make setup` (npm ci copies the browser libraries)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.set_content('<html data-theme="dark"><body><div id="box" style="width:1000px"></div></body></html>')
        page.add_style_tag(path=str(STATIC / "css" / "aurora.css"))
        page.add_style_tag(path=str(STATIC / "vendor" / "uPlot.min.css"))
        page.add_script_tag(path=str(uplot))
        page.add_script_tag(path=str(STATIC / "js" / "charts.js"))
        page.evaluate(MEASURE, [args.points, 3])  # warm-up (JIT)
        out = page.evaluate(MEASURE, [args.points, args.runs])
        browser.close()
    report = {"points": args.points, "runs": args.runs, "first_draw": stats(out["first"]),
              "live_update": stats(out["update"])}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_web_chart.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
