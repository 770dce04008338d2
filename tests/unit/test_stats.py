"""Statistics against values computed directly with scipy, and the exact early-stop bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nanogpt_tui.validator.stats import (
    best_reachable_p_value,
    can_still_pass,
    faster_test,
    log_stats,
    loss_p_value,
    summarize_times,
)

LOSSES = [3.2771, 3.2779, 3.2765, 3.2790, 3.2782, 3.2776, 3.2769, 3.2785, 3.2774, 3.2780]
TIMES = [98031.0, 98210.0, 97950.0, 98400.0, 98120.0, 98060.0, 98300.0, 97990.0, 98150.0, 98080.0]


def test_loss_p_value_is_scipys_one_sided_ttest():
    expected = stats.ttest_1samp(LOSSES, 3.28, alternative="less").pvalue
    assert loss_p_value(LOSSES, 3.28) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(loss_p_value([3.27], 3.28))
    # Identical runs below the target: certain, above: impossible.
    assert loss_p_value([3.27, 3.27, 3.27], 3.28) == 0.0
    assert loss_p_value([3.29, 3.29], 3.28) == 1.0


def test_time_summary_and_ci():
    s = summarize_times(TIMES)
    x = np.array(TIMES)
    assert s.mean_ms == pytest.approx(x.mean()) and s.std_ms == pytest.approx(x.std(ddof=1))
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert s.ci95_ms == pytest.approx((lo, hi))
    assert s.cv == pytest.approx(x.std(ddof=1) / x.mean())


def test_welch_faster_test_and_min_detectable_speedup():
    base = [t + 600 for t in TIMES[::-1]]
    test = faster_test(TIMES, baseline="anchor", baseline_runs_ms=base, alpha=0.01)
    expected = stats.ttest_ind(TIMES, base, equal_var=False, alternative="less").pvalue
    assert test.method == "welch" and test.p_value == pytest.approx(expected, rel=1e-10)
    assert test.difference_ms == pytest.approx(600.0)
    # The MDE: (t_{0.99,df} + t_{0.8,df}) * standard error; with equal spreads df is 18.
    se = math.sqrt(np.var(TIMES, ddof=1) / 10 + np.var(base, ddof=1) / 10)
    assert test.min_detectable_ms == pytest.approx((stats.t.ppf(0.99, 18) + stats.t.ppf(0.8, 18)) * se, rel=1e-6)
    one = faster_test(TIMES, baseline="official", baseline_mean_ms=98500.0)
    assert one.method == "one-sample"
    assert one.p_value == pytest.approx(stats.ttest_1samp(TIMES, 98500.0, alternative="less").pvalue)
    with pytest.raises(ValueError):
        faster_test([1.0], baseline="x", baseline_mean_ms=2.0)


def test_log_stats_json_shape():
    d = log_stats(LOSSES, TIMES, 3.28).to_dict()
    assert set(d) == {"n", "p_value", "mean_val_loss", "mean_train_time_ms", "std_train_time_ms",
                      "ci95_train_time_ms"}
    assert d["n"] == 10 and len(d["ci95_train_time_ms"]) == 2


def _p(rows, target=3.28):
    """One-sided p-values of many samples at once (one per row)."""
    x = np.asarray(rows)
    n = x.shape[-1]
    return stats.t.cdf((x.mean(-1) - target) / (x.std(-1, ddof=1) / math.sqrt(n)), n - 1)


@pytest.mark.parametrize("seed", range(20))
def test_early_stop_bound_is_never_beaten(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    m = int(rng.integers(1, 10 - k + 1))
    observed = rng.normal(3.28 + rng.normal(0, 0.01), 0.002 + abs(rng.normal(0, 0.01)), k)
    bound = best_reachable_p_value(observed, m, 3.28)
    # Equal fills over a wide grid, and random fills: none gets below the bound ...
    grid = np.concatenate([np.linspace(-100, 100, 20001), 3.28 + np.linspace(-0.5, 0.5, 20001)])
    equal = _p(np.concatenate([np.broadcast_to(observed, (len(grid), k)), np.repeat(grid[:, None], m, 1)], 1))
    fills = rng.normal(rng.normal(3.2, 0.3, (5000, 1)), np.abs(rng.normal(0, 0.1, (5000, 1))), (5000, m))
    random = _p(np.concatenate([np.broadcast_to(observed, (5000, k)), fills], 1))
    assert bound <= np.nanmin(equal) + 1e-12 and bound <= np.nanmin(random) + 1e-12
    # ... and the bound is attained in the limit (exact, not merely a lower bound).
    assert np.nanmin(equal) - bound < 5e-3


def test_early_stop_decisions():
    # Runs far above the target with little spread: hopeless after a few runs of ten.
    assert not can_still_pass([3.40, 3.41, 3.40, 3.42, 3.41, 3.40, 3.41], 3, 3.28, 0.01)
    # Runs comfortably below: keep going.
    assert can_still_pass([3.20, 3.21], 8, 3.28, 0.01)
    # With nothing left, the bound is the actual p-value.
    assert best_reachable_p_value(LOSSES, 0, 3.28) == pytest.approx(loss_p_value(LOSSES, 3.28))


def test_min_detectable_speedup_without_a_baseline():
    from nanogpt_tui.validator.stats import min_detectable_speedup_ms

    se = math.sqrt(2 * np.var(TIMES, ddof=1) / 10)
    assert min_detectable_speedup_ms(TIMES, 0.01) == pytest.approx((stats.t.ppf(0.99, 18) + stats.t.ppf(0.8, 18)) * se)
    assert math.isnan(min_detectable_speedup_ms([1.0]))
