"""Aurora's configuration: one YAML file, every key overridable by ``AURORA_*`` environment variables.

Environment overrides: the documented shortcuts (``AURORA_HOST``, ``AURORA_PORT``, ``AURORA_DATA_DIR``,
``AURORA_CLOCK``, ``AURORA_DATABASE_URL``, ``AURORA_ADMIN_TOKEN``) and, for any key, the path in upper case
joined by double underscores: ``AURORA_LIMITS__MAX_SERIES_PER_REQUEST=5000``. Values are read as YAML scalars.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from aurora.config_base import Section, format_errors, read_yaml
from aurora.errors import ConfigError
from aurora.notify.config import NotificationsConfig
from aurora.remedy.config import RemediationConfig

ENV_PREFIX = "AURORA_"
ENV_SHORTCUTS: dict[str, tuple[str, ...]] = {
    "AURORA_HOST": ("server", "host"),
    "AURORA_PORT": ("server", "port"),
    "AURORA_DATA_DIR": ("storage", "data_dir"),
    "AURORA_DATABASE_URL": ("storage", "database_url"),
    "AURORA_CLOCK": ("clock",),
    "AURORA_ADMIN_TOKEN": ("server", "admin_token"),
}
NOT_CONFIG_ENV = {"AURORA_CONFIG"}


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    admin_token: str | None = Field(None, description="accepted as an admin token when set")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body (after decompression)")


class StorageConfig(Section):
    data_dir: Path = Path("./aurora-data")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    head_window: int = Field(720, ge=16, le=100_000, description="recent samples kept in memory per series")
    chunk_samples: int = Field(240, ge=16, le=65_536, description="samples per compressed chunk on disk")
    max_chunk_age_s: float = Field(7200, gt=0, description="flush a partial chunk older than this (event time)")
    wal_fsync: Literal["always", "interval", "never"] = "always"
    wal_fsync_interval_s: float = Field(1.0, gt=0)
    retention_raw_days: float = Field(15, gt=0)
    retention_1m_days: float = Field(90, gt=0)
    retention_1h_days: float = Field(730, gt=0)


class LimitsConfig(Section):
    max_series_per_request: int = Field(50_000, ge=1)
    max_samples_per_request: int = Field(1_000_000, ge=1)
    max_labels_per_series: int = Field(30, ge=1)
    max_label_name_length: int = Field(128, ge=1)
    max_label_value_length: int = Field(2048, ge=1)
    max_metric_name_length: int = Field(255, ge=1)
    max_series_per_metric: int = Field(100_000, ge=1, description="cardinality limit per metric name")
    max_future_s: float = Field(600, ge=0, description="reject samples this far ahead of the wall clock")
    min_time_s: float = Field(946_684_800, ge=0, description=(
        "reject samples and change events before this unix time (2000-01-01 by default): an earlier one is "
        "nearly always seconds sent where milliseconds were meant, or a zero timestamp"))
    non_finite: Literal["reject", "drop", "store"] = Field(
        "store", description="NaN/Inf values: store them (Prometheus semantics), drop them, or reject"
    )
    out_of_order: Literal["reject", "drop"] = Field(
        "reject", description="samples older than the series' newest: reject the request or drop them"
    )


class ScrapeJob(Section):
    name: str
    targets: list[str] = Field(min_length=1)
    interval_s: float = Field(15, gt=0)
    timeout_s: float = Field(10, gt=0)
    metrics_path: str = "/metrics"
    labels: dict[str, str] = Field(default_factory=dict)


class HostAgentConfig(Section):
    enabled: bool = True
    interval_s: float = Field(15, gt=0)
    top_processes: int = Field(5, ge=0, le=50)


class HomologySettings(Section):
    """The multivariate persistent-homology analyzer per service (``aurora.detect.homology``)."""

    enabled: bool = Field(False, description=(
        "evaluate each service's metrics as a point cloud; off by default: on the simulated fleet it caught "
        "nothing the univariate ensemble missed"))
    eval_every_s: float = Field(300, gt=0, description="event time between two evaluations of a service")
    max_metrics: int = Field(12, ge=2, le=64, description="gauges per service in the point cloud (bounds cost)")


class DetectionSettings(Section):
    """Live scoring of every stored sample by the ensemble detector (``aurora.detect.ensemble``).

    ``quorum``, ``vote``, ``threshold`` and ``hold`` default to null: the detector's own tuned defaults."""

    enabled: bool = True
    quorum: int | None = Field(None, ge=1, description=(
        "k: analyzers that must back a high score (the consensus is capped by the k-th strongest analyzer "
        "score, see aurora.detect.consensus.quorum); null: the detector's default"))
    vote: float | None = Field(None, gt=0, le=1, description=(
        "calibrated analyzer score from which an analyzer is listed as agreeing (an anomaly's detectors); "
        "null: the detector's default"))
    threshold: float | None = Field(None, gt=0, lt=1, description=(
        "base alarm threshold on the consensus score; each series raises its own while it alarms more often "
        "than the target rate; null: the detector's default"))
    hold: int | None = Field(None, ge=0, description=(
        "samples a series stays quiet after an alarm (flap suppression); null: the detector's default"))
    cooldown_s: float = Field(300, ge=0, description=(
        "at most one anomaly record per series in this much event time; also the window of "
        "aurora_anomaly_rate"))
    critical: float = Field(0.9999, gt=0, le=1, description=(
        "consensus score from which an anomaly is critical rather than a warning"))
    homology: HomologySettings = Field(default_factory=HomologySettings)
    checkpoint_s: float = Field(300, ge=0, description=(
        "save the detector's state to the data dir this often (wall time) and on shutdown, so a restart "
        "does not warm every series up again; 0: on shutdown only"))

    @model_validator(mode="after")
    def _fits_the_detector(self) -> DetectionSettings:
        from aurora.detect.ensemble import EnsembleConfig  # not at import: the detector pulls in SciPy

        base = EnsembleConfig()
        n = len(base.analyzers)
        if self.quorum is not None and self.quorum > n:
            raise ValueError(f"quorum {self.quorum} is more than the detector's {n} analyzers")
        vote = base.vote if self.vote is None else self.vote
        threshold = base.gate.threshold if self.threshold is None else self.threshold
        if vote > threshold:
            raise ValueError(f"vote ({vote:g}) must not exceed threshold ({threshold:g}): an alarm could list "
                             "no agreeing analyzer")
        return self


