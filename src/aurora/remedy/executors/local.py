"""Executors on this machine: allowlisted shell commands, systemd units and processes by pid file."""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Literal

import psutil

from aurora.remedy.executors.base import OUTPUT_LIMIT, ExecRequest, ExecResult, render

START_GRACE_S = 1.0  # process restart: how long the new process must survive (params.start_grace_s)
TRIM_EVERY_S = 60.0  # process restart: how often a started process's output file is emptied


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
