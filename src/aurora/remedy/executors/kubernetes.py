"""The Kubernetes executor: rollout restart, scale and undo through the official client."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Any

from aurora.remedy.executors.base import ExecRequest, ExecResult, render

MAX_REPLICAS = 100  # scale: the default cap (params.max_replicas)


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
