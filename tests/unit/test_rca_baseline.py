"""The baseline ranker's rules (module docstring of aurora.rca.baseline), each on crafted arrays."""

from __future__ import annotations

import numpy as np
import pytest

from aurora.rca.baseline import REL_RESOLUTION, rank_root_causes, rank_services, robust_scores, service_of

pytestmark = pytest.mark.filterwarnings("error")  # no NumPy warnings on NaN, flat or empty input


def _scores(ranked: list[tuple[str, float]]) -> dict[str, float]:
    return dict(ranked)


def _names(ranked: list[tuple[str, float]]) -> list[str]:
    return [c for c, _ in ranked]


def test_score_is_max_robust_z_against_the_normal_period() -> None:
    rng = np.random.default_rng(1)
    normal = rng.normal(50, 2, (200, 1))
    anomalous = rng.normal(50, 2, (60, 1))
    anomalous[10, 0] = 80.0
    q75, q25 = np.percentile(normal[:, 0], [75, 25])
    want = (80.0 - np.median(normal[:, 0])) / (q75 - q25)  # IQR >> 0.1 % of the level: the floor does not bite
    [(_, got)] = rank_root_causes(["a_cpu"], normal, anomalous)
    assert got == pytest.approx(want)


def test_only_rises_count() -> None:
    rng = np.random.default_rng(2)
    normal = rng.normal(100, 1, (200, 2))
    anomalous = rng.normal(100, 1, (60, 2))
    anomalous[:, 0] -= 20  # a big fall: a caller sending less traffic
    anomalous[:, 1] += 5  # a smaller rise
    ranked = rank_root_causes(["caller_lod", "root_cpu"], normal, anomalous)
    assert _names(ranked) == ["root_cpu", "caller_lod"]
    assert _scores(ranked)["caller_lod"] < 0


def test_caller_latency_rising_less_on_the_robust_scale_ranks_below_the_root_cpu() -> None:
    rng = np.random.default_rng(3)
    cols = ["front-end_lat_90", "orders_cpu", "orders_mem", "user_cpu"]
    normal = rng.normal(0, 1, (300, 4)) * [0.5, 0.1, 1e5, 0.2] + [2.0, 0.6, 3e8, 1.0]
    anomalous = rng.normal(0, 1, (280, 4)) * [0.5, 0.1, 1e5, 0.2] + [2.0, 0.6, 3e8, 1.0]
    anomalous[:, 0] += 10.0  # latency of the caller: up 5x in absolute terms, ~15 IQRs
    anomalous[:, 1] += 99.0  # the root's CPU: ~700 IQRs
    ranked = rank_root_causes(cols, normal, anomalous)
    assert _names(ranked)[:2] == ["orders_cpu", "front-end_lat_90"]
    assert [s for s, _ in rank_services(ranked)][:2] == ["orders", "front-end"]


def test_quantised_memory_drift_does_not_outrank_a_saturated_cpu() -> None:
    # Memory counted in 4 KiB pages that held within two pages: IQR = 4096 bytes. A 3.4 MB (~1.3 %) drift
    # is ~830 such IQRs; the root's CPU going from ~0.6 % to 100 % is ~700 IQRs. The 0.1 % floor on the
    # scale (~267 kB here) brings the drift down to ~13.
    rng = np.random.default_rng(4)
    page = 4096.0
    mem_n = 2.674e8 + page * rng.integers(0, 2, 300)
    mem_a = 2.674e8 + 3.4e6 + page * rng.integers(0, 2, 280)
    cpu_n = rng.normal(0.64, 0.1, 300)
    cpu_a = np.minimum(rng.normal(99.0, 2.0, 280), 100.0)
    ranked = rank_root_causes(["queue-master_mem", "orders_cpu"], np.c_[mem_n, cpu_n], np.c_[mem_a, cpu_a])
    assert _names(ranked) == ["orders_cpu", "queue-master_mem"]
    scale = REL_RESOLUTION * np.median(mem_n)
    assert _scores(ranked)["queue-master_mem"] == pytest.approx((mem_a.max() - np.median(mem_n)) / scale)


def test_zero_iqr_falls_back_to_the_standard_deviation() -> None:
    normal = np.full((100, 1), 10.0)
    normal[::10, 0] = 20.0  # rare blips: IQR 0, standard deviation 3
    anomalous = np.array([[10.0], [40.0]])
    [(_, got)] = rank_root_causes(["a_lod"], normal, anomalous)
    assert got == pytest.approx((40.0 - 10.0) / np.std(normal))


def test_constant_in_normal_column_that_jumps_is_ranked() -> None:
    rng = np.random.default_rng(5)
    normal = np.c_[np.full(200, 8.0e6), rng.normal(1, 0.1, 200)]
    anomalous = np.c_[np.full(60, 17.6e6), rng.normal(1, 0.1, 60)]  # memory flat at 8 MB doubles
    ranked = rank_root_causes(["payment_mem", "payment_cpu"], normal, anomalous)
    assert ranked[0][0] == "payment_mem"
    assert ranked[0][1] == pytest.approx((17.6e6 - 8.0e6) / (REL_RESOLUTION * 8.0e6))


def test_column_flat_at_zero_that_rises_scores_the_cap() -> None:
    normal = np.zeros((100, 1))
    anomalous = np.r_[np.zeros(10), np.full(20, 3.0)][:, None]
    [(_, got)] = rank_root_causes(["cart_errors"], normal, anomalous)
    assert got == pytest.approx(1 / REL_RESOLUTION)