class IncidentConfig(Section):
    """Correlation of signals into incidents and their root-cause ranking (``aurora.incidents``)."""

    enabled: bool = True
    window_s: float = Field(600, gt=0, description=(
        "a signal joins a pending group whose last signal is at most this much older (event time)"))
    max_hops: int = Field(2, ge=0, le=10, description=(
        "services at most this many calls apart in the topology are related (0: the same service only)"))
    open_evidence: float = Field(2.0, gt=0, description=(
        "evidence an incident needs to open: an anomaly 1, a critical anomaly 1.5, a warning alert 1, a "
        "critical alert or a prediction 2; a signal repeated or still active later counts more"))
    persist_s: float = Field(480, gt=0, description=(
        "a signal still active this long after it began counts double (one series that stays abnormal)"))
    quiet_s: float = Field(300, ge=0, description=(
        "an incident is mitigated once this long passed without a signal and none is active any more"))
    resolve_after_s: float = Field(3600, ge=0, description=(
        "a mitigated incident resolves after this long without a new related signal"))
    rca_every_s: float = Field(60, gt=0, description="re-rank an incident's root causes at most this often")
    baseline_s: float = Field(3600, gt=60, description=(
        "the normal period before an incident's onset that its root-cause ranking compares against"))

    @model_validator(mode="after")
    def _persist_before_expiry(self) -> IncidentConfig:
        if self.persist_s >= self.window_s:
            raise ValueError(f"persist_s ({self.persist_s:g}) must be less than window_s ({self.window_s:g}): "
                             "a pending group is dropped after window_s without a new signal")
        return self


