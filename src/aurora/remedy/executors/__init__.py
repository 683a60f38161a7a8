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

from aurora.remedy.executors.base import OUTPUT_LIMIT, ExecRequest, ExecResult, Executor, render, sign
from aurora.remedy.executors.kubernetes import KubernetesExecutor
from aurora.remedy.executors.local import ProcessExecutor, ShellExecutor
from aurora.remedy.executors.sim import SimExecutor
from aurora.remedy.executors.webhook import WebhookExecutor

__all__ = ["OUTPUT_LIMIT", "ExecRequest", "ExecResult", "Executor", "KubernetesExecutor", "ProcessExecutor",
           "ShellExecutor", "SimExecutor", "WebhookExecutor", "render", "sign"]
