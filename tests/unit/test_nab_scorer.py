"""The NAB scorer: reproduction of the published scoreboard and edge cases on tiny inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from aurora.bench.nab_scorer import (
    MAX_TP,
    CostMatrix,
    NabCorpus,
    load_results_dir,
    probation_length,
    read_columns,
    scaled_sigmoid,
    score_file,
    sweep_file,
    threshold_curve,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAB = DATA / "nab"
needs_data = pytest.mark.skipif(
    not (NAB / "reference_results" / "final_results.json").exists(),
    reason=f"evaluation data not found at {NAB} (documented location: ../shared/data from the repo root)",
)

# Which of NAB's optimizers produced each published figure: ARTime and windowedGaussian were
# optimised with NAB v1.1's sweep; the Numenta HTM thresholds in NAB's config/thresholds.json
# (0.54218769..., 0.57519550...) were found by the legacy hill-climbing "twiddle" optimizer.
OPTIMIZER = {"ARTime": "sweep", "windowedGaussian": "sweep", "numenta": "twiddle"}


@pytest.fixture(scope="module")
def corpus() -> NabCorpus:
    return NabCorpus.load(NAB / "labels" / "combined_windows.json", NAB / "config" / "profiles.json")


@needs_data
@pytest.mark.parametrize("detector", sorted(OPTIMIZER))
def test_reproduces_published_scores(corpus: NabCorpus, detector: str) -> None:
    published = json.loads((NAB / "reference_results" / "final_results.json").read_text())[detector]
    results = load_results_dir(NAB / "reference_results" / detector, detector, corpus.windows)
    assert len(results) == 58
    corpus.optimizer = OPTIMIZER[detector]
    t0 = time.perf_counter()
    scored = corpus.score(results)
    assert time.perf_counter() - t0 < 10.0  # vectorised: three profiles of 365k rows in well under a second
    for profile, expected in published.items():
        assert round(scored[profile].normalized, 2) == round(expected, 2), (detector, profile)
        assert scored[profile].normalized == pytest.approx(expected, abs=1e-6)


@needs_data
def test_sweep_optimum_is_at_least_the_published_threshold(corpus: NabCorpus) -> None:
    # The exhaustive sweep finds the global optimum: equal to twiddle's on two numenta profiles,
    # better (63.21 > 63.12) on reward_low_FP_rate, where twiddle stopped at a local optimum.
    results = load_results_dir(NAB / "reference_results" / "numenta", "numenta", corpus.windows)
    corpus.optimizer = "sweep"
    scored = corpus.score(results)
    assert round(scored["standard"].normalized, 2) == 70.10
    assert round(scored["reward_low_FN_rate"].normalized, 2) == 74.32
    assert round(scored["reward_low_FP_rate"].normalized, 2) == 63.21


@needs_data
def test_result_timestamps_match_data(corpus: NabCorpus) -> None:
    for rel in list(corpus.windows)[:5]:
        data_ts = read_columns(NAB / "data" / rel)["timestamp"]
        res = load_results_dir(NAB / "reference_results" / "ARTime", "ARTime", [rel])[rel][0]
        assert len(res) == len(data_ts)


# ------------------------------------------------------------------------------ synthetic edge cases

STD = CostMatrix(tp=1.0, fp=0.11, fn=1.0)


def _ts(n: int) -> np.ndarray:
    return np.datetime64("2020-01-01T00:00", "us") + np.arange(n) * np.timedelta64(5, "m")


def _score(
    scores: list[float],
    window: tuple[int, int] | None,
    cost: CostMatrix = STD,
    probation: float = 0.0,
    threshold: float = 0.5,
) -> float:
    ts = _ts(len(scores))
    windows = [(ts[window[0]], ts[window[1]])] if window else []
    sw = sweep_file("f", ts, np.array(scores, dtype=float), windows, cost, probation)
    return score_file(sw, threshold, cost).score


def test_probation_length_rule() -> None:
    assert probation_length(100) == 15
    assert probation_length(4999) == 749
    assert probation_length(5000) == 750
    assert probation_length(22695) == 750  # capped at 0.15 * 5000


def test_scaled_sigmoid_anchor_points() -> None:
    assert float(scaled_sigmoid(0.0)) == pytest.approx(0.0)
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(scaled_sigmoid(3.5)) == -1.0


def test_null_and_missed_window() -> None:
    assert _score([0.0] * 20, None) == 0.0
    assert _score([0.0] * 20, (5, 9)) == -1.0
    assert _score([0.0] * 20, (5, 9), CostMatrix(1.0, 0.11, 2.0)) == -2.0


def test_only_the_first_detection_in_a_window_counts() -> None:
    first_row = [0.0] * 20
    first_row[5] = 1.0
    # Position of the window's first row: -(right - i + 1) / width = -1 -> worth exactly tpWeight.
    assert _score(first_row, (5, 9)) == pytest.approx(1.0)
    more = list(first_row)
    more[6] = more[8] = 1.0
    assert _score(more, (5, 9)) == pytest.approx(1.0)
    last_row = [0.0] * 20
    last_row[9] = 1.0
    assert _score(last_row, (5, 9)) == pytest.approx(float(scaled_sigmoid(-1 / 5)) / MAX_TP)
    assert _score(last_row, (5, 9)) < _score(first_row, (5, 9))


def test_false_positives_weighted_by_preceding_window() -> None:
    before = [0.0] * 20
    before[2] = 1.0
    assert _score(before, (5, 9)) == pytest.approx(-1.0 - 0.11)  # FN plus a full-weight FP
    just_after = [0.0] * 20
    just_after[10] = 1.0
    # Distance 1 past a 5-row window: position 1 / (5 - 1)
    assert _score(just_after, (5, 9)) == pytest.approx(-1.0 + 0.11 * float(scaled_sigmoid(0.25)))
    far_after = [0.0] * 40
    far_after[35] = 1.0  # more than 3 window widths away: -fpWeight
    assert _score(far_after, (5, 9)) == pytest.approx(-1.0 - 0.11)


def test_probationary_rows_are_not_scored() -> None:
    scores = [0.0] * 20
    scores[1] = 1.0  # a detection in probation (first 15 % = 3 rows) is ignored
    assert _score(scores, (5, 9), probation=0.15) == -1.0
    # A window wholly inside probation is not scored at all (neither TP nor FN).
    assert _score([0.0] * 20, (0, 2), probation=0.15) == 0.0


def test_threshold_is_inclusive_and_curve_matches_file_scores() -> None:
    rng = np.random.default_rng(0)
    ts = _ts(300)
    scores = np.round(rng.random(300), 2)
    windows = [(ts[100], ts[119]), (ts[200], ts[229])]
    sw = sweep_file("f", ts, scores, windows, STD, 0.15)
    curve = threshold_curve([sw], STD)
    assert curve.thresholds[0] == 1.1 and curve.scores[0] == -2.0
    for thr, expected in zip(curve.thresholds[1:], curve.scores[1:], strict=True):
        assert score_file(sw, float(thr), STD).score == pytest.approx(expected, abs=1e-9)
    thr, best = curve.best()
    assert best == pytest.approx(max(score_file(sw, float(t), STD).score for t in np.unique(scores)), abs=1e-9)
    # A window whose row scores exactly the threshold is detected.
    s2 = np.zeros(300)
    s2[100] = 0.7
    assert score_file(sweep_file("f", ts, s2, windows, STD, 0.15), 0.7, STD).windows_detected == 1


def test_corpus_normalisation_bounds() -> None:
    ts = _ts(200)
    windows = {"a/x.csv": [(ts[100], ts[119])], "a/y.csv": []}
    corpus = NabCorpus(windows=windows)
    perfect = np.zeros(200)
    perfect[100] = 1.0
    res = corpus.score({"a/x.csv": (ts, perfect), "a/y.csv": (ts, np.zeros(200))})
    for r in res.values():
        assert r.normalized == pytest.approx(100.0)
    res = corpus.score({"a/x.csv": (ts, np.zeros(200)), "a/y.csv": (ts, np.zeros(200))})
    for r in res.values():
        assert r.normalized == pytest.approx(0.0)
