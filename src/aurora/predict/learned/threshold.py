"""From P(failure within H) to predictions, and the decision threshold, chosen on tuning seeds.

A learned model issues a prediction for a series at an evaluation when its probability is at least the
model's threshold. As in ``aurora bench predict``, consecutive predictions of a series form an
*episode* (a gap longer than ``gap_s`` closes it); an episode is correct when it is on the root-cause
series, created at or after the fault's onset and before its breach.

``choose_threshold``: over a grid of thresholds (0.02 .. 0.98), the smallest threshold at which the
episode precision on the tuning runs is at least ``min_precision`` (0.9) *at that threshold and every
higher one of the grid that issues anything*: the lowest threshold (so the earliest predictions, the
longest lead) that is safely past any lucky dip of the false predictions. Tuning runs are simulator
seeds the model was not fitted on (``dataset.TrainConfig.tune_seeds``), so that the in-sample
confidence of a flexible model (gradient boosting) does not set its own threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = np.unique(np.round(np.r_[np.arange(0.02, 0.2, 0.01), np.arange(0.2, 0.981, 0.02)], 3))


@dataclass(frozen=True)
class EpisodeScore:
    episodes: int
    correct: int
    faulty_runs: int
    predicted_runs: int  # faulty runs with a correct episode
    lead_times_s: tuple[float, ...]

    @property
    def precision(self) -> float | None:
        return self.correct / self.episodes if self.episodes else None

    @property
    def recall(self) -> float | None:
        return self.predicted_runs / self.faulty_runs if self.faulty_runs else None


def episode_starts(above: np.ndarray, evals: np.ndarray, gap_s: float) -> list[tuple[int, int]]:
    """``(evaluation index, series)`` where an episode of ``above`` (evals x series, bool) starts."""
    out: list[tuple[int, int]] = []
    for s in np.flatnonzero(above.any(axis=0)).tolist():
        e = np.flatnonzero(above[:, s])
        t = evals[e]
        new = np.r_[True, np.diff(t) > gap_s]
        out += [(int(i), s) for i in e[new].tolist()]
    return out


def score_episodes(runs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int, float | None, float | None]],
                   threshold: float, gap_s: float = 600.0) -> EpisodeScore:
    """Episodes of ``p >= threshold`` over runs of ``(p, valid, evals, target, onset, breach)``."""
    episodes = correct = faulty = predicted = 0
    leads: list[float] = []
    for p, valid, evals, target, onset, breach in runs:
        starts = episode_starts((p >= threshold) & valid, evals, gap_s)
        episodes += len(starts)
        good = [evals[e] for e, s in starts if s == target and onset is not None and breach is not None
                and onset <= evals[e] < breach]
        correct += len(good)
        if target >= 0:
            faulty += 1
            if good and breach is not None:
                predicted += 1
                leads.append(float(breach - min(good)))
    return EpisodeScore(episodes, correct, faulty, predicted, tuple(leads))


def choose_threshold(runs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int, float | None, float | None]],
                     min_precision: float = 0.9, gap_s: float = 600.0,
                     grid: np.ndarray = GRID) -> tuple[float, list[dict[str, float | int | None]]]:
    """The threshold (see the module docstring) and the tuning curve (per grid value: episodes,
    precision, recall, median lead)."""
    curve: list[dict[str, float | int | None]] = []
    ok = []
    for thr in grid.tolist():
        sc = score_episodes(runs, thr, gap_s)
        curve.append({"threshold": thr, "episodes": sc.episodes, "precision": sc.precision, "recall": sc.recall,
                      "lead_time_median_s": float(np.median(sc.lead_times_s)) if sc.lead_times_s else None})
        ok.append(sc.precision is None or sc.precision >= min_precision)
    okv = np.asarray(ok)
    # the smallest index from which every higher threshold is fine
    suffix = np.flip(np.logical_and.accumulate(np.flip(okv)))
    chosen = float(grid[int(np.argmax(suffix))]) if suffix.any() else float(grid[-1])
    return chosen, curve
