"""The playbooks ``aurora demo`` runs with when the configuration has none: one of each mode, on the simulated
fleet (so ``dry_run: false``; playbooks of your own start in dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aurora.remedy.playbook import Playbook

RUNBOOKS = Path(__file__).parent / "demo_runbooks"  # Markdown runbooks the demo indexes and links to incidents
DEMO_PLAYBOOKS: list[dict[str, Any]] = [
    {"name": "restart-leaking-service", "description": "a memory leak predicted to breach: restart before it does",
     "runbook": "memory-leak.md",
     "match": {"category": ["memory"], "source": ["prediction"]}, "mode": "auto", "dry_run": False,
     "steps": [{"action": "restart"}], "verify": {"settle_s": 15, "timeout_s": 300},
     "guardrails": {"cooldown_s": 900, "max_per_hour": 2, "max_targets": 1}},
    {"name": "restart-on-connection-leak", "description": "database connections piling up: restart to release them",
     "match": {"category": ["connections"]}, "mode": "auto", "dry_run": False,
     "steps": [{"action": "restart"}], "verify": {"settle_s": 15, "timeout_s": 300}},
    {"name": "rollback-bad-deployment", "description": "errors or latency right after a deployment: roll it back",
     "runbook": "bad-deployment.md",
     "match": {"category": ["errors", "latency", "availability"], "change": ["deployment"]}, "mode": "approve",
     "dry_run": False, "steps": [{"action": "rollback"}], "verify": {"settle_s": 15, "timeout_s": 300}},
    {"name": "flush-cold-cache", "description": "cache hit ratio collapsed: flush and warm the cache",
     "match": {"category": ["cache"]}, "mode": "auto", "dry_run": False, "steps": [{"action": "cache_flush"}],
     "verify": {"settle_s": 60, "timeout_s": 900}},  # a flushed cache takes minutes to warm up
    {"name": "failover-dependency", "description": "a dependency is down: fail over (a person decides)",
     "match": {"category": ["availability", "errors"], "service": ["payment"]}, "mode": "notify-only",
     "steps": [{"action": "failover"}]},
]


def demo_playbooks() -> list[Playbook]:
    return [Playbook.model_validate(p) for p in DEMO_PLAYBOOKS]
