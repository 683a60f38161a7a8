"""A multivariate analyzer per service or host: do its metrics still move together as they used to?

The univariate detectors ask whether one series left its usual range. This one looks at the *shape* of a
group's metrics (a service's, a host's) with persistent homology:

1. Each evaluation takes the group's last ``window`` samples (rows = time, columns = metrics). Windows
   longer than the point cap are block-averaged so the cloud has at most ``max_points`` points.
2. Standardization: each metric is centred on the window's median and divided by its spread (mean
   absolute deviation; never below a quarter of the baseline's, for quantized series), so units and
   loudness do not matter: the morning ramp's louder Poisson noise is the same shape. Then the window is
   *whitened* with the baseline's (shrunk) correlation matrix. Whitening is what makes co-movement
   visible at all: persistent homology sees only pairwise distances, and after per-metric scaling alone
   a metric flipping from in-phase to anti-phase is a mirror image of the old cloud (an isometry) with
   the same diagrams. After whitening, motion along a direction the baseline rarely took stretches it.
3. Point cloud = time-delay embedding of the whitened window (``embed_dim`` copies ``delay`` points
   apart). ripser gives the persistence diagrams H0..H``maxdim``.
4. Distance (Wasserstein, as persim computes it, or persim's bottleneck) to each of the group's baseline
   diagrams: a ring of the last ``baseline`` diagrams that were normal (not anomalous, nor within
   ``hold_off`` evaluations after an anomalous one), so an ongoing fault does not become normal quickly
   (only after ``adapt_after`` evaluations in a row kept out).
5. Score: the log of (median distance to the baseline) / (the baseline's typical distance among
   itself), as a robust z against the same ratio over the group's last ``calib`` normal evaluations, per
   homology dimension; ``score = 1 - D T(-z)`` for the largest z over the D dimensions, with T a Student-t
   tail (``tail_df`` 3), because z is that heavy-tailed on the simulator's fault-free fleet (development
   seeds, 4464 evaluations: 1.3 % beyond z = 4, 0.5 % beyond 5, 0.02 % beyond 7.45, where the score
   reaches the default threshold 0.995).

Pure and causal: arrays in, records out, no I/O, no randomness, no wall clock; a record depends only on
the samples before it. ``state()`` / ``from_state()`` round-trip exactly (plain lists), for checkpoints.

Cost per evaluation of one group: one ripser call on at most ``max_points`` points (the knob that bounds
it; a longer ``window`` only costs the block average) plus ``baseline x (maxdim + 1)`` distances between
diagrams of at most ``max_points`` points each. ``benchmarks/bench_homology.py`` measures both, and whether
the analyzer catches anything the univariate detector misses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import stdtr

_MAD = 1.4826  # median absolute deviation -> standard deviation, for Gaussian data
_MEANAD = 1.2533  # mean absolute deviation -> standard deviation, for Gaussian data


@dataclass(frozen=True)
class HomologyConfig:
    window: int = 60  # samples per point cloud (15 min at a 15 s scrape)
    max_points: int = 60  # cap on the points given to ripser: longer windows are block-averaged
    embed_dim: int = 2  # time-delay embedding: copies of each (block) sample in a point
    delay: int = 4  # points between the copies
    maxdim: int = 1  # homology dimensions 0..maxdim (H0 clusters, H1 loops)
    baseline: int = 12  # normal diagrams (and standardization windows) kept per group
    min_baseline: int = 6  # baseline diagrams needed before a group is scored
    warmup: int = 4  # first evaluations of a group only learn its standardization
    eval_every: int = 20  # samples between evaluations (5 min at 15 s)
    distance: str = "wasserstein"  # or "bottleneck"
    order: float = 1.0  # of the Wasserstein distance (1: persim's)
    threshold: float = 0.995  # score from which an evaluation is anomalous (the univariate detectors' alarm)
    hold_off: int = 3  # evaluations after an anomalous one that stay out of the baseline (a fault's milder windows)
    adapt_after: int = 12  # after this many evaluations in a row kept out of the baseline (1 h), accept the shape
    shrink: float = 0.2  # correlation shrinkage towards the identity (whitening amplifies <= 1/sqrt(shrink))
    clip: float = 8.0  # whitened values are clipped here, so one wild metric cannot own the geometry
    calib: int = 48  # past normal evaluations whose distance ratios calibrate the score (4 h)
    min_calib: int = 12  # calibration values needed before a group is scored
    min_spread: float = 0.15  # floor of the calibration's log-ratio spread (an early quiet hour under-states it)
    tail_df: float = 3.0  # Student-t degrees of freedom of the score's tail
    dist_floor: float = 0.02  # added to distances before logs (clouds are O(1) wide), so an empty H1 is not -inf
    betti_rel: float = 2.0  # a feature counts in a Betti number when it persists this many median H0 deaths
    rel_floor: float = 1e-3  # scale floor relative to a metric's level (flat metrics)
    abs_floor: float = 1e-9

    def __post_init__(self) -> None:
        if self.distance not in ("wasserstein", "bottleneck"):
            raise ValueError(f"distance must be wasserstein or bottleneck, got {self.distance!r}")
        if min(self.window, self.embed_dim, self.delay, self.max_points, self.baseline, self.eval_every) < 1:
            raise ValueError("window, embed_dim, delay, max_points, baseline and eval_every must be positive")
        if self.maxdim < 0:
            raise ValueError("maxdim must be >= 0")
        if not 0.0 < self.threshold <= 1.0 or self.hold_off < 0 or self.adapt_after < 1:
            raise ValueError("need 0 < threshold <= 1, hold_off >= 0 and adapt_after >= 1")
        if not 2 <= self.min_baseline <= self.baseline:
            raise ValueError("min_baseline must be between 2 and baseline")
        if self.order < 1.0:
            raise ValueError("order must be >= 1")
        if self.n_points < 3:
            raise ValueError("window too short for the embedding: fewer than 3 points per cloud")

    @property
    def lag(self) -> int:
        return (self.embed_dim - 1) * self.delay

    @property
    def block(self) -> int:
        """Samples averaged into one point, so that a cloud has at most ``max_points`` points."""
        return max(1, math.ceil(self.window / (self.max_points + self.lag)))

    @property
    def n_points(self) -> int:
        return self.window // self.block - self.lag


@dataclass(frozen=True)
class HomologyRecord:
    group: str
    time: float  # of the window's last sample
    status: str  # learning | scored
    score: float  # in [0, 1]
    anomalous: bool
    z: float  # robust z of the most unusual homology dimension
    dim: int  # that dimension
    distance: list[float]  # per dimension: median distance to the baseline diagrams
    baseline_quantiles: list[list[float]]  # per dimension: q10, q50, q90 of that distance in normal evaluations
    betti: list[int]  # per dimension: features persisting > betti_rel median H0 deaths, now
    betti_baseline: list[float]  # per dimension: median of the same over the baseline diagrams
    pair: tuple[str, str] | None  # the metric pair whose correlation moved most from the baseline
    pair_corr: tuple[float, float] | None  # its correlation (now, baseline)
    explanation: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Group:
    columns: list[str]
    seen: int = 0  # samples observed through ``observe``
    evals: int = 0
    rejected: int = 0  # evaluations in a row kept out of the baseline
    hold: int = 0  # evaluations still to keep out after the last anomalous one
    buf: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # last window of samples (observe)
    buf_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # standardization ring (accepted windows): per-window level, spread and correlation
    level: list[np.ndarray] = field(default_factory=list)
    spread: list[np.ndarray] = field(default_factory=list)
    corr: list[np.ndarray] = field(default_factory=list)
    # diagram ring (accepted diagrams), oldest first, with their distances to each other [dim, i, j]
    dgms: list[list[np.ndarray]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    betti: list[list[int]] = field(default_factory=list)
    pair_d: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    hist: list[list[float]] = field(default_factory=list)  # calibration: log distance ratios per dimension


def wasserstein(a: np.ndarray, b: np.ndarray, order: float = 1.0) -> float:
    """Wasserstein distance of ``order`` p between diagrams, Euclidean ground metric, unmatched points going to
    the diagonal; for p = 1 exactly ``persim.wasserstein(a, b)``, without persim's per-call input validation
    (most of its cost on small diagrams). p = 2 weighs a few prominent features over many small ones."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    a = a if len(a) else np.zeros((1, 2))  # persim matches an empty diagram as one point on the diagonal
    b = b if len(b) else np.zeros((1, 2))
    m, n = len(a), len(b)
    d = np.zeros((m + n, m + n))
    d[:m, :n] = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    d[:m, n:] = np.inf
    d[m:, :n] = np.inf
    d[np.arange(m), n + np.arange(m)] = (a[:, 1] - a[:, 0]) / math.sqrt(2.0)  # to the diagonal
    d[m + np.arange(n), np.arange(n)] = (b[:, 1] - b[:, 0]) / math.sqrt(2.0)
    if order != 1.0:
        d = d**order
    i, j = linear_sum_assignment(d)
    return float(d[i, j].sum() ** (1.0 / order))


