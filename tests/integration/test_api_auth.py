"""Tokens and scopes through a real server."""

from __future__ import annotations

from tests.integration.server import ServerProcess


def test_scopes(server: ServerProcess) -> None:
    with server.client(None) as anon:
        assert anon.get("/healthz").status_code == 200
        assert anon.get("/readyz").status_code == 200
        r = anon.get("/api/v1/status")
        assert r.status_code == 401 and "Bearer" in r.json()["message"]
        assert anon.get("/metrics").status_code == 401
        assert anon.post("/api/v1/ingest", json={"series": []}).status_code == 401
    with server.client() as admin:
        r = admin.post("/api/v1/tokens", json={"name": "writer", "scopes": ["ingest"]})
        assert r.status_code == 201, r.text
        writer = r.json()["token"]
        reader = admin.post("/api/v1/tokens", json={"name": "reader", "scopes": ["read"]}).json()["token"]
        assert admin.post("/api/v1/tokens", json={"name": "x", "scopes": ["root"]}).status_code == 400
    with server.client(writer) as w:
        assert w.post("/api/v1/ingest", json={"series": []}).status_code == 200
        assert w.get("/api/v1/status").status_code == 403
    with server.client(reader) as rd:
        assert rd.get("/api/v1/status").status_code == 200
        assert rd.post("/api/v1/ingest", json={"series": []}).status_code == 403
        assert rd.get("/api/v1/tokens").status_code == 403
        assert "aurora_ingested_samples" in rd.get("/metrics").text
    with server.client(None) as bad:
        bad.headers["Authorization"] = "Bearer aur_not-a-real-token"
        assert bad.get("/api/v1/status").status_code == 401


def test_first_start_writes_admin_token_file(tmp_path) -> None:
    srv = ServerProcess(tmp_path / "d")
    srv.env.pop("AURORA_ADMIN_TOKEN")
    srv.start()
    try:
        path = tmp_path / "d" / "admin.token"
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
        token = path.read_text().strip()
        with srv.client(token) as c:
            assert c.get("/api/v1/tokens").status_code == 200
        assert token in (tmp_path / "d" / "server.log").read_text()  # printed once at first start
    finally:
        srv.stop()


def test_grafana_data_source_probes(server: ServerProcess) -> None:
    """What Grafana's Prometheus data source calls when it is saved and when it builds its query editor."""
    with server.client() as c:
        r = c.post("/api/v1/query", data={"query": "1+1", "time": "1700000000"})
        assert r.status_code == 200 and r.json()["data"]["result"] == [1700000000, "2"]
        assert c.get("/api/v1/status/buildinfo").json()["status"] == "success"
        assert c.get("/api/v1/metadata").json() == {"status": "success", "data": {}}
        assert c.get("/api/v1/labels").json()["status"] == "success"
        bad = c.get("/api/v1/query_range", params={"query": "rate(x[5m]", "start": 1, "end": 2, "step": 1})
        assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
