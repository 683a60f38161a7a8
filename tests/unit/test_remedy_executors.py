"""The remediation executors against real things: a local HTTP receiver, real subprocesses and process groups,
pid files in tmp_path, and a fake ``systemctl`` script on PATH (the Kubernetes executor over HTTP is in
tests/integration/test_kubernetes_executor.py)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from aurora.remedy.executors import (
    ExecRequest,
    ExecResult,
    KubernetesExecutor,
    ProcessExecutor,
    ShellExecutor,
    WebhookExecutor,
    sign,
)

T0 = 1_700_000_000.0


def req(action: str, timeout_s: float = 5.0, target: str = "cart", **params: Any) -> ExecRequest:
    return ExecRequest(1, 7, "pb", action, target, params, timeout_s, T0)


def dead(pid: int) -> bool:
    """Exited: gone, or a zombie its parent has not reaped (an orphan whose reaper here is not a real init)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def eventually(cond: Any, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids the test makes or the executor starts: killed at the end, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def spawn(argv: list[str], pids: list[int]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv)
    pids.append(proc.pid)
    return proc


# --- webhook -----------------------------------------------------------------------------------------------
class Receiver:
    """A loopback HTTP server keeping the exact bytes and headers of every POST."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.got.append((dict(self.headers.items()), raw))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    assert sign(b'{"a":1}', "k") == "sha256=" + hmac.new(b"k", b'{"a":1}', hashlib.sha256).hexdigest()


def test_webhook_signs_a_unique_id_and_the_send_time_so_a_replay_can_be_told(receiver: Receiver) -> None:
    ex = WebhookExecutor({"HOOK_KEY": "s3cret"})
    step = req("restart", url=receiver.url, secret_env="HOOK_KEY", reason="leak")
    before = int(time.time())
    first, second = ex.run(step), ex.run(step)
    assert first.ok and second.ok, (first.output, second.output)
    bodies = []
    for headers, raw in receiver.got:
        want = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Aurora-Signature"], want)  # over the exact bytes received
        body = json.loads(raw)
        assert before <= body["sent_at"] <= time.time() + 1  # wall clock, not the event time
        assert headers["X-Aurora-Timestamp"] == str(body["sent_at"]) and headers["X-Aurora-Delivery"] == body["id"]
        assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
        # the fields receivers already use are all still there; url and the secret's name are not sent
        assert body | {"id": None, "sent_at": None} == {
            "action_id": 1, "incident_id": 7, "playbook": "pb", "action": "restart", "target": "cart", "time": T0,
            "params": {"reason": "leak"}, "id": None, "sent_at": None}
        bodies.append(body)
    assert bodies[0]["id"] != bodies[1]["id"]
    assert [first.detail["id"], second.detail["id"]] == [b["id"] for b in bodies]
    # moving sent_at forward (to replay later) breaks the signature
    headers, raw = receiver.got[0]
    forged = raw.replace(f'"sent_at": {bodies[0]["sent_at"]}'.encode(), f'"sent_at": {before + 3600}'.encode())
    assert forged != raw and sign(forged, "s3cret") != headers["X-Aurora-Signature"]


# --- shell -----------------------------------------------------------------------------------------------
def test_shell_runs_only_allowed_commands_with_quoted_values_and_a_timeout() -> None:
    ex = ShellExecutor(["echo restarting *", "sleep *"])
    res = ex.run(req("shell", target="cart; rm -rf /", command="echo restarting {target}"))
    assert res.ok and "restarting cart; rm -rf /" in res.output  # one quoted argument, no shell
    bad = ex.run(req("shell", command="rm -rf {target}"))
    assert not bad.ok and "not in remediation.shell_allow" in bad.output
    slow = ex.run(req("shell", 0.2, command="sleep 5"))
    assert not slow.ok and "timed out" in slow.output


def test_a_shell_timeout_kills_the_whole_process_group_and_keeps_the_output_so_far(started: list[int]) -> None:
    ex = ShellExecutor(["sh -c *"])
    script = "echo warming up; echo slow disk >&2; sleep 30 & echo grandchild=$!; wait"
    t0 = time.monotonic()
    res = ex.run(req("shell", 1.0, command=f"sh -c '{script}'"))
    elapsed = time.monotonic() - t0
    m = re.search(r"grandchild=(\d+)", res.output)
    assert m, res.output
    started.append(int(m.group(1)))
    assert not res.ok and res.detail == {"timeout": True} and "timed out after 1 s" in res.output
    assert elapsed < 3.0
    assert eventually(lambda: dead(int(m.group(1)))), "the grandchild sleep outlived the timeout"
    # stdout and stderr, as text (not a bytes repr)
    assert "output: warming up\ngrandchild=" in res.output and "slow disk\n" in res.output


# --- process: systemd -------------------------------------------------------------------------------------
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$FAKE_SYSTEMCTL_LOG"
for unit in "$@"; do :; done
case "$FAKE_SYSTEMCTL_MODE" in
  fail) echo "Failed to restart $unit: Unit $unit not found." >&2; exit 5 ;;
  hang) sleep 30 & echo "sleeper=$!"; wait ;;
  *) echo "restarted $unit" ;;
esac
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``systemctl`` first on PATH; it appends its arguments to the returned log file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)
    log = tmp_path / "systemctl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    return log


def test_systemd_restarts_only_allowed_units(systemctl: Path) -> None:
    ex = ProcessExecutor(["shop-*.service"], [])
    res = ex.run(req("systemd_restart", unit="shop-{service}.service"))
    assert res.ok and "restarted shop-cart.service" in res.output, res.output
    assert systemctl.read_text() == "restart -- shop-cart.service\n"  # "--": a unit name is never an option
    refused = ex.run(req("systemd_restart", target="db", unit="{service}.service"))
    assert not refused.ok and refused.detail == {"refused": True}
    assert "'db.service' is not in remediation.systemd_allow" in refused.output
    assert systemctl.read_text().count("\n") == 1  # systemctl was not run


def test_a_failing_or_hanging_systemctl_fails_the_step_with_its_output(systemctl: Path, started: list[int],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ex = ProcessExecutor(["shop-*"], [])
    monkeypatch.setenv("FAKE_SYSTEMCTL_MODE", "fail")
    res = ex.run(req("systemd_restart", unit="shop-{service}"))
    assert not res.ok and res.detail == {"exit": 5} and "Unit shop-cart not found" in res.output
    monkeypatch.setenv("FAKE_SYSTEMCTL_MODE", "hang")
    t0 = time.monotonic()
    res = ex.run(req("systemd_restart", 0.5, unit="shop-{service}"))
    assert time.monotonic() - t0 < 3.0
    assert not res.ok and res.detail == {"timeout": True} and "timed out after 0.5 s" in res.output
    m = re.search(r"sleeper=(\d+)", res.output)
    assert m, res.output
    started.append(int(m.group(1)))
    assert eventually(lambda: dead(int(m.group(1))))


# --- process: pid file --------------------------------------------------------------------------------------
Restart = Callable[..., ExecResult]


@pytest.fixture
def restart(started: list[int]) -> Restart:
    """Runs a pid-file restart (a 0.3 s start grace unless given); whatever it starts is killed at the end."""

    def run(ex: ProcessExecutor, pidfile: Path, timeout_s: float = 5.0, **params: Any) -> ExecResult:
        res = ex.run(req("process_restart", timeout_s, pidfile=str(pidfile), **{"start_grace_s": 0.3, **params}))
        if "pid" in res.detail:
            started.append(res.detail["pid"])
        return res

    return run


def test_a_pid_file_restart_stops_the_old_process_and_checks_the_new_one_runs(tmp_path: Path, started: list[int],
                                                                             restart: Restart) -> None:
    old = spawn(["sleep", "30"], started)
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(f"{old.pid}\n")
    res = restart(ProcessExecutor([], ["sleep *"]), pidfile, start="sleep 30")
    assert res.ok, res.output
    assert old.wait(timeout=2) == -signal.SIGTERM
    assert f"pid {old.pid} stopped; started 'sleep 30' as pid {res.detail['pid']}, running after 0.3 s" in res.output
    assert psutil.Process(res.detail["pid"]).status() != psutil.STATUS_ZOMBIE


def test_a_pid_that_is_another_program_is_never_signalled(tmp_path: Path, started: list[int],
                                                          restart: Restart) -> None:
    ex = ProcessExecutor([], ["sleep *"])
    other = spawn([sys.executable, "-c", "import time; time.sleep(30)"], started)  # a reused pid, say
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(str(other.pid))
    res = restart(ex, pidfile, start="sleep 30")
    assert not res.ok and res.detail == {"refused": True}
    assert f"pid {other.pid} from {pidfile} runs" in res.output and "not program 'sleep': not signalling it" in (
        res.output)
    res = restart(ex, pidfile, start="sleep 30", expect="myserver --port")
    assert not res.ok and "not a command line containing 'myserver --port'" in res.output
    time.sleep(0.2)
    assert other.poll() is None  # still running: never signalled


def test_a_pid_file_without_a_process_id_of_another_process_is_refused(tmp_path: Path, restart: Restart) -> None:
    ex = ProcessExecutor([], ["sleep *"])
    pidfile = tmp_path / "cart.pid"
    for text in ("garbage", "0", "-1", "1", str(os.getpid())):  # kill(0) and kill(-1) signal whole groups
        pidfile.write_text(text)
        res = restart(ex, pidfile, start="sleep 30")
        assert not res.ok and res.detail == {"refused": True}, res.output
        assert "nothing signalled" in res.output or "which Aurora never signals" in res.output


def test_a_dead_pid_is_not_signalled_and_the_process_is_started(tmp_path: Path, restart: Restart) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(str(gone.pid))
    res = restart(ProcessExecutor([], ["sleep *"]), pidfile, start="sleep 30")
    assert res.ok, res.output
    assert res.output.startswith(f"pid {gone.pid} from {pidfile} is not running; started 'sleep 30'")
    res = restart(ProcessExecutor([], ["sleep *"]), tmp_path / "none.pid", start="sleep 30")
    assert res.ok and "no running process from" in res.output


def test_expect_names_the_program_when_its_command_line_differs(tmp_path: Path, started: list[int],
                                                                restart: Restart) -> None:
    old = spawn(["sleep", "31"], started)
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(str(old.pid))
    res = restart(ProcessExecutor([], ["sh -c *"]), pidfile, start="sh -c 'exec sleep 30'", expect="sleep 31")
    assert res.ok, res.output
    assert old.wait(timeout=2) == -signal.SIGTERM


def test_a_start_command_that_exits_at_once_fails_the_step_with_its_output(tmp_path: Path, restart: Restart) -> None:
    ex = ProcessExecutor([], ["sh -c *"])
    res = restart(ex, tmp_path / "none.pid", start="sh -c 'echo starting; echo config missing >&2; exit 3'")
    assert not res.ok and res.detail["exit"] == 3, res.output
    assert "but it exited 3 within 0.3 s; output: starting\nconfig missing" in res.output
    launcher = restart(ex, tmp_path / "none.pid", start="sh -c 'echo forked'")  # a launcher that daemonizes
    assert launcher.ok and "it exited 0 within 0.3 s" in launcher.output and "forked" in launcher.output


def test_the_start_grace_is_bounded_by_the_step_timeout(tmp_path: Path, restart: Restart) -> None:
    t0 = time.monotonic()
    res = restart(ProcessExecutor([], ["sleep *"]), tmp_path / "none.pid", 0.5, start="sleep 30", start_grace_s=20)
    assert res.ok and time.monotonic() - t0 < 2.0, res.output


def test_start_false_only_stops_and_says_that_nothing_was_started(tmp_path: Path, started: list[int],
                                                                  restart: Restart) -> None:
    ex = ProcessExecutor([], [])
    old = spawn(["sleep", "30"], started)
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(str(old.pid))
    res = restart(ex, pidfile, start=False, expect="sleep")
    assert res.ok and res.detail == {"started": False}, res.output
    assert res.output == f"pid {old.pid} stopped; not started again (params.start is false: something else starts it)"
    assert old.wait(timeout=2) == -signal.SIGTERM
    nothing = restart(ex, pidfile, start=False, expect="sleep")  # the pid is gone now: nothing was done
    assert not nothing.ok and "nothing was stopped or started" in nothing.output
    blind = restart(ex, pidfile, start=False)
    assert not blind.ok and "set params.expect" in blind.output


def test_a_started_process_is_reaped_when_it_exits(tmp_path: Path, restart: Restart) -> None:
    """No zombie: a zombie would also look alive to the next restart, which would wait and then SIGKILL it."""
    ex = ProcessExecutor([], ["sleep *"])
    first = restart(ex, tmp_path / "none.pid", start="sleep 30")
    assert first.ok, first.output
    pid = first.detail["pid"]
    pidfile = tmp_path / "cart.pid"
    pidfile.write_text(str(pid))
    t0 = time.monotonic()
    second = restart(ex, pidfile, 4.0, start="sleep 30")
    assert second.ok and second.output.startswith(f"pid {pid} stopped;"), second.output
    assert time.monotonic() - t0 < 1.5  # not the 2 s (half the timeout) a zombie would be waited for
    assert eventually(lambda: not psutil.pid_exists(pid)), "the stopped process lingers as a zombie"
    os.kill(second.detail["pid"], signal.SIGTERM)  # exits on its own (not through the executor): reaped too
    assert eventually(lambda: not psutil.pid_exists(second.detail["pid"]))


# --- kubernetes (the client's own calls over HTTP: tests/integration/test_kubernetes_executor.py) ----------
class FakeApps:
    """The parts of kubernetes' AppsV1Api the executor uses, recording the calls and their timeouts."""

    def __init__(self) -> None:
        from types import SimpleNamespace as NS

        self.calls: list[tuple[str, Any]] = []
        self.timeouts: list[float] = []
        tmpl = lambda v: NS(metadata=NS(labels={"app": "cart", "pod-template-hash": f"h{v}"}),  # noqa: E731
                            spec={"image": f"cart:{v}"})
        owner = [NS(kind="Deployment", name="cart")]
        self.replica_sets = [NS(metadata=NS(annotations={"deployment.kubernetes.io/revision": str(r)},
                                            owner_references=owner), spec=NS(template=tmpl(r))) for r in (3, 1, 2)]
        self.NS = NS

    def _timeout(self, t: float) -> None:
        self.timeouts.append(t)

    def patch_namespaced_deployment(self, name: str, ns: str, body: Any, _request_timeout: float) -> None:
        self._timeout(_request_timeout)
        self.calls.append(("patch", (name, ns, body)))

    def read_namespaced_deployment_scale(self, name: str, ns: str, _request_timeout: float) -> Any:
        self._timeout(_request_timeout)
        return self.NS(spec=self.NS(replicas=3))

    def patch_namespaced_deployment_scale(self, name: str, ns: str, body: Any, _request_timeout: float) -> None:
        self._timeout(_request_timeout)
        self.calls.append(("scale", (name, ns, body)))

    def read_namespaced_deployment(self, name: str, ns: str, _request_timeout: float) -> Any:
        self._timeout(_request_timeout)
        return self.NS(spec=self.NS(selector=self.NS(match_labels={"app": "cart"})))

    def list_namespaced_replica_set(self, ns: str, label_selector: str, _request_timeout: float) -> Any:
        self._timeout(_request_timeout)
        self.calls.append(("list", (ns, label_selector)))
        return self.NS(items=self.replica_sets)


def test_kubernetes_restart_scale_and_undo_make_the_calls_kubectl_would() -> None:
    api = FakeApps()
    ex = KubernetesExecutor(api)

    def kreq(action: str, **params: Any) -> ExecRequest:
        return req(action, 10.0, deployment="{service}", namespace="shop", **params)

    assert ex.run(kreq("rollout_restart")).ok
    name, ns, body = api.calls[-1][1]
    assert (name, ns) == ("cart", "shop")
    assert "kubectl.kubernetes.io/restartedAt" in body["spec"]["template"]["metadata"]["annotations"]
    scaled = ex.run(kreq("scale", by=2))
    assert scaled.ok and api.calls[-1] == ("scale", ("cart", "shop", {"spec": {"replicas": 5}}))
    undo = ex.run(kreq("undo"))
    assert undo.ok and "revision 2" in undo.output  # the one before the newest (3)
    assert api.calls[-2] == ("list", ("shop", "app=cart"))
    patched: Any = api.calls[-1][1]
    [op] = patched[2]  # a JSON Patch that replaces the template, as kubectl sends
    assert (op["op"], op["path"]) == ("replace", "/spec/template")
    template = op["value"]
    assert template.spec == {"image": "cart:2"} and "pod-template-hash" not in template.metadata.labels
    api.replica_sets = api.replica_sets[:1]
    assert not ex.run(kreq("undo")).ok  # no previous revision: says so, changes nothing
    # every call is bounded by what is left of the step's timeout
    assert len(api.timeouts) == 8 and all(0 < t <= 10.0 for t in api.timeouts)


def test_kubernetes_scale_checks_the_count_before_calling_the_api() -> None:
    api = FakeApps()
    ex = KubernetesExecutor(api)

    def scale(**params: Any) -> ExecResult:
        return ex.run(req("scale", deployment="cart", **params))

    zero = scale(replicas=0)
    assert zero.ok and api.calls[-1] == ("scale", ("cart", "default", {"spec": {"replicas": 0}})), zero.output
    cases: list[tuple[dict[str, Any], str]] = [
        ({"replicas": -1}, "params.replicas is -1: a deployment cannot have fewer than 0"),
        ({"by": -4}, "3 replicas now -4 (params.by) is -1"),
        ({"replicas": 101}, "is 101, above the cap of 100; set params.max_replicas to allow more"),
        ({"replicas": 20, "max_replicas": 10}, "above the cap of 10"),
        ({"replicas": "many"}, "params.replicas must be a whole number, not 'many'"),
        ({"replicas": 2.5}, "not 2.5"), ({"replicas": True}, "not True")]
    for params, why in cases:
        res = scale(**params)
        assert not res.ok and res.detail == {"refused": True} and why in res.output, (params, res.output)
        assert res.output.startswith("refused to scale deployment default/cart: ")
    assert len([c for c in api.calls if c[0] == "scale"]) == 1  # only the scale to 0 was sent
    assert scale(replicas=150, max_replicas=200).ok


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the process's stdout size through /proc")
def test_the_output_of_a_long_running_started_process_does_not_pile_up(tmp_path: Path, restart: Restart,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from aurora.remedy.executors import local

    monkeypatch.setattr(local, "TRIM_EVERY_S", 0.2)
    chatty = "sh -c 'line=$(printf %0400d 0); while :; do echo \"$line\"; sleep 0.001; done'"
    res = restart(ProcessExecutor([], ["sh -c *"]), tmp_path / "none.pid", start=chatty, start_grace_s=0.1)
    assert res.ok and "output: 0000" in res.output, res.output[:300]
    stdout, written = Path(f"/proc/{res.detail['pid']}/fd/1"), Path(f"/proc/{res.detail['pid']}/io")
    time.sleep(1.0)
    st = stdout.stat()
    m = re.search(r"wchar: (\d+)", written.read_text())  # bytes it has written so far
    assert m
    total = int(m.group(1))
    assert total > 40_000 and st.st_size < total / 2, (st.st_size, total)  # emptied now and then, and not
    assert st.st_blocks * 512 < total / 2  # merely sparse: after a trim the writes start at 0 again (O_APPEND)
