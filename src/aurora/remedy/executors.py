"""Executors: how a step acts on the world. Each returns what happened, with its output, never raises.

* ``sim``: the simulated fleet (demo, benchmarks): restart, rollback, scale_out, cache_flush, failover.
* ``webhook``: an HTTP POST of the action as JSON (n8n's Webhook node takes it as is), HMAC-SHA256-signed
  over the raw body (``X-Aurora-Signature: sha256=<hex>``, key from the env variable ``params.secret_env``).
  As with notifications, the body carries ``sent_at`` (wall-clock unix seconds, also ``X-Aurora-Timestamp``)
  and a unique ``id`` (also ``X-Aurora-Delivery``), so the signature covers both: a receiver verifies the
  signature over the bytes it received, then rejects a body whose ``sent_at`` is more than a few minutes old
  and an ``id`` it has already seen in that window (a replayed request).
* ``shell``: a command from the allowlist (``remediation.shell_allow`` globs), run without a shell, with a
  timeout and its output captured. It runs in its own session: a timeout kills its whole process group (the
  children it started too) and keeps the output so far.
* ``process``: ``systemctl restart <unit>`` for an allowed unit, or a process by pid file: SIGTERM (then
  SIGKILL), wait, then the start command (``params.start``, allowlisted like shell commands). The pid is
  signalled only if it runs the expected program: ``params.expect`` (text its command line must contain) or
  else the start command's program name (its process name, or a word of its command line such as the script
  an interpreter runs). The new process must still be running, or have exited 0 (a launcher that daemonizes),
  after ``params.start_grace_s`` (default 1 s); otherwise the step fails with its output. ``start: false``
  only stops the process (something else starts it; ``expect`` is then required) and says so.
* ``kubernetes``: rollout restart, scale (``replicas``, or ``by`` from the current count, refused below 0 or
  above ``max_replicas``, default 100), undo to the previous revision, through the official client
  (``pip install 'aurora-aiops[k8s]'``); every API call is bounded by what is left of the step's timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import fnmatch
import hashlib
import hmac
import json
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import httpx
import psutil

OUTPUT_LIMIT = 4000
MAX_REPLICAS = 100  # kubernetes scale: the default cap (params.max_replicas)
START_GRACE_S = 1.0  # process restart: how long the new process must survive (params.start_grace_s)
TRIM_EVERY_S = 60.0  # process restart: how often a started process's output file is emptied

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
        # sent_at and id are in the signed body (a header is not signed): a captured request cannot be replayed
        # to a receiver that checks them. Wall-clock, not event time: it dates the request, not the incident.
        sent_at, delivery = int(time.time()), uuid.uuid4().hex
        body = json.dumps({"action_id": req.action_id, "incident_id": req.incident_id, "playbook": req.playbook,
                           "action": req.action, "target": req.target, "time": req.time,
                           "params": {k: v for k, v in req.params.items() if k not in ("url", "secret_env")},
                           "id": delivery, "sent_at": sent_at}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Aurora-Timestamp": str(sent_at),
                   "X-Aurora-Delivery": delivery, "User-Agent": "aurora-remedy"}
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
            return ExecResult(False, f"POST {req.params['url']} failed: {exc}", {"id": delivery})
        ms = 1000 * (time.perf_counter() - t0)
        ok = 200 <= r.status_code < 300
        return ExecResult(ok, f"POST {req.params['url']} -> {r.status_code} in {ms:.0f} ms: {r.text[:OUTPUT_LIMIT]}",
                          {"status": r.status_code, "latency_ms": ms, "id": delivery})


def _run(argv: list[str], timeout_s: float) -> ExecResult:
    """Runs ``argv`` in a session of its own, so that on timeout the whole process group is killed (a script's
    children too, which would otherwise live on) and the output it printed until then is kept."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        return ExecResult(False, f"{shlex.join(argv)} could not start: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = _rest_of_output(proc)
        return ExecResult(False, f"{shlex.join(argv)} timed out after {timeout_s:g} s; its process group was "
                                 f"killed; output: {(out + err)[-OUTPUT_LIMIT:]}", {"timeout": True})
    code = proc.returncode
    return ExecResult(code == 0, f"{shlex.join(argv)} exited {code}: {(out + err)[-OUTPUT_LIMIT:]}", {"exit": code})


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # all gone already, or not ours to kill
        os.killpg(pgid, signal.SIGKILL)


