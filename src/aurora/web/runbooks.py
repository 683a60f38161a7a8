"""What the dashboard shows of runbooks: the indexed list and one runbook's Markdown, rendered safely.

Markdown goes through markdown-it-py (already installed: rich depends on it) in CommonMark mode with raw
HTML off, so ``<script>`` in a runbook is shown as text, and its link check refuses ``javascript:``,
``vbscript:``, ``file:`` and ``data:`` links; the page's CSP forbids scripts and remote images anyway.
Without markdown-it-py the text is shown escaped, as preformatted text.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from aurora.remedy.runbooks import Runbook

try:
    from markdown_it import MarkdownIt

    _MD: Any = MarkdownIt("commonmark", {"html": False}).enable("table")
except ImportError:  # pragma: no cover - rich brings it; escaped text is the safe fallback
    _MD = None


def body(rb: Runbook) -> str:
    """The runbook's Markdown without what the page shows apart: its ``tags:`` line and its title heading."""
    lines = rb.text.splitlines()
    if lines and lines[0].lower().startswith("tags:"):
        lines = lines[1:]
    for i, ln in enumerate(lines):
        if ln.startswith("# "):
            if ln[2:].strip() == rb.title:
                del lines[i]
            break
    return "\n".join(lines).strip("\n")


def render(text: str) -> Markup:
    """Markdown as HTML that is safe to put in a page (raw HTML escaped, unsafe links refused)."""
    if _MD is None:
        return Markup('<pre class="runbook-text">') + escape(text) + Markup("</pre>")
    return Markup(_MD.render(text))  # safe: markdown-it escapes raw HTML ("html": False)


def runbook_view(aurora: Any, name: str) -> dict[str, Any] | None:
    rb = aurora.runbooks.get(name)
    if rb is None:
        return None
    return {"name": rb.name, "title": rb.title, "tags": list(rb.tags), "html": render(body(rb))}


def runbook_list(aurora: Any) -> list[dict[str, Any]]:
    return [{"name": rb.name, "title": rb.title, "tags": list(rb.tags)} for rb in aurora.runbooks.runbooks]
