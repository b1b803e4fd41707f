"""Confidence intervals of held-out figures: one percentile bootstrap, used for every figure evaluation reports.

A *statistic* here is a function of an index matrix: given `(resamples, n)` indices into the `n` units of a test (its
rows, dialogues or replies), it returns the `(resamples,)` figures of the resampled tests, so that a thousand
resamples cost a few array operations instead of a thousand calls of the metric. The metrics' own modules build their
statistics (`accuracy_statistic`, `macro_f1_statistic`, `distinct_statistic`, `perplexity_statistic`); this module
draws the indices, turns the resampled figures into an interval, and provides the two generic statistics (a mean of
per-unit values, a ratio of per-unit sums).

The indices are drawn with a fixed seed, so the same test gives the same interval on every run, and every figure of
one test is resampled with the same indices. `paired_difference_interval` resamples two systems scored on the same
units together: the interval of their difference, which is what tells two systems apart (two overlapping intervals do
not show that the difference could be zero, nor do two disjoint ones measure it).
"""

from collections.abc import Callable

import numpy as np


# Efron & Tibshirani's advice for percentile intervals (at least 1000; a few hundred serve a standard error only).
RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
SUFFIX = "_ci95"  # a figure's interval is stored beside it as `<name>_ci95: [low, high]`

Statistic = Callable[[np.ndarray], np.ndarray]  # (resamples, n) indices -> (resamples,) figures


def bootstrap_settings() -> dict:
    """How the intervals of a report were computed, recorded once in the report."""
    return {"method": "percentile bootstrap", "confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED}


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """`(resamples, n)` indices drawn uniformly with replacement from `range(n)`: one resampled test per row."""
    if n < 1 or resamples < 1:
        raise ValueError(f"Bootstrap resampling needs n >= 1 units and resamples >= 1; got n={n}, {resamples}.")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(estimates, confidence: float = CONFIDENCE) -> list[float]:
    """`[low, high]`: the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled figures."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}.")
    tail = 50 * (1 - confidence)
    low, high = np.percentile(np.asarray(estimates, dtype=float), [tail, 100 - tail])
    return [float(low), float(high)]


def bootstrap_interval(
    statistic: Statistic, n: int, resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
) -> list[float]:
    """The percentile-bootstrap interval of `statistic` over `n` units."""
    return percentile_interval(statistic(resample_indices(n, resamples, seed)), confidence)


def paired_difference_interval(
    statistic_a: Statistic,
    statistic_b: Statistic,
    n: int,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> list[float]:
    """The percentile-bootstrap interval of `statistic_a - statistic_b`, both computed on the same resampled units
    (the same test rows for two classifiers, the same dialogues for two language models)."""
    indices = resample_indices(n, resamples, seed)
    return percentile_interval(statistic_a(indices) - statistic_b(indices), confidence)


def point_estimate(statistic: Statistic, n: int) -> float:
    """The statistic on the test itself (every unit once)."""
    return float(statistic(np.arange(n)[None, :])[0])


def with_intervals(
    figures: dict,
    statistics: dict[str, Statistic],
    n: int,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict:
    """`figures` with `<name>_ci95: [low, high]` inserted after each figure named in `statistics` (all of them
    resampled with the same indices of the `n` units)."""
    indices = resample_indices(n, resamples, seed)
    out = {}
    for name, value in figures.items():
        out[name] = value
        if name in statistics:
            out[name + SUFFIX] = percentile_interval(statistics[name](indices), confidence)
    return out


def mean_statistic(values) -> Statistic:
    """The mean of per-unit values (a 0/1 vector gives a share: accuracy, the share of repetitive replies)."""
    values = np.asarray(values, dtype=float)
    return lambda indices: values[indices].mean(axis=1)


def ratio_statistic(numerators, denominators) -> Statistic:
    """A ratio of sums over the units: sum(numerators) / sum(denominators) (a pooled mean, e.g. the loss per token
    over dialogues of different lengths)."""
    numerators, denominators = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    return lambda indices: numerators[indices].sum(axis=1) / denominators[indices].sum(axis=1)


__all__ = [
    "RESAMPLES",
    "SEED",
    "CONFIDENCE",
    "SUFFIX",
    "bootstrap_settings",
    "resample_indices",
    "percentile_interval",
    "bootstrap_interval",
    "paired_difference_interval",
    "point_estimate",
    "with_intervals",
    "mean_statistic",
    "ratio_statistic",
]
