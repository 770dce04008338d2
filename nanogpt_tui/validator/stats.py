"""The statistics a verdict rests on (scipy): val_loss below target, train time with a CI, significantly faster."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

# Power used for the smallest detectable speedup: the conventional 80%.
DETECTION_POWER = 0.8


def _quiet(fn, *args, **kwargs):
    # scipy warns about "catastrophic cancellation" for identical samples; the result (t = +-inf) is still right.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def loss_p_value(val_losses: Sequence[float], target: float) -> float:
    """One-sided t-test that the mean val_loss is below `target` (how upstream records state significance)."""
    if len(val_losses) < 2:
        return math.nan
    result = _quiet(stats.ttest_1samp, np.asarray(val_losses, dtype=float), target, alternative="less")
    return float(result.pvalue)


@dataclass(frozen=True)
class TimeSummary:
    n: int
    mean_ms: float
    std_ms: float  # sample standard deviation (ddof=1)
    ci95_ms: tuple[float, float]  # two-sided 95% t-interval for the mean

    @property
    def cv(self) -> float:
        return self.std_ms / self.mean_ms if self.mean_ms else math.nan


def summarize_times(train_times_ms: Sequence[float]) -> TimeSummary:
    x = np.asarray(train_times_ms, dtype=float)
    n = len(x)
    if n == 0:
        return TimeSummary(0, math.nan, math.nan, (math.nan, math.nan))
    mean = float(x.mean())
    if n == 1:
        return TimeSummary(1, mean, math.nan, (math.nan, math.nan))
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return TimeSummary(n, mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class FasterTest:
    """Is the candidate significantly faster than a baseline? Welch's test against baseline runs, or a one-sample
    test against a single baseline time when only that is known (e.g. an official record time)."""

    baseline: str  # what was compared against, e.g. "anchor (official time)" or "submission_3"
    baseline_mean_ms: float
    difference_ms: float  # baseline mean - candidate mean (positive = faster)
    p_value: float
    method: str  # "welch" or "one-sample"
    min_detectable_ms: float  # smallest speedup these runs detect at alpha with 80% power, at the observed spread

    def to_dict(self) -> dict:
        return asdict(self)


def faster_test(candidate_ms: Sequence[float], *, baseline: str, baseline_runs_ms: Sequence[float] | None = None,
                baseline_mean_ms: float | None = None, alpha: float = 0.01) -> FasterTest:
    c = np.asarray(candidate_ms, dtype=float)
    if len(c) < 2:
        raise ValueError("at least two candidate runs are needed to test for a speedup")
    if baseline_runs_ms is not None and len(baseline_runs_ms) >= 2:
        b = np.asarray(baseline_runs_ms, dtype=float)
        result = _quiet(stats.ttest_ind, c, b, equal_var=False, alternative="less")
        va, vb = c.var(ddof=1) / len(c), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        # Welch-Satterthwaite degrees of freedom.
        df = (va + vb) ** 2 / ((va**2 / (len(c) - 1)) + (vb**2 / (len(b) - 1))) if se > 0 else len(c) + len(b) - 2
        mean_b = float(b.mean())
        method = "welch"
    elif baseline_mean_ms is not None or (baseline_runs_ms is not None and len(baseline_runs_ms) == 1):
        mean_b = float(baseline_mean_ms if baseline_mean_ms is not None else baseline_runs_ms[0])
        result = _quiet(stats.ttest_1samp, c, mean_b, alternative="less")
        se = float(c.std(ddof=1)) / math.sqrt(len(c))
        df = len(c) - 1
        method = "one-sample"
    else:
        raise ValueError("a baseline needs its runs or its mean time")
    mde = (float(stats.t.ppf(1 - alpha, df)) + float(stats.t.ppf(DETECTION_POWER, df))) * se
    return FasterTest(baseline=baseline, baseline_mean_ms=mean_b, difference_ms=mean_b - float(c.mean()),
                      p_value=float(result.pvalue), method=method, min_detectable_ms=mde)


def min_detectable_speedup_ms(candidate_ms: Sequence[float], alpha: float = 0.01) -> float:
    """The smallest speedup a one-sided Welch test detects at `alpha` with 80% power between two samples of this
    size and this spread (used when there is no baseline to compare with yet)."""
    c = np.asarray(candidate_ms, dtype=float)
    n = len(c)
    if n < 2:
        return math.nan
    se = math.sqrt(2 * c.var(ddof=1) / n)
    df = 2 * n - 2
    return (float(stats.t.ppf(1 - alpha, df)) + float(stats.t.ppf(DETECTION_POWER, df))) * se


def best_reachable_p_value(observed: Sequence[float], remaining: int, target: float) -> float:
    """The smallest one-sided p-value (mean below `target`) that `remaining` more runs could possibly produce,
    whatever their val_loss values, given the runs already observed.

    Exact: for a fixed mean of the remaining runs, equal values minimise the variance, so the optimum has all
    remaining runs at one value v. With S, Q the sum and sum of squares of the observed values, the t statistic
    is t(v) = (a + b v) / sqrt(c + d v + e v^2), whose derivative vanishes at a single v* (a linear equation),
    so the infimum is min(t(v*), lim t(v) as v -> -inf). Used to stop retiming early only when no outcome of the
    remaining runs could validate the submission.
    """
    x = np.asarray(observed, dtype=float)
    k, m = len(x), remaining
    n = k + m
    if m == 0:
        return loss_p_value(x, target) if k >= 2 else math.nan
    if n < 2:
        return math.nan
    if k == 0:
        return 0.0  # nothing observed yet: any outcome is still possible
    s, q = float(x.sum()), float((x * x).sum())
    # mean(v) - target = (s + m v)/n - target  ->  a + b v
    a, b = s / n - target, m / n
    # Sample variance times (n-1): q + m v^2 - (s + m v)^2 / n  ->  c + d v + e v^2, then divided by n(n-1).
    c0, d0, e0 = q - s * s / n, -2 * s * m / n, m - m * m / n
    scale = 1.0 / (n * (n - 1))
    c, d, e = c0 * scale, d0 * scale, e0 * scale

    def t_of(v: float) -> float:
        var = c + d * v + e * v * v
        if var <= 0:
            num = a + b * v
            return -math.inf if num < 0 else math.inf
        return (a + b * v) / math.sqrt(var)

    candidates = []
    if e > 0:
        candidates.append(-b / math.sqrt(e))  # v -> -inf
    denom = b * d / 2 - a * e
    if denom != 0:
        candidates.append(t_of((a * d / 2 - b * c) / denom))
    # Equal-to-observed-mean point guards against degenerate algebra (all observed identical).
    candidates.append(t_of(float(x.mean())))
    t_min = min(candidates)
    return float(stats.t.cdf(t_min, n - 1))


def can_still_pass(observed: Sequence[float], remaining: int, target: float, threshold: float) -> bool:
    """False when no val_loss values of the remaining runs could bring the p-value under `threshold`."""
    return best_reachable_p_value(observed, remaining, target) < threshold


@dataclass(frozen=True)
class LogStats:
    """What `nanogpt-tui stats` prints for a set of run logs."""

    n: int
    p_value: float
    mean_val_loss: float
    mean_train_time_ms: float
    std_train_time_ms: float
    ci95_train_time_ms: tuple[float, float]

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        d = asdict(self)
        return {k: ([clean(x) for x in v] if isinstance(v, (list, tuple)) else clean(v)) for k, v in d.items()}


def log_stats(val_losses: Sequence[float], train_times_ms: Sequence[float], target: float) -> LogStats:
    times = summarize_times(train_times_ms)
    return LogStats(n=len(val_losses), p_value=loss_p_value(val_losses, target),
                    mean_val_loss=float(np.mean(val_losses)) if len(val_losses) else math.nan,
                    mean_train_time_ms=times.mean_ms, std_train_time_ms=times.std_ms,
                    ci95_train_time_ms=times.ci95_ms)
