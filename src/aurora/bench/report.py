"""Writing a bench command's report: JSON (keys name the measures), Markdown and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(out_dir: Path, report: dict[str, Any], render_markdown: Callable[[dict[str, Any]], str],
                 render_plot: Callable[[dict[str, Any], Path], None] | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))
    if render_plot is not None:
        render_plot(report, out_dir / "report.png")
