"""An incident as a report: Markdown for tickets and post-mortems, HTML for reading or printing."""

from __future__ import annotations

from typing import Any

from aurora.web.render import fmt_pct, fmt_time, render_text


def _md(text: Any) -> str:
    """One line of user or engine text, safe inside Markdown (no stray headings, tables or HTML)."""
    s = " ".join(str(text).split())
    for ch in ("\\", "`", "*", "_", "[", "]", "<", ">", "|", "#"):
        s = s.replace(ch, "\\" + ch)
    return s


def markdown(inc: dict[str, Any]) -> str:
    lines = [f"# Incident #{inc['id']}: {_md(inc['title'])}", "",
             f"- Status: {inc['status']}", f"- Severity: {inc['severity']}",
             f"- Services: {_md(', '.join(inc.get('services') or [])) or '-'}",
             f"- Opened: {fmt_time(inc.get('opened_at'))}",
             f"- Mitigated: {fmt_time(inc.get('mitigated_at'))}",
             f"- Resolved: {fmt_time(inc.get('resolved_at'))}"]
    if inc.get("acked_by"):
        lines.append(f"- Acknowledged by {_md(inc['acked_by'])} at {fmt_time(inc.get('acked_at'))}")
    lines += ["", "## Summary", "", _md(inc.get("summary") or "No summary yet."), "", "## Ranked causes", ""]
    causes = inc.get("root_causes") or []
    if causes:
        lines += ["| # | Service | Metric | Score |", "|---|---|---|---|"]
        lines += [f"| {n} | {_md(c.get('service'))} | {_md(c.get('metric') or '-')} | {fmt_pct(c.get('score'), 0)} |"
                  for n, c in enumerate(causes, 1)]
        for n, c in enumerate(causes, 1):
            ev = c.get("evidence")
            if ev:
                lines += ["", f"Evidence for #{n} ({_md(c.get('service'))}):", ""]
                items = ev if isinstance(ev, list) else [ev]
                lines += [f"- {_md(e if isinstance(e, str) else e.get('text', e))}" for e in items]
    else:
        lines.append("No causes ranked yet.")
    lines += ["", "## Signals", ""]
    lines += [f"- {_md(s.get('summary') or s.get('metric'))} ({s.get('severity')}, {s.get('count')}x)"
              for s in inc.get("signals") or []] or ["None recorded."]
    lines += ["", "## Timeline", ""]
    lines += [f"- {fmt_time(e['time'])} [{e['kind']}] {_md(e['text'])}" + (f" ({_md(e['actor'])})" if e.get("actor")
                                                                             else "")
              for e in inc.get("timeline") or []] or ["Nothing recorded."]
    if inc.get("similar"):
        lines += ["", "## Similar past incidents", ""]
        lines += [f"- #{s['id']} {_md(s.get('title'))} ({s.get('status')})" for s in inc["similar"]]
    return "\n".join(lines) + "\n"


def html(inc: dict[str, Any]) -> str:
    return render_text("incident_report.html", inc=inc)
