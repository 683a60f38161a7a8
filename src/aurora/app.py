"""The composition root: builds every stage from the configuration and wires them together.

The web layer depends on this object; nothing here imports the web layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from aurora import __version__
from aurora.auth import TokenStore, ensure_admin_token
from aurora.bus import EventBus
from aurora.clock import EventClock
from aurora.config import AuroraConfig
from aurora.db.database import create_db_engine, migrate
from aurora.db.tables import audit_log
from aurora.detect.checkpoint import load_checkpoint, save_checkpoint
from aurora.detect.ensemble import EnsembleDetector
from aurora.detect.stage import CHECKPOINT_FILE, AnomalyLog, DetectionConfig, DetectStage, ensemble_config
from aurora.incidents.engine import IncidentEngine, settings_from_config
from aurora.incidents.service import IncidentService
from aurora.incidents.severity import USER_FACING_TIERS
from aurora.incidents.signals import from_alert, from_anomaly, from_prediction
from aurora.incidents.store import IncidentStore
from aurora.ingest.alertmanager import AlertLog
from aurora.ingest.events import ChangeEvent, EventLog
from aurora.ingest.otlp_traces import SpanBatch
from aurora.ingest.validate import drop_empty, validate_batch
from aurora.model import SeriesBatch
from aurora.notify.wiring import attach as attach_notifier
from aurora.pipeline import Pipeline, Stage
from aurora.predict.lifecycle import Lifecycle
from aurora.predict.risk import risk_scores
from aurora.predict.stage import PredictStage
from aurora.predict.stage import settings_from_config as predict_settings
from aurora.predict.store import PredictionStore
from aurora.rca.live import ChangeRef
from aurora.remedy.checks import load_playbooks
from aurora.remedy.engine import RemedyEngine
from aurora.remedy.executors import (
    Executor,
    KubernetesExecutor,
    ProcessExecutor,
    ShellExecutor,
    SimExecutor,
    WebhookExecutor,
)
from aurora.remedy.guardrails import Limits
from aurora.remedy.match import explain_match, target_of
from aurora.remedy.runbooks import RunbookIndex
from aurora.remedy.store import ActionStore
from aurora.selfmetrics import SelfMetrics
from aurora.store.tsdb import TSDB, AppendResult
from aurora.topology import ServiceGraph, TopologyStage

log = logging.getLogger(__name__)
MAINTENANCE_INTERVAL_S = 30.0
LIVE_LAG_MS = 300_000  # data this close to the wall clock is live (not a backfill, replay or fast demo)


class Aurora:
    def __init__(self, cfg: AuroraConfig) -> None:
        self.cfg = cfg
        self.started_at = time.time()
        self.clock = EventClock(cfg.clock)
        cfg.storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_db_engine(cfg.database_url())
        migrate(self.engine)
        self.tsdb = TSDB(self.engine, cfg.storage.data_dir, cfg.storage, cfg.limits, self.clock)
        self.tokens = TokenStore(self.engine, cfg.server.admin_token)
        self.events = EventLog(self.engine)
        self.alerts = AlertLog(self.engine)
        self.metrics = SelfMetrics()
        self.bus = EventBus()
        self.anomalies = AnomalyLog(self.engine)
        self.incident_store = IncidentStore(self.engine)
        self.incidents = IncidentService(self.incident_store, self.record_audit, self.clock.now)
        self.topology = ServiceGraph()
        self.topology.set_declared(cfg.services)
        stages: list[Stage] = [TopologyStage(self.topology)]
        self.detect: DetectStage | None = None
        self._checkpoint_lock = threading.Lock()
        if cfg.detection.enabled:
            d = cfg.detection
            detector = EnsembleDetector(0, ensemble_config(d.quorum, d.vote, d.threshold, d.hold))
            stage = DetectStage(self.tsdb, self._record_anomalies,
                                DetectionConfig(cooldown_s=d.cooldown_s, critical=d.critical), detector)
            self.detect = stage
            self._load_detector()
            self.metrics.watch_anomaly_scores(lambda: stage.snapshot(self.clock.now_ms()))
            stages.append(stage)
            if d.homology.enabled:
                from aurora.detect.homology_stage import HomologyStage  # ripser loads only when asked for

                stages.append(HomologyStage(self.tsdb, self._record_anomalies,
                                            eval_every_s=d.homology.eval_every_s, max_metrics=d.homology.max_metrics))
        self.prediction_store = PredictionStore(self.engine)
        self.predict: PredictStage | None = None
        if cfg.prediction.enabled:
            lifecycle = Lifecycle(self.prediction_store, publish=self.bus.publish, signal=self._prediction_signals,
                                  changes=self._changes_between, signal_every_s=cfg.prediction.signal_every_s)
            lifecycle.restore()
            settings = predict_settings(cfg.prediction, cfg.services, cfg.slos)
            self.predict = PredictStage(lifecycle, settings, store=self.tsdb)
            stages.append(self.predict)
            self.metrics.watch_risk(self.risk_scores, lambda: (self.clock.now(), self.prediction_records()))
        self.incident_engine: IncidentEngine | None = None
        if cfg.incidents.enabled:
            detect = self.detect
            self.incident_engine = IncidentEngine(
                self.incident_store, self.tsdb, self.topology, self._changes_between,
                settings_from_config(cfg.incidents),
                user_facing=[s.name for s in cfg.services if s.user_facing or (s.tier or "") in USER_FACING_TIERS],
                score_of=detect.current_scores if detect is not None else None, publish=self._incident_event)
            self.incidents.on_resolve = lambda iid: self._operator_resolved(iid)
            stages.append(self.incident_engine)
        self.actions = ActionStore(self.engine)
        self.incidents.actions_of = lambda iid: self.actions.query(incident_id=iid)
        self.runbooks = RunbookIndex.from_folder(cfg.remediation.runbooks_dir)
        self.incidents.runbooks_of = self._runbooks_of
        self.remedy: RemedyEngine | None = None
        if cfg.remediation.enabled:
            self.remedy = self._remedy_engine()
            stages.append(self.remedy)
        self.pipeline = Pipeline(stages)
        self.counters: dict[str, int] = {"samples": 0, "requests": 0, "rejected": 0, "events": 0, "alerts": 0,
                                     "traces": 0, "spans": 0}
        self._collectors: list[Any] = []
        self._maintenance_task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._extra: list[Callable[[], Coroutine[Any, Any, Any]]] = []
        self._extra_tasks: list[asyncio.Task[Any]] = []
        self._lock = threading.Lock()
        self.opened = False
        self.notifier = attach_notifier(self)  # last: it hooks into the bus, the incident service and background

    def _remedy_engine(self) -> RemedyEngine:
        r = self.cfg.remediation
        playbooks = load_playbooks(r)
        self.executors: dict[str, Executor] = {
            "webhook": WebhookExecutor(), "shell": ShellExecutor(r.shell_allow),
            "process": ProcessExecutor(r.systemd_allow, r.shell_allow), "kubernetes": KubernetesExecutor()}
        store = self.incident_store
        return RemedyEngine(
            self.actions, playbooks, self.executors, store.get, self.incident_engine,
            Limits(r.max_actions_per_hour, r.breaker_failures, r.breaker_window_s), r.approval_timeout_s,
            audit=self.record_audit, publish=self.bus.publish, timeline=store.add_timeline,
            similar=lambda iid: store.similar(iid, 5))

    def _runbooks_of(self, incident: dict[str, Any]) -> list[dict[str, Any]]:
        """The runbooks for an incident: those named by the playbooks that match it, then the best matches."""
        named: list[str] = []
        t = target_of(incident)
        if t is not None and self.remedy is not None:
            named = [pb.runbook for pb in self.remedy.playbooks if pb.runbook and explain_match(pb, t) is None]
        return self.runbooks.for_incident(incident, named)

    def use_simulated_fleet(self, apply: Any) -> None:
        """Route the ``sim`` executor to a simulated fleet's ``apply_action(kind, service, t)`` (demo, benches)."""
        self.executors["sim"] = SimExecutor(apply)

    def _incident_event(self, kind: str, data: dict[str, Any]) -> None:
        self.bus.publish(kind, data)
        if self.remedy is not None:
            self.remedy.offer(data)

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self) -> str | None:
        """Open the store (replaying its WAL) and start the pipeline. Returns a newly created admin token."""
        self.tsdb.open()
        self.pipeline.start()
        self.opened = True
        return ensure_admin_token(self.tokens, self.cfg.storage.data_dir, self.cfg.server.admin_token)

    def add_background(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``factory()`` as a task alongside the server (e.g. the demo's simulated fleet)."""
        self._extra.append(factory)

    async def start_background(self) -> None:
        """Start the scraper, the host agent and periodic maintenance on the running event loop."""
        from aurora.ingest.hostagent import HostAgent
        from aurora.ingest.scrape import Scraper

        async def sink(batch: SeriesBatch, source: str) -> None:
            try:
                await asyncio.to_thread(self.ingest, batch, source)
            except Exception as exc:
                log.warning("%s batch not stored: %s", source, exc)

        if self.cfg.scrape:
            scraper = Scraper(self.cfg.scrape, lambda b: sink(b, "scrape"))
            await scraper.start()
            self._collectors.append(scraper)
        if self.cfg.host_agent.enabled:
            agent = HostAgent(self.cfg.host_agent)
            await agent.start(lambda b: sink(b, "host_agent"))
            self._collectors.append(agent)
        self._maintenance_task = asyncio.create_task(self._maintenance_loop())
        if self.detect is not None and self.cfg.detection.checkpoint_s > 0:
            self._checkpoint_task = asyncio.create_task(self._checkpoint_loop(self.cfg.detection.checkpoint_s))
        for factory in self._extra:
            task = asyncio.create_task(factory())
            task.add_done_callback(self._report_task_end)
            self._extra_tasks.append(task)

    @staticmethod
    def _report_task_end(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def stop_background(self) -> None:
        for task in self._extra_tasks:
            task.cancel()
        for task in self._extra_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._extra_tasks.clear()
        for c in self._collectors:
            with contextlib.suppress(Exception):
                await c.stop()
        self._collectors.clear()
        for name in ("_maintenance_task", "_checkpoint_task"):
            bg: asyncio.Task[None] | None = getattr(self, name)
            if bg is not None:
                bg.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bg
                setattr(self, name, None)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            try:
                await asyncio.to_thread(self.maintenance)
            except Exception:
                log.exception("maintenance failed")

    async def _checkpoint_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.save_detector)
            except Exception:
                log.exception("detector checkpoint failed")

    @property
    def detector_checkpoint_path(self) -> Path:
        return self.cfg.storage.data_dir / CHECKPOINT_FILE

    def save_detector(self, force: bool = False) -> bool:
        """Write the detection stage's state to the data dir (atomically), if it changed since the last
        save or load (or ``force``). Returns whether a checkpoint was written."""
        if self.detect is None or not (force or self.detect.dirty):
            return False
        with self._checkpoint_lock:
            arrays, meta = self.detect.checkpoint()
            try:
                save_checkpoint(self.detector_checkpoint_path, arrays, meta)
            except Exception:
                self.detect.dirty = True  # try again next time
                raise
        return True

    def _load_detector(self) -> None:
        assert self.detect is not None
        found = load_checkpoint(self.detector_checkpoint_path)
        if found is not None and self.detect.restore(*found):
            log.info("detector state restored from %s (%d series)", self.detector_checkpoint_path,
                     len(found[0].get("stage.last_t", ())))

    def maintenance(self) -> None:
        """Flush old partial chunks and enforce retention (both in event time); with a wall clock and live
        data, let the incident and remediation engines notice silence (quiet incidents mitigate, verifications
        and approvals come due, even when no batch arrives)."""
        self.tsdb.enforce_retention(self.clock.now_ms())
        wm = self.clock.watermark_ms
        if self.clock.mode == "wall" and wm is not None and self.clock.wall_ms() - wm < LIVE_LAG_MS:
            if self.incident_engine is not None:
                self.incident_engine.step(self.clock.now())
            if self.remedy is not None:  # verifications, approvals and rechecks come due without new data too
                self.remedy.step(self.clock.now())

    def close(self) -> None:
        self.pipeline.stop()
        if self.remedy is not None:
            self.remedy.close()
        try:
            self.save_detector()
        except Exception:
            log.exception("detector checkpoint on shutdown failed")
        if self.opened:
            self.tsdb.close()
            self.opened = False
        self.engine.dispose()

    # --- ingest ----------------------------------------------------------------------------------
    def ingest(self, batch: SeriesBatch, source: str, sync: bool = False) -> int:
        """Validate, store durably, hand to the pipeline. Returns samples accepted. Raises a 4xx error
        (and stores nothing) on bad input."""
        result = self.store_batch(batch, source, sync)
        self.tsdb.commit(result.wal_position)
        return result.accepted

    def store_batch(self, batch: SeriesBatch, source: str, sync: bool = False) -> AppendResult:
        """``ingest`` without the final WAL fsync: the caller must ``tsdb.commit(result.wal_position)``
        before acknowledging (an event-loop caller runs that fsync in a thread, grouped with others)."""
        try:
            known = self.tsdb.known_ids(batch.metrics, batch.labels)
            batch, known = drop_empty(validate_batch(batch, self.cfg.limits, self.clock, known), known)
            result = self.tsdb.append(batch, known, defer_commit=True)
        except Exception as exc:
            self.counters["rejected"] += 1
            self.metrics.requests_rejected.labels(source, getattr(exc, "code", "error")).inc()
            raise
        self.counters["requests"] += 1
        self.counters["samples"] += result.accepted
        self.metrics.samples_ingested.labels(source).inc(result.accepted)
        if result.duplicates:
            self.metrics.duplicates.labels(source).inc(result.duplicates)
        fut = self.pipeline.submit(batch, np.asarray(result.series_ids), self.clock.now_ms())
        if sync:
            fut.result(timeout=60)
        return result

    def ingest_traces(self, spans: SpanBatch) -> int:
        """Merge a decoded (so already validated) OTLP trace export into the topology; count it as one
        ``traces`` request and its spans. Span end times are event time: they advance the watermark."""
        self.topology.add_spans(spans)
        if spans.n:
            self.clock.observe_ms(int(spans.end_ms.max()))
        with self._lock:
            self.counters["traces"] += 1
            self.counters["spans"] += spans.n
        return spans.n

    def record_audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Write one audit_log row (wall-clock time: when a person acted, not the data's time)."""
        with self.engine.begin() as conn:
            conn.execute(insert(audit_log).values(time=time.time(), actor=actor, action=action, target=target,
                                                  detail=json.dumps(detail, sort_keys=True)))

    def service_incidents(self) -> dict[str, str]:
        """Service -> highest severity among its open or mitigated incidents (for topology health)."""
        return self.incident_store.service_severities()

    def add_events(self, evs: list[ChangeEvent]) -> list[int]:
        """Store change events, count them and announce them on the live stream."""
        ids = self.events.add(evs)
        self.counters["events"] += len(ids)
        self.topology.add_services({ev.service for ev in evs}, "events")  # a deployed service exists
        for ev, eid in zip(evs, ids, strict=True):
            self.bus.publish("change_event", {"id": eid, "kind": ev.kind, "service": ev.service, "time": ev.time})
        return ids

    def _changes_between(self, start: float, end: float) -> list[ChangeRef]:
        return [ChangeRef(e["kind"], e["service"], e["time"], e.get("attributes") or {})
                for e in self.events.query(None, None, start, end, 1000)]

    def _operator_resolved(self, incident_id: int) -> None:
        if self.incident_engine is not None:
            self.incident_engine.resolved_by_operator(incident_id, self.clock.now())

    def add_alerts(self, items: list[dict[str, Any]]) -> int:
        """Store Alertmanager alerts (parsed), announce them, and hand them to the incident engine."""
        n = self.alerts.upsert(items)
        self.counters["alerts"] += n
        self.topology.add_services({str(it["service"]) for it in items if it.get("service")}, "alerts")
        for it in items:
            self.bus.publish("alert", {"fingerprint": it["fingerprint"], "status": it["status"],
                                       "alertname": it["alertname"], "service": it["service"]})
        if self.incident_engine is not None and items:
            self.incident_engine.offer(from_alert(it) for it in items)
            wm = self.clock.watermark_ms
            self.incident_engine.step(self.clock.now() if wm is None else wm / 1000.0)
        return n

    def _prediction_signals(self, records: list[dict[str, Any]]) -> None:
        if self.incident_engine is not None:
            self.incident_engine.offer(from_prediction(r) for r in records)

    def prediction_records(self, service: str | None = None, active: bool = True, **filters: Any
                           ) -> list[dict[str, Any]]:
        """Predictions as ``GET /api/v1/predictions`` shows them (active ones by default), newest first."""
        return self.prediction_store.query(service=service, active=active, **filters)

    def risk_scores(self) -> list[dict[str, Any]]:
        """Per service ``{service, risk 0-100, factors}`` (``aurora.predict.risk``), riskiest first, as of
        the current event time."""
        now = self.clock.now()
        services = [s.name for s in self.cfg.services]
        rate: dict[str, float] = {}
        if self.detect is not None:
            snap = self.detect.snapshot(self.clock.now_ms())
            rate = snap.rate
            services += sorted(set(snap.service) - set(services) - {""})
        incidents = [i for st in ("open", "mitigated") for i in self.incident_store.list(status=st, limit=200)]
        changes = self.events.query(None, None, now - 7200.0, now, 1000)
        return risk_scores(now, services, self.prediction_records(), rate, incidents, changes)

    def _record_anomalies(self, records: list[dict[str, Any]]) -> None:
        self.anomalies.add(records)
        if self.incident_engine is not None:
            self.incident_engine.offer(from_anomaly(r) for r in records)
        for r in records:
            self.metrics.anomalies.labels(r["service"] or "").inc()
            self.bus.publish("anomaly", {k: r[k] for k in ("time", "service", "metric", "score", "severity",
                                                          "explanation")})

    # --- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        stats = self.tsdb.stats()
        wm = self.clock.watermark_ms
        return {
            "version": __version__,
            "clock": self.clock.mode,
            "data_time": None if wm is None else wm / 1000,
            "now": self.clock.now(),
            "started_at": self.started_at,
            "uptime_s": time.time() - self.started_at,
            "database": self.engine.dialect.name,
            "counters": {**self.counters, "pipeline_queue": self.pipeline.qsize()},
            "storage": stats,
            "targets": self.targets(),
        }

    def targets(self) -> list[dict[str, Any]]:
        """Health of every scrape target."""
        return [t for c in self._collectors if hasattr(c, "targets") for t in c.targets()]

    def refresh_gauges(self) -> None:
        stats = self.tsdb.stats()
        self.metrics.series.set(stats.get("series", 0))
        self.metrics.head_samples.set(stats.get("head_samples", 0))
        wm = self.clock.watermark_ms
        if wm is not None:
            self.metrics.watermark.set(wm / 1000)
        self.metrics.pipeline_lag.set(self.pipeline.qsize())
        if self.detect is not None:
            self.metrics.samples_scored.set(self.detect.samples_scored)
