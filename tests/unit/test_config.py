from __future__ import annotations

from pathlib import Path

import pytest

from aurora.config import load_config
from aurora.errors import ConfigError


def test_defaults_are_safe() -> None:
    cfg = load_config(None, {})
    assert cfg.server.host == "127.0.0.1" and cfg.server.port == 8000
    assert cfg.clock == "wall"
    assert cfg.database_url().startswith("sqlite:///")


def test_errors_name_key_and_line(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("server:\n  port: 80000\nlimits:\n  max_series_per_request: 10\n  bogus: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, {})
    msg = str(exc.value)
    assert f"server.port: Input should be less than or equal to 65535 ({p}, line 2)" in msg
    assert "limits.bogus: unknown key 'bogus' (this section takes: max_series_per_request," in msg
    assert f"({p}, line 5)" in msg


def test_a_misspelt_or_missing_key_gets_a_hint(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("servr:\n  port: 9000\nremediation:\n  playbooks:\n    - name: leak\n      stesp: []\n"
                 "      match: {categroy: [memory]}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, {})
    msg = " ".join(str(exc.value).split())
    assert "servr: unknown key 'servr'; did you mean 'server'?" in msg
    assert "remediation.playbooks.0.stesp: unknown key 'stesp'; did you mean 'steps'?" in msg
    assert "remediation.playbooks.0.match.categroy: unknown key 'categroy'; did you mean 'category'?" in msg
    assert f"remediation.playbooks.0.steps: required key 'steps' is missing: add it ({p}, line 5)" in msg


def test_nested_list_error_line(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("scrape:\n  - name: a\n    targets: [x]\n  - name: b\n    targets: [y]\n    interval_s: -1\n")
    with pytest.raises(ConfigError, match=r"scrape.1.interval_s: .* line 6"):
        load_config(p, {})


def test_invalid_yaml_reports_position(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line .*check that line's indentation"):
        load_config(p, {})


def test_environment_overrides(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("server:\n  port: 9000\n")
    cfg = load_config(p, {"AURORA_PORT": "9100", "AURORA_LIMITS__MAX_FUTURE_S": "5", "AURORA_CLOCK": "data",
                          "AURORA_DATABASE_URL": "postgresql://u@h/db", "AURORA_ADMIN_TOKEN": "123"})
    assert cfg.server.port == 9100
    assert cfg.limits.max_future_s == 5
    assert cfg.clock == "data"
    assert cfg.database_url() == "postgresql://u@h/db"
    assert cfg.server.admin_token == "123"  # a numeric-looking secret stays a string


def test_environment_error_names_variable() -> None:
    with pytest.raises(ConfigError, match="AURORA_CLOCK"):
        load_config(None, {"AURORA_CLOCK": "sometimes"})


def test_config_file_from_env(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("clock: data\n")
    assert load_config(None, {"AURORA_CONFIG": str(p)}).clock == "data"


def test_the_readme_configuration_example_is_valid() -> None:
    """The documented configuration (README, Configuration) is what the code accepts."""
    from pathlib import Path

    import yaml

    from aurora.config import AuroraConfig

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("```yaml", text.index("## Configuration")) + len("```yaml")
    cfg = AuroraConfig.model_validate(yaml.safe_load(text[start:text.index("```", start)]))
    assert cfg.remediation.playbooks[0].steps[0].executor == "kubernetes"
    assert {c.type for c in cfg.notifications.channels} == {"slack", "pagerduty", "n8n", "email"}
    assert cfg.slos[0].objective == 0.999 and "queue_depth" in cfg.prediction.limits
