"""The simulated fleet: determinism, seasonality, fault signatures with ground truth, propagation, remediation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aurora.sim import CATALOGUE, DEFAULT_START, Fleet, demo_schedule, get_scenario, simulate
from aurora.sim.faults import FIXES, KINDS

STEP = 15.0
MIN = 60.0


def col(fleet: Fleet, metric: str, **labels: str) -> int:
    return fleet.series_index(metric, **labels)


def rate(values: np.ndarray, step: float = STEP) -> np.ndarray:
    """Per-second rate of a counter column, zero across resets (as Prometheus' rate would skip them)."""
    d = np.diff(values, prepend=values[0]) / step
    return np.where(d < 0, 0.0, d)


def window(ts: np.ndarray, a: float, b: float) -> np.ndarray:
    t = ts / 1000.0
    return (t >= a) & (t < b)


@pytest.fixture(scope="module")
def baseline() -> tuple[Fleet, np.ndarray, np.ndarray]:
    return simulate(CATALOGUE["fault_free"], seed=7, hours=9)


def run(name: str, hours: float | None = None) -> tuple[Fleet, np.ndarray, np.ndarray, dict]:
    sc = CATALOGUE[name]
    fleet, ts, v = simulate(sc, seed=7, hours=hours)
    return fleet, ts, v, sc.ground_truth(DEFAULT_START)[0]


# --- determinism and shape -------------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_chunking_does_not_matter() -> None:
    sc = CATALOGUE["memory_leak"]
    a = Fleet(seed=3, faults=sc.at(DEFAULT_START))
    b = Fleet(seed=3, faults=sc.at(DEFAULT_START))
    ba = a.generate(1200)
    parts = [b.generate(n) for n in (1, 99, 500, 600)]
    ts_b = np.concatenate([p.ts_ms.reshape(p.n_series, -1) for p in parts], axis=1)
    vb = np.concatenate([p.values.reshape(p.n_series, -1) for p in parts], axis=1)
    assert np.array_equal(ba.ts_ms.reshape(ba.n_series, -1), ts_b)
    assert ba.values.reshape(ba.n_series, -1).tobytes() == vb.tobytes()
    assert ba.metrics == parts[0].metrics and ba.labels == parts[0].labels
    assert [(e.kind, e.service, e.time) for e in a.drain_events()] == [(e.kind, e.service, e.time)
                                                                        for e in b.drain_events()]
    c = Fleet(seed=4, faults=sc.at(DEFAULT_START)).generate(1200)
    assert not np.array_equal(ba.values, c.values)


def test_batch_shape_labels_and_values_are_sane() -> None:
    fleet = Fleet(seed=1)
    batch = fleet.generate(40)
    assert batch.n_series == len(fleet.series()) and batch.n_samples == 40 * batch.n_series
    assert np.all(np.diff(batch.offsets) == 40)
    assert batch.ts_ms.dtype == np.int64 and batch.values.dtype == np.float64
    assert np.all(np.isfinite(batch.values))
    assert len(set(batch.keys())) == batch.n_series
    ts0 = batch.ts_ms[:40]
    assert ts0[0] == int(DEFAULT_START * 1000) and np.all(np.diff(ts0) == 15_000)
    metrics = set(batch.metrics)
    for m in ("http_requests_total", "http_request_duration_seconds", "http_request_error_ratio",
              "process_cpu_seconds_total", "cpu_utilization_ratio", "container_memory_working_set_bytes",
              "container_spec_memory_limit_bytes", "disk_used_bytes", "disk_capacity_bytes", "db_connections_open",
              "db_connections_max", "queue_depth", "cache_hit_ratio", "model_accuracy_ratio",
              "model_prediction_drift_score", "model_inference_latency_seconds", "node_cpu_utilization_ratio",
              "node_memory_used_bytes", "node_memory_total_bytes"):
        assert m in metrics, m
    for m, lab in zip(batch.metrics, batch.labels, strict=True):
        assert "host" in lab and "instance" in lab
        if not m.startswith("node_"):
            assert "service" in lab
    v = batch.values.reshape(batch.n_series, -1)
    for i, m in enumerate(batch.metrics):
        if m.endswith("_ratio"):
            assert v[i].min() >= 0 and v[i].max() <= 1, m
        if m.endswith("_total"):
            assert np.all(np.diff(v[i]) >= 0), m  # counters only go up (no restarts here)
    q = [fleet.series_index("http_request_duration_seconds", service="gateway", quantile=x)
         for x in ("0.5", "0.9", "0.99")]
    assert np.all(v[q[0]] <= v[q[1]]) and np.all(v[q[1]] <= v[q[2]])


def test_topology_is_data() -> None:
    topo = {t["service"]: t for t in Fleet().topology()}
    assert set(topo) == {"gateway", "web", "catalog", "cart", "checkout", "payment", "inventory", "postgres", "redis",
                         "queue", "worker", "recommender"}
    assert topo["gateway"]["depends_on"] == ["web"]
    assert set(topo["web"]["depends_on"]) == {"catalog", "cart", "checkout", "recommender"}
    assert set(topo["checkout"]["depends_on"]) == {"payment", "inventory", "postgres", "queue"}
    assert topo["queue"]["depends_on"] == ["worker"]
    assert {t["host"] for t in topo.values()} == {"host-a", "host-b", "host-c"}
    assert topo["postgres"]["kind"] == "database" and topo["recommender"]["kind"] == "model"
    assert topo["catalog"]["limits"]["memory_bytes"] > 0


def test_day_generation_speed() -> None:
    t0 = time.perf_counter()
    fleet = Fleet(seed=0)
    batch = fleet.generate(5760)
    elapsed = time.perf_counter() - t0
    print(f"\none day of the fleet at 15 s: {batch.n_samples} samples in {elapsed:.2f} s")
    assert batch.n_samples == 5760 * len(fleet.series())
    assert elapsed < 60  # loose: the figure that matters is printed and in the README


# --- traffic ---------------------------------------------------------------------------------------
def test_daily_and_weekly_seasonality() -> None:
    start = DEFAULT_START - 6 * 3600  # Monday 00:00 UTC
    fleet = Fleet(seed=2, start=start, step_s=300.0)
    ts, v = fleet.generate_matrix(7 * 288)
    r = rate(v[:, col(fleet, "http_requests_total", service="gateway", code="2xx")], 300.0)
    hours = (ts / 1000 % 86400) / 3600
    day = (ts / 1000 - start) // 86400
    weekday = day < 5
    afternoon = r[weekday & (hours >= 14) & (hours < 16)].mean()
    night = r[weekday & (hours >= 2) & (hours < 4)].mean()
    assert afternoon > 2.5 * night
    assert r[~weekday].mean() < 0.85 * r[weekday].mean()
    # load flows down the graph: web calls catalog 0.9 times per request
    rc = rate(v[:, col(fleet, "http_requests_total", service="catalog", code="2xx")], 300.0)
    assert 0.8 < rc[1:].sum() / r[1:].sum() < 1.0


def test_faults_do_not_shift_the_noise_before_onset(baseline: tuple[Fleet, np.ndarray, np.ndarray]) -> None:
    for name in ("memory_leak", "slow_database", "cache_failure"):
        _fleet, ts, v, gt = run(name)
        v0 = baseline[2][: len(v)]
        pre = ts / 1000 < gt["onset"]
        assert v[pre].tobytes() == v0[pre].tobytes(), name
        assert not np.array_equal(v[~pre], v0[~pre]), name


# --- the catalogue and its ground truth ------------------------------------------------------------
def test_catalogue_ground_truth_is_complete() -> None:
    assert "fault_free" in CATALOGUE and not CATALOGUE["fault_free"].faults
    kinds = {f.kind for s in CATALOGUE.values() for f in s.faults}
    assert kinds == set(KINDS)
    for sc in [*CATALOGUE.values(), demo_schedule()]:
        for gt in sc.ground_truth(1000.0):
            assert set(gt) >= {"onset", "root_cause_service", "root_cause_metric", "breach_time", "fix"}
            assert gt["fix"] in FIXES
            assert gt["onset"] >= 1000.0
            if KINDS[gt["kind"]].breaches:
                assert gt["breach_time"] > gt["onset"]
            else:
                assert gt["breach_time"] is None
    slow = [CATALOGUE[n].ground_truth(0)[0] for n in ("slow_memory_leak", "slow_disk_fill", "slow_pool_leak")]
    assert all(3 * 3600 <= g["breach_time"] - g["onset"] <= 6 * 3600 for g in slow)
    demo = demo_schedule()
    onsets = [g["onset"] for g in demo.ground_truth(0)]
    assert len(onsets) >= 5 and onsets == sorted(onsets)
    assert get_scenario("demo").name == "demo"
    with pytest.raises(KeyError):
        get_scenario("nope")


@pytest.mark.parametrize("name", [n for n, s in CATALOGUE.items() if s.faults])
def test_root_cause_metric_moves_after_onset_and_not_before(name: str) -> None:
    fleet, ts, v, gt = run(name)
    _, _, v0 = simulate(CATALOGUE["fault_free"], seed=7, hours=CATALOGUE[name].hours)
    lab = {"service": gt["root_cause_service"]}
    if gt["root_cause_metric"] == "http_request_duration_seconds":
        lab["quantile"] = "0.5"
    if gt["root_cause_metric"] == "http_requests_total":
        lab["code"] = "2xx"
    j = col(fleet, gt["root_cause_metric"], **lab)
    pre = ts / 1000 < gt["onset"]
    assert np.array_equal(v[pre, j], v0[pre, j])
    end = gt["breach_time"] or gt["onset"] + 30 * MIN
    post = window(ts, gt["onset"] + 5 * MIN, end)
    assert np.abs(v[post, j] - v0[post, j]).mean() > 0.02 * np.abs(v0[post, j]).mean()
    breach = fleet.observed_breaches()[0]
    if gt["breach_time"] is None:
        assert breach is None
    else:
        assert breach is not None and abs(breach - gt["breach_time"]) <= STEP


def test_memory_leak_climbs_to_the_limit_then_oom_restart() -> None:
    fleet, ts, v, gt = run("memory_leak")
    m = v[:, col(fleet, "container_memory_working_set_bytes", service="catalog")]
    limit = v[0, col(fleet, "container_spec_memory_limit_bytes", service="catalog")]
    t = ts / 1000
    growing = window(ts, gt["onset"], gt["breach_time"])
    slope = np.polyfit(t[growing] - gt["onset"], m[growing], 1)[0]
    assert slope == pytest.approx(limit * 0.5 / (45 * MIN), rel=0.05)
    k = int(np.argmax(t >= gt["breach_time"]))
    assert m[k - 1] > 0.98 * limit and m[k] < 0.6 * limit
    assert m.max() <= limit
    err = v[:, col(fleet, "http_request_error_ratio", service="catalog")]
    assert err[k: k + 3].max() > 0.3 and err[t < gt["onset"]].max() < 0.05
    restarts = [e for e in fleet.drain_events() if e.kind == "restart"]
    assert restarts and restarts[0].service == "catalog" and restarts[0].attributes["reason"] == "OOMKilled"
    assert abs(restarts[0].time - gt["breach_time"]) <= STEP
    ok = v[:, col(fleet, "http_requests_total", service="catalog", code="2xx")]
    assert ok[k] < ok[k - 1]  # the counter resets with the process


def test_disk_fills_to_capacity_at_breach_time() -> None:
    for name in ("disk_fill", "slow_disk_fill"):
        fleet, ts, v, gt = run(name)
        svc = gt["root_cause_service"]
        used = v[:, col(fleet, "disk_used_bytes", service=svc)]
        cap = v[0, col(fleet, "disk_capacity_bytes", service=svc)]
        t = ts / 1000
        assert used[t < gt["onset"]].max() < 0.7 * cap
        full = t[used >= cap]
        assert full.size and abs(full[0] - gt["breach_time"]) <= STEP
        errs = v[:, col(fleet, "http_request_error_ratio", service=svc)]
        assert errs[t > gt["breach_time"] + STEP].mean() > 0.5


def test_pool_exhaustion_reaches_max_then_errors() -> None:
    for name in ("pool_exhaustion", "slow_pool_leak"):
        fleet, ts, v, gt = run(name)
        svc = gt["root_cause_service"]
        open_ = v[:, col(fleet, "db_connections_open", service=svc)]
        mx = v[0, col(fleet, "db_connections_max", service=svc)]
        t = ts / 1000
        assert open_[t < gt["onset"]].max() <= 3
        at_max = t[open_ >= mx]
        assert at_max.size and abs(at_max[0] - gt["breach_time"]) <= STEP
        err = v[:, col(fleet, "http_request_error_ratio", service=svc)]
        assert err[t > gt["breach_time"] + 30 * MIN].mean() > 0.5


def test_cpu_saturation_and_traffic_surge() -> None:
    fleet, ts, v, gt = run("cpu_saturation")
    cpu = v[:, col(fleet, "cpu_utilization_ratio", service="cart")]
    assert cpu[window(ts, gt["onset"] - 30 * MIN, gt["onset"])].max() < 0.5
    assert cpu[window(ts, gt["onset"] + 15 * MIN, gt["onset"] + 45 * MIN)].mean() > 0.9

    fleet, ts, v, gt = run("traffic_surge")
    r = rate(v[:, col(fleet, "http_requests_total", service="gateway", code="2xx")])
    r += rate(v[:, col(fleet, "http_requests_total", service="gateway", code="5xx")])
    before = window(ts, gt["onset"] - 20 * MIN, gt["onset"])
    during = window(ts, gt["onset"] + 10 * MIN, gt["onset"] + 40 * MIN)
    assert r[during].mean() > 2 * r[before].mean()
    web_cpu = v[:, col(fleet, "cpu_utilization_ratio", service="web")]
    assert web_cpu[during].mean() > 0.95
    gw_err = v[:, col(fleet, "http_request_error_ratio", service="gateway")]
    assert gw_err[during].mean() > 5 * gw_err[before].mean()
    after = window(ts, gt["end"] + 10 * MIN, gt["end"] + 30 * MIN)
    assert r[after].mean() < 1.3 * r[before].mean()


def test_slow_database_raises_callers_and_gateway_latency(baseline: tuple[Fleet, np.ndarray, np.ndarray]) -> None:
    fleet, ts, v, gt = run("slow_database")
    v0 = baseline[2][: len(v)]
    during = window(ts, gt["onset"] + 5 * MIN, gt["end"])
    for svc, factor in (("postgres", 5.0), ("checkout", 1.5), ("catalog", 1.2), ("gateway", 1.15)):
        j = col(fleet, "http_request_duration_seconds", service=svc, quantile="0.5")
        assert v[during, j].mean() > factor * v0[during, j].mean(), svc
    j = col(fleet, "http_request_duration_seconds", service="payment", quantile="0.5")
    assert v[during, j].mean() < 1.1 * v0[during, j].mean()  # payment does not use the database
    after = window(ts, gt["end"] + 5 * MIN, gt["end"] + 30 * MIN)
    j = col(fleet, "http_request_duration_seconds", service="gateway", quantile="0.5")
    assert v[after, j].mean() < 1.05 * v0[after, j].mean()


def test_outage_cascades_to_checkout_and_gateway(baseline: tuple[Fleet, np.ndarray, np.ndarray]) -> None:
    fleet, ts, v, gt = run("dependency_outage")
    v0 = baseline[2][: len(v)]
    during = window(ts, gt["onset"] + MIN, gt["end"])
    err = lambda s, x=v: x[during, col(fleet, "http_request_error_ratio", service=s)].mean()  # noqa: E731
    assert err("payment") > 0.99
    assert err("checkout") > 0.9
    assert err("gateway") > 5 * err("gateway", v0)
    assert err("catalog") < 0.01  # not on the failing path
    five = rate(v[:, col(fleet, "http_requests_total", service="gateway", code="5xx")])
    five0 = rate(v0[:, col(fleet, "http_requests_total", service="gateway", code="5xx")])
    assert five[during].mean() > 5 * five0[during].mean()
    assert v[during, col(fleet, "up", service="payment")].max() == 0


def test_bad_deployment_event_then_errors() -> None:
    fleet, ts, v, gt = run("bad_deployment")
    deploys = [e for e in fleet.drain_events() if e.kind == "deployment" and e.service == "cart"]
    assert any(e.time == gt["onset"] and e.attributes["version"] == "1.4.3" for e in deploys)
    err = v[:, col(fleet, "http_request_error_ratio", service="cart")]
    assert err[window(ts, gt["onset"] - 30 * MIN, gt["onset"])].max() < 0.02
    assert err[window(ts, gt["onset"] + 2 * MIN, gt["onset"] + 30 * MIN)].mean() > 0.1


def test_cache_failure_raises_db_load_and_latency(baseline: tuple[Fleet, np.ndarray, np.ndarray]) -> None:
    fleet, ts, v, gt = run("cache_failure")
    v0 = baseline[2][: len(v)]
    during = window(ts, gt["onset"] + 5 * MIN, gt["onset"] + 60 * MIN)
    assert v[during, col(fleet, "cache_hit_ratio", service="redis")].mean() < 0.2
    j = col(fleet, "http_requests_total", service="postgres", code="2xx")
    assert rate(v[:, j])[during].mean() > 2.5 * rate(v0[:, j])[during].mean()
    j = col(fleet, "http_request_duration_seconds", service="postgres", quantile="0.5")
    assert v[during, j].mean() > 1.5 * v0[during, j].mean()
    j = col(fleet, "http_request_duration_seconds", service="catalog", quantile="0.5")
    assert v[during, j].mean() > 1.3 * v0[during, j].mean()


def test_model_drift_accuracy_falls_below_threshold_at_breach() -> None:
    fleet, ts, v, gt = run("model_drift")
    acc = v[:, col(fleet, "model_accuracy_ratio", service="recommender")]
    drift = v[:, col(fleet, "model_prediction_drift_score", service="recommender")]
    t = ts / 1000
    assert acc[t < gt["onset"]].mean() > 0.9
    assert acc[window(ts, gt["breach_time"] - 20 * MIN, gt["breach_time"] - 10 * MIN)].mean() > 0.85
    assert acc[window(ts, gt["breach_time"] + 10 * MIN, gt["breach_time"] + 20 * MIN)].mean() < 0.85
    assert drift[t > gt["breach_time"]].mean() > 3 * drift[t < gt["onset"]].mean()


# --- remediation -----------------------------------------------------------------------------------
def fleet_at(name: str, minutes_after_onset: float) -> tuple[Fleet, dict]:
    sc = CATALOGUE[name]
    fleet = Fleet(seed=7, faults=sc.at(DEFAULT_START))
    gt = sc.ground_truth(DEFAULT_START)[0]
    fleet.generate(round((gt["onset"] + minutes_after_onset * MIN - DEFAULT_START) / STEP))
    return fleet, gt


def test_restart_clears_a_leak() -> None:
    fleet, _gt = fleet_at("memory_leak", 30)
    j = col(fleet, "container_memory_working_set_bytes", service="catalog")
    limit = fleet.mem_limit[fleet.index["catalog"]]
    res = fleet.apply_action("restart", "catalog")
    assert res.effective
    _, v = fleet.generate_matrix(round(3 * 3600 / STEP))
    assert v[1:, j].max() < 0.55 * limit  # back to base and flat: no more OOM
    assert not [e for e in fleet.drain_events() if e.attributes.get("reason") == "OOMKilled"]


def test_rollback_ends_errors_and_a_wrong_fix_does_not() -> None:
    fixed, _gt = fleet_at("bad_deployment", 10)
    wrong, _ = fleet_at("bad_deployment", 10)
    j = col(fixed, "http_request_error_ratio", service="cart")
    assert fixed.apply_action("rollback", "cart").effective
    evs = [e for e in fixed.drain_events() if e.kind == "rollback"]
    assert evs and evs[-1].attributes["from_version"] == "1.4.3"
    assert not wrong.apply_action("restart", "cart").effective
    assert not wrong.apply_action("cache_flush", "redis").effective
    _, vf = fixed.generate_matrix(120)
    _, vw = wrong.generate_matrix(120)
    assert vf[20:, j].mean() < 0.02
    assert vw[20:, j].mean() > 0.1


def test_scale_out_relieves_a_surge() -> None:
    fleet, _gt = fleet_at("traffic_surge", 10)
    j = col(fleet, "cpu_utilization_ratio", service="web")
    e = col(fleet, "http_request_error_ratio", service="gateway")
    _, before = fleet.generate_matrix(20)
    assert fleet.apply_action("scale_out", "web").effective
    _, after = fleet.generate_matrix(40)
    assert before[:, j].mean() > 0.95 and after[:, j].mean() < 0.8
    assert after[:, e].mean() < 0.3 * before[:, e].mean()
    assert [ev for ev in fleet.drain_events() if ev.kind == "scale" and ev.attributes["replicas"] == 6]


def test_cache_flush_and_failover_restore() -> None:
    fleet, _ = fleet_at("cache_failure", 20)
    assert fleet.apply_action("cache_flush", "redis").effective
    _, v = fleet.generate_matrix(80)
    assert v[-20:, col(fleet, "cache_hit_ratio", service="redis")].mean() > 0.85

    fleet, _ = fleet_at("dependency_outage", 10)
    assert not fleet.apply_action("restart", "checkout").effective
    assert fleet.apply_action("failover", "payment").effective
    _, v = fleet.generate_matrix(40)
    assert v[-20:, col(fleet, "http_request_error_ratio", service="payment")].mean() < 0.02

    fleet, _ = fleet_at("slow_database", 10)
    j = col(fleet, "http_request_duration_seconds", service="postgres", quantile="0.5")
    _, before = fleet.generate_matrix(4)
    assert fleet.apply_action("failover", "postgres").effective
    _, after = fleet.generate_matrix(40)
    assert after[10:, j].mean() < 0.3 * before[:, j].mean()


def test_scheduled_action_applies_at_its_time() -> None:
    fleet, gt = fleet_at("pool_exhaustion", 0)
    at = gt["onset"] + 10 * MIN
    res = fleet.apply_action("restart", "checkout", at)
    assert res.scheduled
    ts, v = fleet.generate_matrix(round(40 * MIN / STEP))
    open_ = v[:, col(fleet, "db_connections_open", service="checkout")]
    assert open_[ts / 1000 < at].max() > 5 and open_[ts / 1000 > at].max() <= 3
    assert fleet.observed_breaches() == [None]
    with pytest.raises(ValueError):
        fleet.apply_action("reboot", "checkout")
    with pytest.raises(KeyError):
        fleet.apply_action("restart", "nope")
