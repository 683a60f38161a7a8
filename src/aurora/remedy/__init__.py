"""Remediation: playbooks run under guardrails, verified in event time, learned from."""
