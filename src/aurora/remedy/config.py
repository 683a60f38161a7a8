"""The ``remediation:`` configuration section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from aurora.config_base import Section
from aurora.remedy.playbook import Playbook, check_unique


class RemediationConfig(Section):
    """Automatic and approved fixes (``aurora.remedy``); see README, Remediation."""

    enabled: bool = True
    playbooks: list[Playbook] = Field(default_factory=list)
    playbooks_dir: Path | None = Field(None, description="more playbooks: every *.yaml file in this folder")
    runbooks_dir: Path | None = Field(None, description="Markdown runbooks, indexed and linked to incidents")
    shell_allow: list[str] = Field(default_factory=list, description=(
        "the shell executor runs only commands matching one of these globs (e.g. 'systemctl restart myapp-*')"))
    systemd_allow: list[str] = Field(default_factory=list, description="units the process executor may restart (globs)")
    max_actions_per_hour: int = Field(20, ge=1, description="runs per hour across all targets")
    breaker_failures: int = Field(2, ge=1, description=(
        "a playbook that failed to fix this many times in breaker_window_s stops acting (circuit breaker)"))
    breaker_window_s: float = Field(6 * 3600, gt=0)
    approval_timeout_s: float = Field(3600, gt=0, description="a run waiting for approval expires after this long")

    @field_validator("playbooks")
    @classmethod
    def _unique(cls, playbooks: list[Playbook]) -> list[Playbook]:
        return check_unique(playbooks)