def _rest_of_output(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Everything the killed process printed (communicate keeps what it read before the timeout). A process that
    left the group (its own setsid) may still hold the pipes: after a second then, what arrived is enough."""
    try:
        return proc.communicate(timeout=1.0)
    except subprocess.TimeoutExpired as exc:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return (_text(exc.stdout), _text(exc.stderr))


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


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


StopState = Literal["stopped", "absent", "refused", "failed"]


class ProcessExecutor:
    name = "process"

    def __init__(self, systemd_allow: list[str], shell_allow: list[str]) -> None:
        self.systemd_allow = list(systemd_allow)
        self.shell_allow = list(shell_allow)

    def run(self, req: ExecRequest) -> ExecResult:
        p = req.params
        try:
            if "unit" in p:
                unit = render(str(p["unit"]), {"target": req.target, "service": req.target})
                if not any(fnmatch.fnmatchcase(unit, pat) for pat in self.systemd_allow):
                    return ExecResult(False, f"unit {unit!r} is not in remediation.systemd_allow", {"refused": True})
                return _run(["systemctl", "restart", "--", unit], req.timeout_s)  # "--": a unit is never an option
            pidfile = Path(render(str(p["pidfile"]), {"target": req.target, "service": req.target}))
            grace = float(p.get("start_grace_s", START_GRACE_S))
        except (TypeError, ValueError) as exc:
            return ExecResult(False, str(exc), {"refused": True})
        start = p.get("start")
        return self._restart_pidfile(pidfile, str(start) if start else None, p.get("expect"), grace, req.timeout_s)

    def _restart_pidfile(self, pidfile: Path, start: str | None, expect: Any, grace_s: float,
                         timeout_s: float) -> ExecResult:
        deadline = time.monotonic() + timeout_s
        if start is not None and not any(fnmatch.fnmatchcase(start, pat) for pat in self.shell_allow):
            return ExecResult(False, f"start command {start!r} is not in remediation.shell_allow", {"refused": True})
        argv = shlex.split(start) if start else []
        if not expect and not argv:
            return ExecResult(False, "params.start is false: set params.expect (text the process's command line "
                                     "contains) so that only that program is signalled", {"refused": True})
        state, note = _stop(pidfile, str(expect) if expect else None, Path(argv[0]).name if argv else "",
                            deadline - timeout_s / 2)
        if state in ("refused", "failed"):
            return ExecResult(False, note, {"refused": True} if state == "refused" else {})
        if not argv:
            if state == "absent":
                return ExecResult(False, f"{note}; params.start is false, so nothing was stopped or started")
            return ExecResult(True, f"{note}; not started again (params.start is false: something else starts it)",
                              {"started": False})
        grace_s = max(0.0, min(grace_s, deadline - time.monotonic()))
        return _start(argv, note, grace_s)


def _stop(pidfile: Path, expect: str | None, program: str, term_deadline: float) -> tuple[StopState, str]:
    """Stops the process in the pid file if it runs the expected program (``expect`` in its command line, or
    ``program`` as its name or a word of it); a pid that is dead or another program's is not signalled."""
    try:
        text = pidfile.read_text().strip()
    except OSError as exc:
        return "absent", f"no running process from {pidfile} ({exc.strerror or exc})"
    try:
        pid = int(text)
    except ValueError:
        return "refused", f"{pidfile} holds {text[:40]!r}, not a process id; nothing signalled"
    if pid < 2 or pid == os.getpid():  # kill(0) or kill(-1) would signal a whole group or every process
        return "refused", f"{pidfile} holds pid {pid}, which Aurora never signals"
    try:
        proc = psutil.Process(pid)  # remembers the start time: a signal never reaches a later process on that pid
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "absent", f"pid {pid} from {pidfile} has already exited"
        cmdline, pname = proc.cmdline(), proc.name()
    except psutil.NoSuchProcess:
        return "absent", f"pid {pid} from {pidfile} is not running"
    except psutil.AccessDenied as exc:
        return "refused", f"cannot inspect pid {pid} from {pidfile}: {exc}"
    if expect is not None:
        expected = expect in " ".join(cmdline)
    else:
        expected = program in {pname, *(Path(a).name for a in cmdline)}
    if not expected:
        want = f"a command line containing {expect!r}" if expect is not None else f"program {program!r}"
        return "refused", (f"pid {pid} from {pidfile} runs {shlex.join(cmdline)[:200]!r}, not {want}: not "
                           "signalling it (a stale pid file? set params.expect if the command line differs)")
    try:
        proc.terminate()
        if _gone(proc, term_deadline):
            return "stopped", f"pid {pid} stopped"
        proc.kill()
        if _gone(proc, time.monotonic() + 2.0):
            return "stopped", f"pid {pid} ignored SIGTERM; killed"
        return "failed", f"pid {pid} is still running after SIGKILL"
    except psutil.NoSuchProcess:
        return "stopped", f"pid {pid} stopped"
    except psutil.AccessDenied as exc:
        return "failed", f"cannot signal pid {pid}: {exc}"


def _gone(proc: psutil.Process, deadline: float) -> bool:
    """Whether the process exits by ``deadline``. A zombie has exited (reaping it is its parent's business)."""
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _start(argv: list[str], note: str, grace_s: float) -> ExecResult:
    """Starts ``argv`` in its own session, stdout and stderr to a temporary file, and watches it for ``grace_s``."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (closed here, or by _reap when the process outlives the grace)
    # Append mode, so that after _reap truncates the file the process writes from its start again (not at its old
    # offset, which would leave a file as large, only sparse).
    fcntl.fcntl(out.fileno(), fcntl.F_SETFL, fcntl.fcntl(out.fileno(), fcntl.F_GETFL) | os.O_APPEND)
    cmd = shlex.join(argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        out.close()
        return ExecResult(False, f"{note}; {cmd!r} could not start: {exc}")
    try:
        code: int | None = proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        code = None
    size = os.fstat(out.fileno()).st_size
    printed = os.pread(out.fileno(), OUTPUT_LIMIT, max(0, size - OUTPUT_LIMIT)).decode(errors="replace")
    said = f"; output: {printed}" if printed else ""
    detail: dict[str, Any] = {"pid": proc.pid}
    if code is None:
        # Keep the Popen and wait for it in a thread: the process is our child, and a child nobody waits for stays
        # a zombie (and looks alive to the next restart). Unlike a double fork, this also let us see its exit
        # status above. The thread sleeps in wait() and ends with the process.
        threading.Thread(target=_reap, args=(proc, out), name=f"aurora-reap-{proc.pid}", daemon=True).start()
        return ExecResult(True, f"{note}; started {cmd!r} as pid {proc.pid}, running after {grace_s:g} s{said}",
                          detail)
    out.close()
    detail["exit"] = code
    if code == 0:
        return ExecResult(True, f"{note}; started {cmd!r}: it exited 0 within {grace_s:g} s (a launcher that "
                                f"daemonizes){said}", detail)
    return ExecResult(False, f"{note}; started {cmd!r} but it exited {code} within {grace_s:g} s{said}", detail)


def _reap(proc: subprocess.Popen[bytes], out: IO[bytes]) -> None:
    """Waits for a started process (no zombie); meanwhile empties its output file now and then, as that is read
    only for the start report and must not grow for as long as the process lives."""
    with out:
        while True:
            try:
                proc.wait(timeout=TRIM_EVERY_S)
                return
            except subprocess.TimeoutExpired:
                out.truncate(0)


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
            cfg = client.Configuration.get_default_copy()
            cfg.retries = False  # one attempt a call (urllib3 tries a timed-out GET 4 times): the timeout holds
            self._api = client.AppsV1Api(client.ApiClient(cfg))
        return self._api

    def run(self, req: ExecRequest) -> ExecResult:
        p = req.params
        ns = str(p.get("namespace", "default"))
        name = str(p.get("deployment"))
        deadline = time.monotonic() + req.timeout_s

        def left() -> float:
            """What is left of the step's timeout, for the next API call: a hung API server cannot hold a worker."""
            rest = deadline - time.monotonic()
            if rest <= 0:
                raise TimeoutError(f"the step's timeout ({req.timeout_s:g} s) ran out")
            return rest

        try:
            name = render(name, {"target": req.target, "service": req.target})
            api = self.api()
            if req.action == "rollout_restart":
                stamp = dt.datetime.now(dt.UTC).isoformat()
                body = {"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": stamp}}}}}
                api.patch_namespaced_deployment(name, ns, body, _request_timeout=left())
                return ExecResult(True, f"rollout restart of deployment {ns}/{name} at {stamp}")
            if req.action == "scale":
                return self._scale(api, name, ns, p, left)
            return self._undo(api, name, ns, left)
        except Exception as exc:
            return ExecResult(False, f"kubernetes {req.action} of {ns}/{name} failed: {exc}")

    @staticmethod
    def _scale(api: Any, name: str, ns: str, p: dict[str, Any], left: Callable[[], float]) -> ExecResult:
        """To ``replicas`` (0 included), or by ``by`` (default 1) from the current count; refused below 0 or above
        ``max_replicas``."""
        try:
            cap = _whole(p.get("max_replicas", MAX_REPLICAS), "max_replicas")
            if "replicas" in p:
                replicas, how = _whole(p["replicas"], "replicas"), "params.replicas"
            else:
                by = _whole(p.get("by", 1), "by")
                cur = api.read_namespaced_deployment_scale(name, ns, _request_timeout=left())
                now = int(cur.spec.replicas or 0)
                replicas, how = now + by, f"{now} replicas now {by:+d} (params.by)"
            if replicas < 0:
                raise ValueError(f"{how} is {replicas}: a deployment cannot have fewer than 0 replicas")
            if replicas > cap:
                raise ValueError(f"{how} is {replicas}, above the cap of {cap}; set params.max_replicas to allow "
                                 "more")
        except ValueError as exc:
            return ExecResult(False, f"refused to scale deployment {ns}/{name}: {exc}", {"refused": True})
        api.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": replicas}}, _request_timeout=left())
        return ExecResult(True, f"scaled deployment {ns}/{name} to {replicas} replicas", {"replicas": replicas})

    @staticmethod
    def _undo(api: Any, name: str, ns: str, left: Callable[[], float]) -> ExecResult:
        """``kubectl rollout undo``: the deployment's template becomes its previous ReplicaSet's. Like kubectl,
        a JSON Patch that *replaces* ``/spec/template``: a merge patch would keep what the bad revision added
        (an annotation, an environment variable) and so not go back."""
        dep = api.read_namespaced_deployment(name, ns, _request_timeout=left())
        selector = ",".join(f"{k}={v}" for k, v in sorted((dep.spec.selector.match_labels or {}).items()))
        owned = [rs for rs in api.list_namespaced_replica_set(ns, label_selector=selector,
                                                              _request_timeout=left()).items
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
        api.patch_namespaced_deployment(name, ns, [{"op": "replace", "path": "/spec/template", "value": template}],
                                        _request_timeout=left())
        return ExecResult(True, f"rolled deployment {ns}/{name} back to revision {revision(prev)}",
                          {"revision": revision(prev)})


def _whole(value: Any, key: str) -> int:
    """A whole number from a playbook parameter (3 or "3"; not 2.5, not true)."""
    if not isinstance(value, bool) and isinstance(value, int | str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"params.{key} must be a whole number, not {value!r}")