def test_column_saturating_at_a_flat_level_is_ranked() -> None:
    rng = np.random.default_rng(6)
    normal = rng.normal(20, 3, (200, 2))
    anomalous = np.c_[np.full(60, 100.0), rng.normal(20, 3, 60)]  # CPU pinned at its limit
    ranked = rank_root_causes(["carts_cpu", "orders_cpu"], normal, anomalous)
    assert ranked[0][0] == "carts_cpu" and ranked[0][1] > 10


def test_columns_without_evidence_are_dropped_last_with_score_zero() -> None:
    rng = np.random.default_rng(7)
    normal = np.c_[np.full(50, 7.0), np.full(50, np.nan), rng.normal(0, 1, 50)]
    anomalous = np.c_[np.full(20, 7.0), rng.normal(0, 1, 20), rng.normal(-5, 1, 20)]
    ranked = rank_root_causes(["flat_cpu", "gap_cpu", "falling_cpu"], normal, anomalous)
    # the falling column scores below 0 but is still ranked before the two that carry no evidence
    assert ranked[0][0] == "falling_cpu" and ranked[0][1] < 0
    assert ranked[1:] == [("flat_cpu", 0.0), ("gap_cpu", 0.0)]
    _, kept = robust_scores(normal, anomalous)
    assert kept.tolist() == [False, False, True]


def test_nan_and_inf_cells_are_ignored() -> None:
    rng = np.random.default_rng(8)
    normal = rng.normal(10, 1, (100, 1))
    anomalous = rng.normal(15, 1, (40, 1))
    holey_n, holey_a = normal.copy(), anomalous.copy()
    holey_n[::7] = np.nan
    holey_a[::5] = np.inf
    holey_a[1::5] = -np.inf
    keep_n = np.isfinite(holey_n[:, 0])
    keep_a = np.isfinite(holey_a[:, 0])
    want = rank_root_causes(["a_cpu"], normal[keep_n], anomalous[keep_a])
    assert rank_root_causes(["a_cpu"], holey_n, holey_a) == want


def test_empty_periods_and_no_columns() -> None:
    assert rank_root_causes([], np.zeros((0, 0)), np.zeros((0, 0))) == []
    ranked = rank_root_causes(["b_cpu", "a_cpu"], np.zeros((0, 2)), np.ones((5, 2)))
    assert ranked == [("b_cpu", 0.0), ("a_cpu", 0.0)]  # no baseline, no evidence: column order
    assert rank_root_causes(["a_cpu"], np.ones((5, 1)), np.zeros((0, 1))) == [("a_cpu", 0.0)]


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        robust_scores(np.zeros((5, 2)), np.zeros((5, 3)))


def test_scores_do_not_depend_on_the_unit() -> None:
    # bytes or megabytes, percent or ratio: every rule scales with the column (unlike BARO's scale of 1)
    rng = np.random.default_rng(9)
    normal = np.c_[rng.normal(3e8, 1e5, 200), np.full(200, 8e6), rng.normal(0.5, 0.1, 200)]
    anomalous = np.c_[rng.normal(3.2e8, 1e5, 60), np.full(60, 9e6), rng.normal(0.9, 0.1, 60)]
    unit = np.array([1e-6, 1e-6, 100.0])
    a, _ = robust_scores(normal, anomalous)
    b, _ = robust_scores(normal * unit, anomalous * unit)
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_deterministic_ties_keep_column_order() -> None:
    rng = np.random.default_rng(10)
    x_n, x_a = rng.normal(0, 1, (100, 1)), rng.normal(4, 1, (30, 1))
    normal = np.hstack([x_n, x_n, rng.normal(0, 1, (100, 1))])
    anomalous = np.hstack([x_a, x_a, rng.normal(0, 1, (30, 1))])
    cols = ["b_cpu", "a_cpu", "c_cpu"]
    first = rank_root_causes(cols, normal, anomalous)
    assert _names(first)[:2] == ["b_cpu", "a_cpu"] and first[0][1] == first[1][1]
    assert rank_root_causes(cols, normal, anomalous) == first
    swapped = rank_root_causes(["a_cpu", "b_cpu", "c_cpu"], normal, anomalous)
    assert _names(swapped)[:2] == ["a_cpu", "b_cpu"]


def test_column_permutation_only_permutes_scores() -> None:
    rng = np.random.default_rng(11)
    normal, anomalous = rng.normal(0, 1, (80, 6)), rng.normal(0, 1, (40, 6)) + np.arange(6)
    cols = [f"s{i}_cpu" for i in range(6)]
    perm = rng.permutation(6)
    a = _scores(rank_root_causes(cols, normal, anomalous))
    b = _scores(rank_root_causes([cols[i] for i in perm], normal[:, perm], anomalous[:, perm]))
    assert a == b


def test_services_follow_their_best_column() -> None:
    ranked = [("carts-db_cpu", 9.0), ("orders_mem", 5.0), ("carts-db_mem", 4.0), ("orders_lat_90", 1.0)]
    assert rank_services(ranked) == [("carts-db", 9.0), ("orders", 5.0)]
    assert service_of("carts-db_cpu") == "carts-db" and service_of("orders_lat_90") == "orders"
