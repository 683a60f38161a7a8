"""Executors: how a step acts on the world. Each returns what happened, with its output, never raises.

* ``sim``: the simulated fleet (demo, benchmarks): restart, rollback, scale_out, cache_flush, failover.
* ``webhook``: an HTTP POST of the action as JSON (n8n's Webhook node takes it as is), HMAC-SHA256-signed
  over the raw body (``X-Aurora-Signature: sha256=<hex>``, key from the env variable ``params.secret_env``).
* ``shell``: a command from the allowlist (``remediation.shell_allow`` globs), run without a shell, with a
  timeout and its output captured.
* ``process``: ``systemctl restart <unit>`` for an allowed unit, or a process by pid file: SIGTERM, wait,
  then the start command.
* ``kubernetes``: rollout restart, scale, undo to the previous revision, through the official client
  (``pip install 'aurora-aiops[k8s]'``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import hmac
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class ExecRequest:
    action_id: int
    incident_id: int
    playbook: str
    action: str
    target: str
    params: dict[str, Any]
    timeout_s: float
    time: float  # event time of the decision


@dataclass
class ExecResult:
    ok: bool
    output: str
    detail: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    name: str

    def run(self, req: ExecRequest) -> ExecResult: ...


def render(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"cannot fill {template!r}: {exc}; known fields: {', '.join(sorted(values))}") from exc


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SimExecutor:
    """Acts on the simulated fleet through ``apply(kind, service, event_time)``."""

    name = "sim"

    def __init__(self, apply: Callable[[str, str, float], Any]) -> None:
        self.apply = apply

    def run(self, req: ExecRequest) -> ExecResult:
        try:
            res = self.apply(req.action, req.target, req.time)
        except Exception as exc:
            return ExecResult(False, f"simulated {req.action} of {req.target} failed: {exc}")
        info = res.as_dict() if hasattr(res, "as_dict") else {"result": str(res)}
        return ExecResult(True, f"simulated {req.action} of {req.target}: {info.get('note', '')}", info)


class WebhookExecutor:
    name = "webhook"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def run(self, req: ExecRequest) -> ExecResult:
        body = json.dumps({"action_id": req.action_id, "incident_id": req.incident_id, "playbook": req.playbook,
                           "action": req.action, "target": req.target, "time": req.time,
                           "params": {k: v for k, v in req.params.items() if k not in ("url", "secret_env")}},
                          sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Aurora-Timestamp": str(int(time.time())),
                   "User-Agent": "aurora-remedy"}
        env = req.params.get("secret_env")
        if env:
            secret = self.environ.get(str(env))
            if not secret:
                return ExecResult(False, f"the webhook secret variable {env} is not set")
            headers["X-Aurora-Signature"] = sign(body, secret)
        t0 = time.perf_counter()
        try:
            r = httpx.post(str(req.params["url"]), content=body, headers=headers, timeout=req.timeout_s)
        except httpx.HTTPError as exc:
            return ExecResult(False, f"POST {req.params['url']} failed: {exc}")
        ms = 1000 * (time.perf_counter() - t0)
        ok = 200 <= r.status_code < 300
        return ExecResult(ok, f"POST {req.params['url']} -> {r.status_code} in {ms:.0f} ms: {r.text[:OUTPUT_LIMIT]}",
                          {"status": r.status_code, "latency_ms": ms})


def _run(argv: list[str], timeout_s: float) -> ExecResult:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        return ExecResult(False, f"{shlex.join(argv)} timed out after {timeout_s:g} s; output: {exc.output or ''}"[
            :OUTPUT_LIMIT], {"timeout": True})
    except OSError as exc:
        return ExecResult(False, f"{shlex.join(argv)} could not start: {exc}")
    out = (p.stdout + p.stderr)[-OUTPUT_LIMIT:]
    return ExecResult(p.returncode == 0, f"{shlex.join(argv)} exited {p.returncode}: {out}", {"exit": p.returncode})


class ShellExecutor:
    name = "shell"

    def __init__(self, allow: list[str]) -> None:
        self.allow = list(allow)

    def command(self, req: ExecRequest) -> list[str]:
        """The argv to run: the command template filled with shell-quoted values, checked against the
        allowlist. Raises ValueError when it is not allowed."""
        values = {"target": shlex.quote(req.target), "service": shlex.quote(req.target),
                  "incident": str(req.incident_id)}
        cmd = render(str(req.params["command"]), values)
        if not any(fnmatch.fnmatchcase(cmd, pat) for pat in self.allow):
            raise ValueError(f"command {cmd!r} is not in remediation.shell_allow")
        return shlex.split(cmd)

    def run(self, req: ExecRequest) -> ExecResult:
        try:
            argv = self.command(req)
        except ValueError as exc:
            return ExecResult(False, str(exc), {"refused": True})
        return _run(argv, req.timeout_s)


class ProcessExecutor:
    name = "process"

    def __init__(self, systemd_allow: list[str], shell_allow: list[str]) -> None:
        self.systemd_allow = list(systemd_allow)
        self.shell_allow = list(shell_allow)

    def run(self, req: ExecRequest) -> ExecResult:
        p = req.params
        if "unit" in p:
            unit = render(str(p["unit"]), {"target": req.target, "service": req.target})
            if not any(fnmatch.fnmatchcase(unit, pat) for pat in self.systemd_allow):
                return ExecResult(False, f"unit {unit!r} is not in remediation.systemd_allow", {"refused": True})
            return _run(["systemctl", "restart", unit], req.timeout_s)
        return self._restart_pidfile(Path(render(str(p["pidfile"]), {"target": req.target, "service": req.target})),
                                     str(p["start"]), req.timeout_s)

    def _restart_pidfile(self, pidfile: Path, start: str, timeout_s: float) -> ExecResult:
        if not any(fnmatch.fnmatchcase(start, pat) for pat in self.shell_allow):
            return ExecResult(False, f"start command {start!r} is not in remediation.shell_allow", {"refused": True})
        notes = []
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError) as exc:
            pid = None
            notes.append(f"no running process from {pidfile} ({exc}); starting it")
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout_s / 2
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
                notes.append(f"pid {pid} ignored SIGTERM; killed")
            except ProcessLookupError:
                notes.append(f"pid {pid} stopped")
            except PermissionError as exc:
                return ExecResult(False, f"cannot signal pid {pid}: {exc}")
        try:
            proc = subprocess.Popen(shlex.split(start), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as exc:
            return ExecResult(False, "; ".join([*notes, f"{start!r} could not start: {exc}"]))
        return ExecResult(True, "; ".join([*notes, f"started {start!r} as pid {proc.pid}"]), {"pid": proc.pid})


class KubernetesExecutor:
    """Deployments through the official client. ``api`` (an ``AppsV1Api``) is injectable for tests."""

    name = "kubernetes"

    def __init__(self, api: Any | None = None) -> None:
        self._api = api

    def api(self) -> Any:
        if self._api is None:
            try:
                from kubernetes import client, config
            except ImportError as exc:
                raise RuntimeError("the kubernetes executor needs the client: pip install 'aurora-aiops[k8s]'") from exc
            try:
                config.load_incluster_config()
            except Exception:  # not in a pod: $KUBECONFIG (read now, not when the client was imported) or ~/.kube
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
            self._api = client.AppsV1Api()
        return self._api

    def run(self, req: ExecRequest) -> ExecResult:
        p = req.params
        name = render(str(p["deployment"]), {"target": req.target, "service": req.target})
        ns = str(p.get("namespace", "default"))
        try:
            api = self.api()
            if req.action == "rollout_restart":
                stamp = dt.datetime.now(dt.UTC).isoformat()
                body = {"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": stamp}}}}}
                api.patch_namespaced_deployment(name, ns, body)
                return ExecResult(True, f"rollout restart of deployment {ns}/{name} at {stamp}")
            if req.action == "scale":
                replicas = int(p.get("replicas", 0)) or None
                if replicas is None:
                    cur = api.read_namespaced_deployment_scale(name, ns)
                    replicas = int(cur.spec.replicas) + int(p.get("by", 1))
                api.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}})
                return ExecResult(True, f"scaled deployment {ns}/{name} to {replicas} replicas", {"replicas": replicas})
            return self._undo(api, name, ns)
        except Exception as exc:
            return ExecResult(False, f"kubernetes {req.action} of {ns}/{name} failed: {exc}")

    @staticmethod
    def _undo(api: Any, name: str, ns: str) -> ExecResult:
        """``kubectl rollout undo``: the deployment's template becomes its previous ReplicaSet's. Like kubectl,
        a JSON Patch that *replaces* ``/spec/template``: a merge patch would keep what the bad revision added
        (an annotation, an environment variable) and so not go back."""
        dep = api.read_namespaced_deployment(name, ns)
        selector = ",".join(f"{k}={v}" for k, v in sorted((dep.spec.selector.match_labels or {}).items()))
        owned = [rs for rs in api.list_namespaced_replica_set(ns, label_selector=selector).items
                 if any(o.kind == "Deployment" and o.name == name for o in (rs.metadata.owner_references or []))]

        def revision(rs: Any) -> int:
            return int((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", 0))

        owned.sort(key=revision)
        if len(owned) < 2:
            return ExecResult(False, f"deployment {ns}/{name} has no previous revision to roll back to")
        prev = owned[-2]
        template = prev.spec.template
        labels = {k: v for k, v in (template.metadata.labels or {}).items() if k != "pod-template-hash"}
        template.metadata.labels = labels
        api.patch_namespaced_deployment(name, ns, [{"op": "replace", "path": "/spec/template", "value": template}])
        return ExecResult(True, f"rolled deployment {ns}/{name} back to revision {revision(prev)}",
                          {"revision": revision(prev)})