class PredictionLimit(Section):
    limit: float | str = Field(description=(
        "a fixed value, or the metric that holds the limit (matched on exactly the same labels)"))
    direction: Literal["rising", "falling"] = Field("rising", description=(
        "rising: the value grows to a ceiling; falling: it drops to a floor"))
    kind: str | None = Field(None, description="what a breach means, e.g. queue_full (default: limit_breach)")


class PredictionConfig(Section):
    """Forecasts of time to breach for series with a known limit (``aurora.predict``)."""

    enabled: bool = True
    eval_every_s: float = Field(60, ge=60, description=(
        "forecast every limited series this often (event time; at least one 1-min block)"))
    horizon_s: float = Field(6 * 3600, ge=1800, le=24 * 3600, description=(
        "predict breaches at most this far ahead (without a daily profile at most 4 h)"))
    signal_every_s: float = Field(300, gt=0, description=(
        "re-send an active prediction to the incident engine this often (and whenever it turns urgent)"))
    limits: dict[str, PredictionLimit] = Field(default_factory=dict, description=(
        "more limited metrics: metric -> {limit, direction, kind}; built in: memory working set vs its "
        "limit, disk used vs capacity, DB connections vs the pool, model accuracy vs 0.85"))


class SloConfig(Section):
    """A service level objective on an error ratio; its error budget is forecast like any limited series."""

    name: str = Field(min_length=1, max_length=100)
    service: str
    metric: str = Field("http_request_error_ratio", description="the service's error ratio series (0-1)")
    objective: float = Field(0.999, gt=0.5, lt=1.0, description="share of time without errors, e.g. 0.999")
    window_days: float = Field(30.0, gt=0, le=400, description="the rolling window the budget is spent over")


class ServiceConfig(Section):
    name: str
    depends_on: list[str] = Field(default_factory=list)
    owner: str | None = None
    tier: str | None = None
    user_facing: bool = Field(False, description="users reach this service directly (an entry point of the topology)")
    limits: dict[str, float] = Field(default_factory=dict, description="e.g. memory_bytes, disk_bytes")


class AuroraConfig(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    clock: Literal["wall", "data"] = "wall"
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    scrape: list[ScrapeJob] = Field(default_factory=list)
    host_agent: HostAgentConfig = Field(default_factory=HostAgentConfig)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    services: list[ServiceConfig] = Field(default_factory=list)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    slos: list[SloConfig] = Field(default_factory=list)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    @field_validator("scrape")
    @classmethod
    def _unique_jobs(cls, jobs: list[ScrapeJob]) -> list[ScrapeJob]:
        names = [j.name for j in jobs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"scrape job names must be unique; repeated: {sorted(dup)}")
        return jobs

    def database_url(self) -> str:
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.storage.data_dir / 'aurora.db').resolve()}"


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    cur: Any = data
    for part in path[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[path[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any, str]]:
    """(key path, value, variable name) for every AURORA_* variable that names a config key."""
    found: list[tuple[tuple[str, ...], Any, str]] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG_ENV:
            continue
        if name in ENV_SHORTCUTS:
            path = ENV_SHORTCUTS[name]
        elif "__" in name:
            path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        else:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        # Secrets and URLs are strings even when YAML would read them otherwise.
        if path[-1] in {"admin_token", "database_url", "host"}:
            value = raw
        found.append((path, value, name))
    return found


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> AuroraConfig:
    """Read YAML (if any), apply environment overrides, validate. Raises ConfigError with line-precise text."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("AURORA_CONFIG"):
        path = environ["AURORA_CONFIG"]
    data: dict[str, Any] = {}
    lines: dict[tuple[str | int, ...], int] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        loaded, lines = read_yaml(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections (server, storage, ...)")
        data = loaded
    env_paths: dict[tuple[str, ...], str] = {}
    for key_path, value, var in env_overrides(environ):
        _set_path(data, key_path, value)
        env_paths[key_path] = var
    try:
        return AuroraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid configuration:\n" + format_errors(exc, lines, source, env_paths,
                                                                           AuroraConfig)) from exc
