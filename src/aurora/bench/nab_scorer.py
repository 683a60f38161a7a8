"""Numenta Anomaly Benchmark (NAB v1.1) scoring, reimplemented with NumPy.

This follows NAB's ``nab/sweeper.py`` + ``nab/optimizer.py`` + ``nab/runner.py`` exactly:

* Every row gets a *sweep score*: inside an anomaly window the scaled sigmoid of its relative
  position (earlier is better, normalised so the left edge is worth ``tpWeight``); outside a window
  the scaled sigmoid of its distance past the preceding window times ``fpWeight`` (``-fpWeight``
  before the first window).
* The first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a file are probationary and not scored.
* At a threshold ``T`` the rows with ``anomaly_score >= T`` are detections. A window is worth the
  best (earliest) detection inside it, or ``-fnWeight`` when it has none; each detection outside a
  window adds its (negative) sweep score.
* The threshold is optimised once per profile over the whole corpus: NAB sweeps every distinct
  score of the corpus and keeps the best one (ties go to the higher threshold), then rescores every
  file at that threshold and sums. NAB's older hill-climbing optimizer ("twiddle") is available too:
  the published Numenta HTM scores were computed at thresholds it found.
* normalized = 100 * (raw - null) / (perfect - null), where null is the same procedure run on the
  null detector (a constant 0.5) and perfect = number of labelled windows * ``tpWeight``.

Scores are expected in [0, 1] as in NAB (its sweep starts at a threshold of 1.1).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15
START_THRESHOLD = 1.1  # NAB's sweep starts above every score: "no detections"
NULL_SCORE = 0.5  # what NAB's null detector outputs for every row

DEFAULT_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}
PROFILE_NAMES = tuple(DEFAULT_PROFILES)

Window = tuple[np.datetime64, np.datetime64]


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float

    @classmethod
    def from_profile(cls, profile: Mapping[str, float]) -> CostMatrix:
        return cls(tp=float(profile["tpWeight"]), fp=float(profile["fpWeight"]), fn=float(profile["fnWeight"]))


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid: 2*sigmoid(-5x) - 1, and -1 beyond 3 window lengths past the window."""
    x = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, val)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_length(n_rows: int, percent: float = PROBATION_PERCENT) -> float:
    """NAB's probationary period: min(floor(percent * n), percent * 5000) rows (750 at 15 %)."""
    return min(math.floor(percent * n_rows), percent * 5000)


# --------------------------------------------------------------------------------------------- sweep


@dataclass
class FileSweep:
    """Per-row scoring facts of one file; only the scorable (non-probationary) rows are kept."""

    name: str
    n_rows: int
    scores: np.ndarray  # anomaly scores of scorable rows
    sweep: np.ndarray  # weighted NAB sweep score of scorable rows
    window: np.ndarray  # local window id of scorable rows, -1 outside windows
    n_windows: int  # windows with at least one scorable row (those count as FN when missed)


