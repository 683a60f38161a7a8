"""The command line: check-config reports key and line; tokens are created and listed without values."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aurora.cli import app

runner = CliRunner()


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("server:\n  port: 9000\nservices:\n  - name: cart\n    depends_on: [postgres]\n")
    r = runner.invoke(app, ["check-config", "--config", str(good)], env={})
    assert r.exit_code == 0, r.output
    assert "valid" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 9000\nstorage:\n  chunk_samples: 2\n")
    r = runner.invoke(app, ["check-config", "--config", str(bad)], env={})
    assert r.exit_code == 1
    assert "storage.chunk_samples" in r.output and "line 4" in r.output


def test_token_create_and_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = runner.invoke(app, ["token", "create", "--scope", "read", "--scope", "ingest", "--name", "grafana",
                            "--data-dir", str(data)], env={})
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("aur_")
    r = runner.invoke(app, ["token", "list", "--data-dir", str(data)], env={})
    assert r.exit_code == 0 and "grafana" in r.output and "ingest read" in r.output
    assert token not in r.output
    r = runner.invoke(app, ["token", "create", "--scope", "root", "--data-dir", str(data)], env={})
    assert r.exit_code == 2 and "scope" in r.output


def test_replay_into_data_dir(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{i}\n" for i in range(100)))
    r = runner.invoke(app, ["replay", str(csv), "--metric", "nab_value", "--label", "file=m",
                            "--data-dir", str(tmp_path / "data")], env={"AURORA_HOST_AGENT__ENABLED": "false"})
    assert r.exit_code == 0, r.output
    assert "replayed 100 samples of 1 series" in r.output


def test_check_config_loads_the_playbook_folder_and_checks_channel_secrets(tmp_path: Path) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "leak.yaml").write_text("name: leak\nmatch: {category: [memory]}\nsteps:\n  - action: restart\n")
    cfg = tmp_path / "aurora.yaml"
    cfg.write_text(f"remediation:\n  playbooks_dir: {books}\nnotifications:\n  channels:\n"
                   "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/x', secret_env: HOOK_SECRET}\n")
    r = runner.invoke(app, ["check-config", "--config", str(cfg)], env={"HOOK_SECRET": "s"})
    assert r.exit_code == 0, r.output
    out = r.output.replace("\n", " ")
    assert "1 playbooks (1 in dry-run)" in out and "1 notification channels" in out
    r = runner.invoke(app, ["check-config", "--config", str(cfg)], env={})
    assert r.exit_code == 1 and "HOOK_SECRET" in r.output.replace("\n", "")
    (books / "bad.yaml").write_text("name: bad\nsteps:\n  - action: restart\n    executor: shell\n")
    r = runner.invoke(app, ["check-config", "--config", str(cfg)], env={"HOOK_SECRET": "s"})
    out = r.output.replace("\n", "")  # the console wraps long paths
    assert r.exit_code == 1 and "bad.yaml" in out and "shell executor" in out


def test_check_config_refuses_playbooks_that_would_only_fail_when_an_incident_needs_them(tmp_path: Path) -> None:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "leak.md").write_text("# Memory leak\n")
    cfg = tmp_path / "aurora.yaml"
    cfg.write_text(f"""remediation:
  runbooks_dir: {books}
  shell_allow: ["systemctl restart myapp-*"]
  playbooks:
    - {{name: sh, runbook: gone.md, steps: [{{action: shell, executor: shell, params: {{command: "rm -rf /tmp/x"}}}}]}}
    - name: hook
      steps: [{{action: webhook, executor: webhook, params: {{url: "not a url"}}}}]
    - name: signed
      steps: [{{action: webhook, executor: webhook, params: {{url: "http://n8n:5678/x", secret_env: N8N_KEY}}}}]
    - name: k8s
      steps: [{{action: scale, executor: kubernetes, params: {{deployment: "{{service}}", replicas: -3}}}}]
    - name: unit
      steps: [{{action: systemd_restart, executor: process, params: {{unit: sshd}}}}]
    - name: stoponly
      steps: [{{action: process_restart, executor: process, params: {{pidfile: /run/a.pid, start: false}}}}]
    - name: big
      steps: [{{action: scale, executor: kubernetes, params: {{deployment: web, replicas: 500}}}}]
    - {{name: fine, runbook: leak.md, steps: [{{action: shell, executor: shell,
                                               params: {{command: "systemctl restart myapp-{{service}}"}}}}]}}
""")
    r = runner.invoke(app, ["check-config", "--config", str(cfg)], env={})
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "8 problems" in out
    for expected in ("playbook sh: runbook 'gone.md' is not a Markdown file in",
                     "playbook sh, step 1 (shell on shell): command 'rm -rf /tmp/x' matches none of "
                     "remediation.shell_allow",
                     "playbook hook, step 1 (webhook on webhook): params.url 'not a url' must be an absolute",
                     "params.secret_env names N8N_KEY, which is not set in the environment",
                     "params.replicas must be a whole number of 0 or more, not -3",
                     "remediation.systemd_allow is empty, so no unit may run",
                     "params.start is false (stop only): set params.expect",
                     "params.replicas 500 is above params.max_replicas (100)"):
        assert expected in out, expected
    assert "playbook fine" not in out
    r = runner.invoke(app, ["check-config", "--config", str(cfg)], env={"N8N_KEY": "k"})
    assert "7 problems" in " ".join(r.output.split())
