"""The kubernetes executor through the official client against a loopback API server: real HTTP, the client's
own serialisation and content types, a kubeconfig as a user would have one (the ``k8s`` extra is in the
development lock, so this always runs). The server keeps one Deployment
and, as the deployment controller would, a ReplicaSet per template revision."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from aurora.remedy.executors import ExecRequest, KubernetesExecutor

NS, NAME = "shop", "cart"
BASE = f"/apis/apps/v1/namespaces/{NS}"


def _json_patch(into: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """RFC 6902 ``replace`` and ``add`` of an object member (all the executor sends)."""
    for op in ops:
        assert op["op"] in ("replace", "add"), op
        *parents, last = op["path"].lstrip("/").split("/")
        node = into
        for key in parents:
            node = node[key]
        node[last] = copy.deepcopy(op["value"])


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (what a strategic merge patch does to maps; the executor sends no lists to merge)."""
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


class FakeApiServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.deployment: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NS, "uid": "dep-uid",
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": NAME}},
                     "template": self._template("shop/cart:1.4.3")},
        }
        self.replica_sets = [self._replica_set(1, "shop/cart:1.4.2"), self._replica_set(2, "shop/cart:1.4.3")]
        self.hang_s = 0.0  # a hung API server: each request waits this long (or until stop) before it is handled
        self.released = threading.Event()
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, obj: dict[str, Any]) -> None:
                body = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a hung-server test)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.hang_s:
                    server.released.wait(server.hang_s)
                with lock:
                    server.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query),
                                            "content_type": self.headers.get("Content-Type"),
                                            "body": json.loads(raw) if raw else None})
                    code, obj = server.route(method, url.path, parse_qs(url.query), json.loads(raw) if raw else None)
                self._answer(code, obj)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @staticmethod
    def _template(image: str) -> dict[str, Any]:
        return {"metadata": {"labels": {"app": NAME}}, "spec": {"containers": [{"name": NAME, "image": image}]}}

    def _replica_set(self, revision: int, image: str) -> dict[str, Any]:
        template = self._template(image)
        template["metadata"]["labels"]["pod-template-hash"] = f"h{revision}"
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{NAME}-h{revision}", "namespace": NS, "labels": {"app": NAME},
                             "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME,
                                                  "uid": "dep-uid", "controller": True}]},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": NAME}}, "template": template}}

    def image(self) -> str:
        return str(self.deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def route(self, method: str, path: str, query: dict[str, list[str]],
              body: Any) -> tuple[int, dict[str, Any]]:
        dep_path = f"{BASE}/deployments/{NAME}"
        if path == f"{BASE}/replicasets" and method == "GET":
            selector = dict(kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if kv)
            items = [rs for rs in self.replica_sets
                     if all(rs["metadata"]["labels"].get(k) == v for k, v in selector.items())]
            return 200, {"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": items}
        if path == dep_path and method == "GET":
            return 200, self.deployment
        if path == dep_path and method == "PATCH":
            assert body is not None
            before = copy.deepcopy(self.deployment["spec"]["template"])
            if isinstance(body, list):
                _json_patch(self.deployment, body)
            else:
                _merge(self.deployment, body)
            after = self.deployment["spec"]["template"]
            if after != before:  # the controller: a new template is a new revision
                rev = max(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                          for rs in self.replica_sets) + 1
                self.deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(rev)
                rs = self._replica_set(rev, str(after["spec"]["containers"][0]["image"]))
                rs["spec"]["template"] = copy.deepcopy(after)
                self.replica_sets.append(rs)
            return 200, self.deployment
        if path == f"{dep_path}/scale":
            if method == "PATCH":
                assert body is not None
                self.deployment["spec"]["replicas"] = int(body["spec"]["replicas"])
            n = int(self.deployment["spec"]["replicas"])
            return 200, {"apiVersion": "autoscaling/v1", "kind": "Scale",
                         "metadata": {"name": NAME, "namespace": NS}, "spec": {"replicas": n},
                         "status": {"replicas": n}}
        return 404, {"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                     "message": f"{path} not found"}

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server.url}}],
        "users": [{"name": "aurora", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "aurora", "namespace": NS}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod: the kubeconfig is used
    try:
        yield server
    finally:
        server.stop()


def _req(action: str, timeout_s: float = 10.0, **params: Any) -> ExecRequest:
    return ExecRequest(1, 7, "pb", action, NAME, {"namespace": NS, "deployment": "{service}", **params}, timeout_s,
                       0.0)


def test_rollout_restart_scale_and_undo_over_http_as_kubectl_would(api_server: FakeApiServer) -> None:
    ex = KubernetesExecutor()

    res = ex.run(_req("rollout_restart"))
    assert res.ok, res.output
    patch = api_server.requests[-1]
    assert (patch["method"], patch["path"]) == ("PATCH", f"{BASE}/deployments/{NAME}")
    assert patch["content_type"] == "application/strategic-merge-patch+json"
    assert "kubectl.kubernetes.io/restartedAt" in patch["body"]["spec"]["template"]["metadata"]["annotations"]
    assert api_server.replica_sets[-1]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    res = ex.run(_req("scale", by=1))
    assert res.ok and res.detail == {"replicas": 3}, res.output
    assert [(r["method"], r["path"]) for r in api_server.requests[-2:]] == [
        ("GET", f"{BASE}/deployments/{NAME}/scale"), ("PATCH", f"{BASE}/deployments/{NAME}/scale")]
    assert api_server.deployment["spec"]["replicas"] == 3

    # undo: the template of the revision before the newest (revision 2: image 1.4.3, no restart annotation)
    res = ex.run(_req("undo"))
    assert res.ok and res.detail == {"revision": 2}, res.output
    sent = api_server.requests[-1]
    assert sent["method"] == "PATCH" and sent["content_type"] == "application/json-patch+json"
    [op] = sent["body"]
    assert (op["op"], op["path"]) == ("replace", "/spec/template")
    labels = op["value"]["metadata"]["labels"]
    assert labels == {"app": NAME}  # the ReplicaSet's pod-template-hash is not copied back
    assert api_server.image() == "shop/cart:1.4.3"
    assert "kubectl.kubernetes.io/restartedAt" not in (api_server.deployment["spec"]["template"]["metadata"]
                                                       .get("annotations") or {})


def test_undo_twice_goes_back_one_revision_each_time_and_names_what_it_did(api_server: FakeApiServer) -> None:
    ex = KubernetesExecutor()
    res = ex.run(_req("undo"))  # revision 2 (1.4.3) -> the template of revision 1 (1.4.2)
    assert res.ok and res.detail == {"revision": 1}, res.output
    assert api_server.image() == "shop/cart:1.4.2"
    assert f"rolled deployment {NS}/{NAME} back to revision 1" in res.output
    listed = next(r for r in api_server.requests if r["path"].endswith("/replicasets"))
    assert listed["query"]["labelSelector"] == ["app=cart"]


def test_a_missing_deployment_fails_with_the_api_servers_reason(api_server: FakeApiServer) -> None:
    ex = KubernetesExecutor()
    res = ex.run(ExecRequest(1, 7, "pb", "rollout_restart", "nope", {"namespace": NS, "deployment": "{service}"},
                             10.0, 0.0))
    assert not res.ok
    assert f"kubernetes rollout_restart of {NS}/nope failed" in res.output and "404" in res.output


def test_scale_to_zero_scales_to_zero_and_bad_counts_are_refused_before_any_call(api_server: FakeApiServer) -> None:
    ex = KubernetesExecutor()
    res = ex.run(_req("scale", replicas=0))
    assert res.ok and res.detail == {"replicas": 0}, res.output
    assert api_server.requests[-1]["body"] == {"spec": {"replicas": 0}} and api_server.deployment["spec"][
        "replicas"] == 0
    sent = len(api_server.requests)
    neg = ex.run(_req("scale", replicas=-2))
    assert not neg.ok and neg.detail == {"refused": True}
    assert "params.replicas is -2: a deployment cannot have fewer than 0 replicas" in neg.output
    big = ex.run(_req("scale", replicas=1000))
    assert not big.ok and "above the cap of 100; set params.max_replicas to allow more" in big.output
    assert len(api_server.requests) == sent  # nothing was sent
    down = ex.run(_req("scale", by=-1))  # from 0: read the scale, then refuse
    assert not down.ok and "0 replicas now -1 (params.by) is -1" in down.output
    assert [r["method"] for r in api_server.requests[sent:]] == ["GET"]
    assert ex.run(_req("scale", replicas=150, max_replicas=200)).ok and api_server.deployment["spec"][
        "replicas"] == 150


def test_a_hung_api_server_fails_the_step_within_its_timeout(api_server: FakeApiServer) -> None:
    ex = KubernetesExecutor()
    ex.api()  # loading the client and the kubeconfig is not what is timed here
    api_server.hang_s = 10.0
    for action, params in (("rollout_restart", {}), ("scale", {"by": 1}), ("undo", {})):
        t0 = time.monotonic()
        res = ex.run(_req(action, 0.5, **params))
        assert time.monotonic() - t0 < 1.5, (action, res.output)
        assert not res.ok and f"kubernetes {action} of {NS}/{NAME} failed" in res.output
        assert "Read timed out" in res.output, res.output