def window_bounds(timestamps: np.ndarray, windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Row indices (first, last) of each window, with NAB's exact matching rules.

    NAB enters a window at the first row (after the previous window was left) whose timestamp equals
    the window start, takes the width up to the *first* row carrying the end timestamp, and leaves at
    the first row carrying the end timestamp. A window whose start never appears is never entered,
    and neither are the windows after it.
    """
    bounds: list[tuple[int, int]] = []
    pos = 0
    n = len(timestamps)
    for start, end in windows:
        hits = np.flatnonzero(timestamps[pos:] == start)
        if len(hits) == 0:
            break
        left = pos + int(hits[0])
        ends = np.flatnonzero(timestamps == end)
        if len(ends) == 0:
            raise ValueError(f"window end {end} is not a timestamp of the file")
        right = int(ends[0])
        exits = np.flatnonzero(timestamps[left:] == end)
        exit_at = left + int(exits[0]) if len(exits) else n - 1
        bounds.append((left, right))
        if exit_at != right:  # only possible with duplicated timestamps; NAB would misbehave too
            raise ValueError(f"window {start}..{end} has ambiguous end rows")
        pos = exit_at + 1
    return bounds


def sweep_file(
    name: str,
    timestamps: np.ndarray,
    anomaly_scores: np.ndarray,
    windows: Sequence[Window],
    cost: CostMatrix,
    probation_percent: float = PROBATION_PERCENT,
) -> FileSweep:
    """NAB's ``Sweeper.calcSweepScore`` for one file, vectorised."""
    scores = np.asarray(anomaly_scores, dtype=np.float64)
    n = len(scores)
    if len(timestamps) != n:
        raise ValueError(f"{name}: {len(timestamps)} timestamps but {n} anomaly scores")
    idx = np.arange(n)
    window_id = np.full(n, -1, dtype=np.int64)
    sweep = np.full(n, -1.0 * cost.fp)  # before any window: as if infinitely far past one
    bounds = window_bounds(np.asarray(timestamps), windows)
    for w, (left, right) in enumerate(bounds):
        width = float(right - left + 1)
        inside = idx[left : right + 1]
        window_id[left : right + 1] = w
        sweep[left : right + 1] = scaled_sigmoid(-(right - inside + 1) / width) * cost.tp / MAX_TP
        stop = bounds[w + 1][0] if w + 1 < len(bounds) else n
        after = idx[right + 1 : stop]
        if len(after):
            # NAB divides by (width - 1); a one-row window followed by rows would divide by zero
            # there, we treat such rows as far past the window instead.
            pos = np.abs(right - after) / (width - 1.0) if width > 1 else np.full(len(after), np.inf)
            sweep[right + 1 : stop] = scaled_sigmoid(pos) * cost.fp
    keep = idx >= probation_length(n, probation_percent)
    kept_windows = window_id[keep]
    n_scorable_windows = len(np.unique(kept_windows[kept_windows >= 0]))
    return FileSweep(name, n, scores[keep], sweep[keep], kept_windows, n_scorable_windows)


# ------------------------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class ThresholdCurve:
    """Corpus score for each candidate threshold, in NAB's order (1.1 first, then descending)."""

    thresholds: np.ndarray
    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray

    def best(self) -> tuple[float, float]:
        """NAB's optimizer: the highest score; on ties the first (= higher) threshold."""
        i = int(np.argmax(self.scores))
        return float(self.thresholds[i]), float(self.scores[i])

    def score_at(self, threshold: float) -> float:
        """Corpus score when the detections are the rows scoring >= threshold."""
        asc = self.thresholds[::-1]
        i = int(np.searchsorted(asc, threshold, side="left"))
        return float(self.scores[::-1][i]) if i < len(asc) else float(self.scores[0])

    def twiddle(self, initial: float = 0.5, tolerance: float = 1e-7) -> tuple[float, float]:
        """NAB's legacy hill-climbing optimizer (``optimizer.twiddle`` before the sweep optimizer).

        The published Numenta HTM scores were computed at thresholds it found (NAB's
        ``config/thresholds.json``), which are local, not global, optima.
        """

        def objective(t: float) -> float:
            return self.score_at(t) if 0.0 <= t <= 1.0 else float("-inf")

        past: dict[float, float] = {}
        x = initial
        delta = 0.1
        best = past[x] = objective(x)
        while delta > tolerance:
            x += delta
            if x not in past:
                past[x] = objective(x)
            if past[x] > best:
                best = past[x]
                delta *= 2
                continue
            x -= 2 * delta
            if x not in past:
                past[x] = objective(x)
            if past[x] > best:
                best = past[x]
                delta *= 2
            else:
                x += delta
                delta *= 0.5
        best_x = max(past, key=lambda k: past[k])
        return best_x, past[best_x]


def threshold_curve(sweeps: Sequence[FileSweep], cost: CostMatrix) -> ThresholdCurve:
    """NAB's ``Sweeper.calcScoreByThreshold`` over the concatenation of files, vectorised."""
    offsets = np.cumsum([0] + [s.n_windows for s in sweeps[:-1]]) if sweeps else np.zeros(0, np.int64)
    scores = np.concatenate([s.scores for s in sweeps]) if sweeps else np.zeros(0)
    sweep = np.concatenate([s.sweep for s in sweeps]) if sweeps else np.zeros(0)
    gwin = (
        np.concatenate([np.where(s.window >= 0, s.window + off, -1) for s, off in zip(sweeps, offsets, strict=True)])
        if sweeps
        else np.zeros(0, np.int64)
    )
    # Local window ids are 0..k-1 only if no window lies wholly in probation; renumber densely.
    in_win = gwin >= 0
    uniq_win, dense = np.unique(gwin[in_win], return_inverse=True)
    gwin = gwin.copy()
    gwin[in_win] = dense
    n_windows = len(uniq_win)

    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    v_sorted = sweep[order]
    g_sorted = gwin[order]

    delta = np.where(g_sorted < 0, v_sorted, 0.0)
    pos_w = np.flatnonzero(g_sorted >= 0)
    if len(pos_w):
        # Running max of the sweep score per window, in order of falling anomaly score: rank the
        # values (exact integers), offset each window's ranks above the previous window's, so one
        # global running max restarts at every window.
        groups = g_sorted[pos_w]
        by_group = np.argsort(groups, kind="stable")
        gpos = pos_w[by_group]
        ggroup = groups[by_group]
        uniq_vals, ranks = np.unique(v_sorted[gpos], return_inverse=True)
        big = len(uniq_vals) + 1
        run = np.maximum.accumulate(ranks + ggroup * big) - ggroup * big
        best = np.maximum(uniq_vals[run], -cost.fn)  # a window is worth at least -fnWeight
        first = np.ones(len(gpos), dtype=bool)
        first[1:] = ggroup[1:] != ggroup[:-1]
        prev = np.empty_like(best)
        prev[0] = -cost.fn
        prev[1:] = best[:-1]
        prev[first] = -cost.fn
        delta[gpos] = best - prev

    total = -cost.fn * n_windows + np.cumsum(delta)
    is_tp = (g_sorted >= 0).astype(np.int64)
    tp_cum = np.cumsum(is_tp)
    fp_cum = np.cumsum(1 - is_tp)
    # A threshold's row is the state after every point with a score >= it has been counted.
    last = np.ones(len(s_sorted), dtype=bool)
    last[:-1] = s_sorted[1:] != s_sorted[:-1]
    ends = np.flatnonzero(last)
    base = -cost.fn * n_windows
    thresholds = np.concatenate([[START_THRESHOLD], s_sorted[ends]])
    curve_scores = np.concatenate([[base], total[ends]])
    tp = np.concatenate([[0], tp_cum[ends]])
    fp = np.concatenate([[0], fp_cum[ends]])
    if len(s_sorted) and s_sorted[0] == START_THRESHOLD:  # NAB stores no separate "empty" row then
        thresholds, curve_scores, tp, fp = thresholds[1:], curve_scores[1:], tp[1:], fp[1:]
    return ThresholdCurve(thresholds, curve_scores, tp, fp)


@dataclass(frozen=True)
class FileScore:
    name: str
    score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows_detected: int
    windows: int


def score_file(sweep: FileSweep, threshold: float, cost: CostMatrix) -> FileScore:
    """NAB's ``Sweeper.scoreDataSet`` at a fixed threshold: detections are scores >= threshold."""
    det = sweep.scores >= threshold
    in_win = sweep.window >= 0
    fp_score = float(np.sum(sweep.sweep[det & ~in_win]))
    win_score = 0.0
    detected = 0
    for w in np.unique(sweep.window[in_win]):
        hit = det & (sweep.window == w)
        if hit.any():
            win_score += max(float(np.max(sweep.sweep[hit])), -cost.fn)
            detected += 1
        else:
            win_score -= cost.fn
    tp = int(np.sum(det & in_win))
    fp = int(np.sum(det & ~in_win))
    fn = int(np.sum(~det & in_win))
    tn = int(np.sum(~det & ~in_win))
    return FileScore(sweep.name, fp_score + win_score, tp, fp, fn, tn, detected, sweep.n_windows)


# ------------------------------------------------------------------------------------- corpus


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    files: list[FileScore] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        tp = sum(f.windows_detected for f in self.files)
        return {
            "score": self.normalized,
            "threshold": self.threshold,
            "raw": self.raw,
            "null": self.null,
            "perfect": self.perfect,
            "windows_detected": tp,
            "windows": sum(f.windows for f in self.files),
            "false_positive_rows": sum(f.fp for f in self.files),
        }


@dataclass
class NabCorpus:
    """What the scorer needs: windows per file (keyed ``category/file.csv``) and the profiles."""

    windows: dict[str, list[Window]]
    profiles: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    probation_percent: float = PROBATION_PERCENT
    optimizer: str = "sweep"  # NAB v1.1's exhaustive sweep, or "twiddle" (NAB's legacy hill climbing)

    @classmethod
    def load(cls, labels: Path, profiles: Path | None = None) -> NabCorpus:
        raw = json.loads(Path(labels).read_text())
        windows = {k: [(_ts(a), _ts(b)) for a, b in v] for k, v in raw.items()}
        prof = json.loads(Path(profiles).read_text()) if profiles is not None and Path(profiles).exists() else None
        profs = {k: dict(v["CostMatrix"]) for k, v in prof.items()} if prof else dict(DEFAULT_PROFILES)
        return cls(windows=windows, profiles=profs)

    def score(
        self,
        results: Mapping[str, tuple[np.ndarray, np.ndarray]],
        profiles: Iterable[str] | None = None,
    ) -> dict[str, ProfileResult]:
        """Score a detector's results ``{relpath: (timestamps, anomaly_scores)}`` for each profile.

        ``perfect`` counts the labelled windows of the scored files (the whole label file when the
        whole corpus is scored, as NAB does).
        """
        missing = [k for k in results if k not in self.windows]
        if missing:
            raise KeyError(f"no labels for {missing[:3]}")
        names = sorted(results)
        out: dict[str, ProfileResult] = {}
        for profile in profiles or self.profiles:
            cost = CostMatrix.from_profile(self.profiles[profile])
            raw_thr, raw = self._optimise_and_score(names, results, cost, null=False)
            _, null = self._optimise_and_score(names, results, cost, null=True)
            perfect = sum(len(self.windows[k]) for k in names) * cost.tp
            norm = 100.0 * (raw[1] - null[1]) / (perfect - null[1]) if perfect != null[1] else float("nan")
            out[profile] = ProfileResult(profile, raw_thr, raw[1], null[1], perfect, norm, raw[0])
        return out

    def _optimise_and_score(
        self, names: list[str], results: Mapping[str, tuple[np.ndarray, np.ndarray]], cost: CostMatrix, null: bool
    ) -> tuple[float, tuple[list[FileScore], float]]:
        sweeps = []
        for k in names:
            ts, sc = results[k]
            if null:
                sc = np.full(len(sc), NULL_SCORE)
            sweeps.append(sweep_file(k, ts, sc, self.windows[k], cost, self.probation_percent))
        curve = threshold_curve(sweeps, cost)
        if self.optimizer == "sweep":
            threshold, _ = curve.best()
        elif self.optimizer == "twiddle":
            threshold, _ = curve.twiddle()
        else:
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        files = [score_file(s, threshold, cost) for s in sweeps]
        return threshold, (files, float(sum(f.score for f in files)))


# ----------------------------------------------------------------------------------------- I/O


def _ts(text: str) -> np.datetime64:
    return np.datetime64(text.strip().replace(" ", "T"), "us")


def parse_timestamps(texts: Sequence[str]) -> np.ndarray:
    return np.array([t.strip().replace(" ", "T") for t in texts], dtype="datetime64[us]")


def read_columns(path: Path) -> dict[str, list[str]]:
    """A small CSV reader (pandas is not a dependency): column name -> list of cell strings."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols: list[list[str]] = [[] for _ in header]
        for row in reader:
            if not row:
                continue
            for c, cell in enumerate(row[: len(header)]):
                cols[c].append(cell)
    return {h.strip(): c for h, c in zip(header, cols, strict=True)}


def read_result_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NAB results CSV (``timestamp,...,anomaly_score,...``) -> (timestamps, anomaly scores)."""
    cols = read_columns(path)
    return parse_timestamps(cols["timestamp"]), np.array(cols["anomaly_score"], dtype=np.float64)


def load_results_dir(
    results_dir: Path, detector: str, relpaths: Iterable[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Results laid out as NAB does: ``<dir>/<category>/<detector>_<file>.csv`` for each data relpath."""
    out = {}
    for rel in relpaths:
        category, fname = rel.split("/", 1)
        out[rel] = read_result_file(Path(results_dir) / category / f"{detector}_{fname}")
    return out