class HomologyAnalyzer:
    """Per-group persistent-homology analyzer. ``observe`` streams samples; ``update`` scores one window."""

    name = "aurora-homology"

    def __init__(self, config: HomologyConfig | None = None) -> None:
        self.config = config or HomologyConfig()
        self.groups: dict[str, _Group] = {}

    # --- public API --------------------------------------------------------------------------------
    def observe(self, group: str, times: np.ndarray, rows: np.ndarray,
                columns: Sequence[str] | None = None) -> list[HomologyRecord]:
        """Append samples (``rows[k]`` at ``times[k]``, one column per metric) to ``group`` and evaluate
        every ``eval_every`` samples once a full window is there. Returns this call's records."""
        cfg = self.config
        x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if x.shape[0] != t.shape[0]:
            raise ValueError("times and rows must have the same length")
        g = self._group(group, x.shape[1], columns)
        allx = np.concatenate([g.buf, x])
        allt = np.concatenate([g.buf_t, t])
        off = len(g.buf)
        out = []
        # Python loops over evaluations only (one every eval_every samples), never over samples.
        counts = g.seen + 1 + np.arange(len(x))
        for k in np.flatnonzero((counts % cfg.eval_every == 0) & (counts >= cfg.window)).tolist():
            end = off + k + 1
            out.append(self._evaluate(group, g, float(allt[end - 1]), allx[end - cfg.window:end]))
        g.seen += len(x)
        g.buf = allx[-cfg.window:].copy()
        g.buf_t = allt[-cfg.window:].copy()
        return out

    def update(self, group: str, t: float, window: np.ndarray,
               columns: Sequence[str] | None = None) -> HomologyRecord:
        """Evaluate ``group`` at ``t`` on ``window`` (its last ``config.window`` rows), e.g. a window read
        from the store; the caller owns the cadence."""
        x = np.atleast_2d(np.asarray(window, dtype=np.float64))
        if len(x) < self.config.window:
            raise ValueError(f"window has {len(x)} rows; the config needs {self.config.window}")
        g = self._group(group, x.shape[1], columns)
        return self._evaluate(group, g, float(t), x[-self.config.window:])

    def state(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-able), enough to resume exactly."""
        groups = {}
        for name, g in self.groups.items():
            groups[name] = {
                "columns": list(g.columns), "seen": g.seen, "evals": g.evals, "rejected": g.rejected, "hold": g.hold,
                "buf": g.buf.tolist(), "buf_t": g.buf_t.tolist(),
                "level": [a.tolist() for a in g.level], "spread": [a.tolist() for a in g.spread],
                "corr": [a.tolist() for a in g.corr],
                "dgms": [[d.tolist() for d in dg] for dg in g.dgms], "times": list(g.times),
                "betti": [list(b) for b in g.betti], "pair_d": g.pair_d.tolist(), "hist": [list(h) for h in g.hist],
            }
        return {"config": asdict(self.config), "groups": groups}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HomologyAnalyzer:
        an = cls(HomologyConfig(**state["config"]))
        nd = an.config.maxdim + 1

        def arrays(xs: list[Any], shape: tuple[int, ...]) -> list[np.ndarray]:
            return [np.array(a, dtype=np.float64).reshape(shape) for a in xs]

        for name, s in state["groups"].items():
            m = len(s["columns"])
            g = _Group(list(s["columns"]), int(s["seen"]), int(s["evals"]), int(s["rejected"]), int(s["hold"]))
            g.buf = np.array(s["buf"], dtype=np.float64).reshape(-1, m)
            g.buf_t = np.array(s["buf_t"], dtype=np.float64)
            g.level, g.spread, g.corr = arrays(s["level"], (m,)), arrays(s["spread"], (m,)), arrays(s["corr"], (m, m))
            g.dgms = [arrays(dg, (-1, 2)) for dg in s["dgms"]]
            g.times = [float(v) for v in s["times"]]
            g.betti = [[int(b) for b in bs] for bs in s["betti"]]
            g.pair_d = np.array(s["pair_d"], dtype=np.float64).reshape(nd, len(g.dgms), len(g.dgms))
            g.hist = [[float(v) for v in h] for h in s["hist"]]
            an.groups[name] = g
        return an

    # --- one evaluation ----------------------------------------------------------------------------
    def _evaluate(self, name: str, g: _Group, t: float, x: np.ndarray) -> HomologyRecord:
        cfg = self.config
        nd = cfg.maxdim + 1
        g.evals += 1
        x = self._aggregate(x)
        level, spread, corr_now = self._window_stats(x)
        if len(g.spread) < cfg.warmup:
            self._learn_stats(g, level, spread, corr_now)
            return self._learning(name, t, nd, f"learning {name}'s scales ({len(g.spread)} of {cfg.warmup})")
        scale, white, corr_base = self._standardizer(g)
        dgms = self._diagrams(self._cloud(x, np.maximum(spread, 0.25 * scale), white))
        betti = self._betti(dgms)
        row = np.array([[self._distance(dgms[q], old[q]) for old in g.dgms] for q in range(nd)]).reshape(nd, -1)
        n = len(g.dgms)
        if n < 2:
            self._accept(g, level, spread, corr_now, dgms, t, betti, row, None)
            return self._learning(name, t, nd, f"learning {name}'s usual shape", betti)
        # Median distance to the baseline relative to the baseline's typical distance among itself, in
        # logs: slow changes of how noisy the group is cancel out.
        dist = np.median(row, axis=1)
        off = ~np.eye(n, dtype=bool)
        typical = np.array([np.median([np.median(g.pair_d[q, i][off[i]]) for i in range(n)]) for q in range(nd)])
        ratio = np.log(dist + cfg.dist_floor) - np.log(typical + cfg.dist_floor)
        if n < cfg.min_baseline or len(g.hist) < cfg.min_calib:
            self._accept(g, level, spread, corr_now, dgms, t, betti, row, ratio)
            return self._learning(name, t, nd, f"learning {name}'s usual shape ({len(g.hist)} of {cfg.min_calib})",
                                  betti)
        # Calibrated on the group's own past ratios, not on the spread of the ring's distances: ring members
        # are each other's neighbours in time and under-state how much ordinary windows differ.
        hist = np.array(g.hist)
        med = np.median(hist, axis=0)
        sd = np.maximum(_MAD * np.median(np.abs(hist - med), axis=0), cfg.min_spread)
        zs = (ratio - med) / sd
        q = int(np.argmax(zs))
        z = float(zs[q])
        score = float(np.clip(1.0 - nd * float(stdtr(cfg.tail_df, -z)), 0.0, 1.0))
        anomalous = score >= cfg.threshold
        usual = typical[:, None] * np.exp(np.quantile(hist, [0.1, 0.5, 0.9], axis=0).T)  # [dim, q10/q50/q90]
        betti_base = [float(b) for b in np.median(np.array(g.betti), axis=0)]
        pair, pair_corr = self._moved_pair(g, corr_now, corr_base)
        expl = self._explain(name, t, g, q, dist, usual, sd, betti, betti_base, pair, pair_corr, anomalous)
        # Normal windows keep the baseline fresh (the day moves on); an anomalous one, and the few after it
        # (a fault's milder windows), stay out, unless the new shape has lasted adapt_after evaluations.
        if anomalous:
            g.hold = cfg.hold_off
            keep = False
        else:
            keep = g.hold == 0
            g.hold = max(0, g.hold - 1)
        g.rejected = 0 if keep else g.rejected + 1
        if keep or g.rejected >= cfg.adapt_after:
            self._accept(g, level, spread, corr_now, dgms, t, betti, row, ratio)
            g.rejected = g.hold = 0
        return HomologyRecord(name, t, "scored", score, anomalous, z, q, dist.tolist(), usual.tolist(), betti,
                              betti_base, pair, pair_corr, expl)

    # --- internals ---------------------------------------------------------------------------------
    def _group(self, group: str, n_metrics: int, columns: Sequence[str] | None) -> _Group:
        g = self.groups.get(group)
        if g is None:
            cols = list(columns) if columns is not None else [f"m{i}" for i in range(n_metrics)]
            if len(cols) != n_metrics:
                raise ValueError(f"{len(cols)} column names for {n_metrics} metrics")
            g = self.groups[group] = _Group(cols)
            g.buf = np.zeros((0, n_metrics))
            g.pair_d = np.zeros((self.config.maxdim + 1, 0, 0))
        elif len(g.columns) != n_metrics:
            raise ValueError(f"group {group!r} has {len(g.columns)} metrics, got {n_metrics}")
        return g

    def _aggregate(self, x: np.ndarray) -> np.ndarray:
        """Block means of consecutive samples (see ``HomologyConfig.block``): unlike dropping samples,
        averaging keeps the slow co-movement metrics share and damps the white noise each has alone."""
        b = self.config.block
        if b == 1:
            return x
        n = (len(x) // b) * b
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-NaN block stays NaN
            return np.nanmean(x[len(x) - n:].reshape(-1, b, x.shape[1]), axis=1)

    def _window_stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level (median), spread and correlation matrix of one window. The spread is the mean absolute
        deviation from the median (x 1.2533, the std for Gaussian data): unlike the MAD it is not 0 for low
        counts that are mostly one value (5xx per scrape), and one outlier moves it little."""
        cfg = self.config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN columns give NaN, replaced below
            level = np.nanmedian(x, axis=0)
            spread = _MEANAD * np.nanmean(np.abs(x - level), axis=0)
            std = np.nanstd(x, axis=0)
            xc = np.where(np.isfinite(x), x - np.nanmean(x, axis=0), 0.0)
        ok = np.isfinite(std) & (std > cfg.abs_floor + cfg.rel_floor * np.abs(np.nan_to_num(level)))
        zc = xc / np.where(ok, std, 1.0)
        corr = np.where(ok[:, None] & ok[None, :], (zc.T @ zc) / len(x), 0.0)  # a flat metric correlates with none
        np.fill_diagonal(corr, 1.0)
        return np.nan_to_num(level), np.nan_to_num(spread), np.clip(corr, -1.0, 1.0)

    def _standardizer(self, g: _Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(baseline spread per metric, whitening matrix, baseline correlation) from the standardization ring."""
        cfg = self.config
        level = np.median(np.array(g.level), axis=0)
        scale = np.maximum(np.median(np.array(g.spread), axis=0), cfg.abs_floor + cfg.rel_floor * np.abs(level))
        corr = np.mean(np.array(g.corr), axis=0)
        w, v = np.linalg.eigh((1.0 - cfg.shrink) * corr + cfg.shrink * np.eye(len(corr)))
        return scale, (v / np.sqrt(np.maximum(w, cfg.shrink))) @ v.T, corr

    def _cloud(self, x: np.ndarray, scale: np.ndarray, white: np.ndarray) -> np.ndarray:
        cfg = self.config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            level = np.nan_to_num(np.nanmedian(x, axis=0))
        z = np.where(np.isfinite(x), (x - level) / scale, 0.0)  # a missing sample sits at the window's median
        z = np.clip(z @ white, -cfg.clip, cfg.clip)
        n = len(z) - cfg.lag
        # point t = [z_t, z_{t-delay}, ...], over sqrt(width) so distances do not grow with the number of metrics
        pts = np.concatenate([z[cfg.lag - j * cfg.delay: cfg.lag - j * cfg.delay + n] for j in range(cfg.embed_dim)],
                             axis=1)
        return pts / math.sqrt(pts.shape[1])

    def _diagrams(self, pts: np.ndarray) -> list[np.ndarray]:
        from ripser import ripser  # here, not at the top: it costs seconds to import (scikit-learn, and persim
        # matplotlib), and a server that never shows the homology view should not start that much slower

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ripser warns about clouds wider than long; irrelevant here
            dgms = ripser(pts, maxdim=self.config.maxdim)["dgms"]
        out = []
        for d in dgms:
            d = np.asarray(d, dtype=np.float64).reshape(-1, 2)
            out.append(d[np.isfinite(d[:, 1])])  # H0's infinite class is in every diagram: it carries nothing
        return out

    def _distance(self, a: np.ndarray, b: np.ndarray) -> float:
        if self.config.distance == "bottleneck":
            if len(a) == 0 and len(b) == 0:
                return 0.0
            import persim  # see _diagrams

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(persim.bottleneck(a, b))
        return wasserstein(a, b, self.config.order)

    def _betti(self, dgms: list[np.ndarray]) -> list[int]:
        """Features persisting longer than ``betti_rel`` typical neighbour gaps (the median H0 death), so the
        count does not depend on the cloud's scale: H0 = well separated clusters, counting the infinite class
        (2+ when the window splits into regimes); H1 = loops (an oscillation the metrics go round)."""
        thr = self.config.betti_rel * (float(np.median(dgms[0][:, 1])) if len(dgms[0]) else 0.0)
        return [int(np.sum(d[:, 1] - d[:, 0] > thr)) + (1 if q == 0 else 0) for q, d in enumerate(dgms)]

    def _accept(self, g: _Group, level: np.ndarray, spread: np.ndarray, corr: np.ndarray, dgms: list[np.ndarray],
                t: float, betti: list[int], row: np.ndarray, ratio: np.ndarray | None) -> None:
        """A normal window: it joins the standardization ring, the diagram ring and the calibration."""
        self._learn_stats(g, level, spread, corr)
        n = len(g.dgms)
        m = np.zeros((self.config.maxdim + 1, n + 1, n + 1))
        m[:, :n, :n] = g.pair_d
        m[:, n, :n] = row  # its distances to the ring were computed when it was scored
        m[:, :n, n] = row
        g.dgms.append(dgms)
        g.times.append(t)
        g.betti.append(betti)
        drop = max(0, n + 1 - self.config.baseline)
        del g.dgms[:drop], g.times[:drop], g.betti[:drop]
        g.pair_d = m[:, drop:, drop:].copy()
        if ratio is not None:
            g.hist.append([float(r) for r in ratio])
            del g.hist[:-self.config.calib]

    def _learn_stats(self, g: _Group, level: np.ndarray, spread: np.ndarray, corr: np.ndarray) -> None:
        for ring, v in ((g.level, level), (g.spread, spread), (g.corr, corr)):
            ring.append(v)
            del ring[:-self.config.baseline]

    def _learning(self, name: str, t: float, nd: int, why: str, betti: list[int] | None = None) -> HomologyRecord:
        return HomologyRecord(name, t, "learning", 0.0, False, 0.0, 0, [0.0] * nd, [[0.0] * 3 for _ in range(nd)],
                              betti or [0] * nd, [0.0] * nd, None, None, why)

    def _moved_pair(self, g: _Group, now: np.ndarray,
                    base: np.ndarray) -> tuple[tuple[str, str] | None, tuple[float, float] | None]:
        if len(now) < 2:
            return None, None
        diff = np.abs(np.triu(now - base, 1))
        i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
        if diff[i, j] == 0.0:
            return None, None
        return (g.columns[i], g.columns[j]), (float(now[i, j]), float(base[i, j]))

    def _explain(self, name: str, t: float, g: _Group, q: int, dist: np.ndarray, usual: np.ndarray, sd: np.ndarray,
                 betti: list[int], betti_base: list[float], pair: tuple[str, str] | None,
                 pair_corr: tuple[float, float] | None, anomalous: bool) -> str:
        mid = float(usual[q, 1])
        how = "move together differently from" if anomalous else "move together as in"
        kind = "Wasserstein" if self.config.distance == "wasserstein" else "bottleneck"
        s = (f"{name}'s metrics {how} the last {_span(t - g.times[0])}: H{q} {kind} distance "
             f"{dist[q]:.2f} vs usual {mid:.2f} ± {mid * math.expm1(float(sd[q])):.2f}")
        if betti[q] != round(betti_base[q]):
            s += f"; {betti[q]} H{q} features vs usually {betti_base[q]:g}"
        if anomalous and pair is not None and pair_corr is not None:
            s += f"; {pair[0]} ~ {pair[1]} correlation {pair_corr[0]:+.2f} vs usually {pair_corr[1]:+.2f}"
        return s


def _span(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 3000:
        return "hour"
    return f"{max(1, round(seconds / 60))} min"
