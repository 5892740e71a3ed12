# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Statistics of run comparisons: paired deltas with a bootstrap interval,
and the Pareto front of accuracy against cost (pure numpy).

scipy's ``scipy.stats.bootstrap`` computes the same percentile interval,
but draws its resamples all at once (``num_samples x n`` values in memory)
and its default method (BCa) is not the plain percentile one documented
here; :func:`bootstrap_ci` draws them in bounded chunks from one seeded
``np.random.default_rng``.
"""
import math
from typing import Sequence, Tuple

import numpy as np

__all__ = ['bootstrap_ci', 'paired_comparison', 'pareto_front']


def bootstrap_ci(values: Sequence[float],
                 num_samples: int = 10000,
                 seed: int = 0,
                 level: float = 0.95) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic by seed).

    ``num_samples`` resamples of ``len(values)`` with replacement from
    ``np.random.default_rng(seed)``, drawn in chunks (memory bounded), then
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of their
    means (numpy's linear interpolation).

    Returns:
        tuple[float, float]: ``(low, high)``; NaNs for no values.

    Examples:
        >>> bootstrap_ci([0.1, 0.1, 0.1])
        (0.1, 0.1)
    """
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means, n, chunk = [], values.size, max(1, 2**20 // max(values.size, 1))
    left = num_samples
    while left > 0:
        size = min(chunk, left)
        means.append(values[rng.integers(0, n, (size, n))].mean(1))
        left -= size
    means = np.concatenate(means)
    alpha = (1 - level) / 2
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def paired_comparison(ids_a: Sequence[str], values_a: Sequence[float],
                      ids_b: Sequence[str], values_b: Sequence[float],
                      rule: str = 'greater', tol: float = 1e-9,
                      num_samples: int = 10000, seed: int = 0) -> dict:
    """Run B against run A on the images / cases both scored.

    Args:
        ids_a, values_a: Run A's case ids and scores (NaN: not scored).
        ids_b, values_b: Run B's.
        rule (str): ``'greater'`` (larger is better) or ``'less'``.
        tol (float): ``|B - A| <= tol`` is a tie. Defaults to 1e-9.
        num_samples (int): Bootstrap resamples. Defaults to 10000.
        seed (int): Bootstrap seed. Defaults to 0.

    Returns:
        dict: ``n`` (cases scored by both), ``ids``, ``deltas`` (B - A per
        case), ``mean_delta``, ``ci_low``, ``ci_high``, ``wins`` / ``ties``
        / ``losses`` (of B).
    """
    a = dict(zip(ids_a, np.asarray(values_a, np.float64)))
    b = dict(zip(ids_b, np.asarray(values_b, np.float64)))
    ids = [i for i in ids_a if i in b and np.isfinite(a[i])
           and np.isfinite(b[i])]
    deltas = np.asarray([b[i] - a[i] for i in ids], np.float64)
    better = deltas if rule == 'greater' else -deltas
    low, high = bootstrap_ci(deltas, num_samples, seed)
    return dict(
        n=len(ids), ids=ids, deltas=deltas.tolist(),
        mean_delta=float(deltas.mean()) if len(ids) else math.nan,
        ci_low=low, ci_high=high,
        wins=int((better > tol).sum()), ties=int(
            (np.abs(deltas) <= tol).sum()), losses=int((better < -tol).sum()))


def pareto_front(costs: Sequence[float], scores: Sequence[float],
                 lower_cost_is_better: bool = True) -> np.ndarray:
    """Which points no other point beats on both cost and score.

    Point ``i`` is dominated if some ``j`` has a cost at least as good and
    a score at least as high, one of them strictly. Points with a NaN are
    never on the front.

    Args:
        costs (Sequence[float]): E.g. FLOPs (lower is better) or images/s
            (``lower_cost_is_better=False``).
        scores (Sequence[float]): Higher is better.
        lower_cost_is_better (bool): Defaults to True.

    Returns:
        np.ndarray: ``(N,)`` bool, True on the front.
    """
    cost = np.asarray(costs, np.float64)
    score = np.asarray(scores, np.float64)
    if not lower_cost_is_better:
        cost = -cost
    ok = np.isfinite(cost) & np.isfinite(score)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        dominated = others & (cost <= cost[i]) & (score >= score[i]) & (
            (cost < cost[i]) | (score > score[i]))
        front[i] = not dominated.any()
    return front
