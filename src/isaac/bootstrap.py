"""The paired percentile bootstrap over seeds and prompts, used by the summary and head_safety.

A resample draws prompts with replacement and, with several seeds, seeds with replacement; the
same draws serve every comparison, so differences between methods are paired. With one seed
only prompts are drawn, which makes it the plain bootstrap of a mean over prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_CHUNK = 200  # resamples per vectorised block (memory: chunk x seeds x prompts)


@dataclass(frozen=True)
class SummaryConfig:
    """The summary section: bootstrap size and seed, the methods every method is compared with
    (null for head_safety, which compares a pool's head with its rest)."""

    resamples: int
    seed: int
    baselines: tuple | None


def resample_indices(
    n_seeds: int, n_prompts: int, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(resamples x seeds, resamples x prompts) index draws, shared by every comparison."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(n_prompts, size=(resamples, n_prompts))
    if n_seeds == 1:
        return np.zeros((resamples, 1), dtype=np.int64), prompts
    return rng.integers(n_seeds, size=(resamples, n_seeds)), prompts


def bootstrap_interval(
    values: np.ndarray, seeds: np.ndarray, prompts: np.ndarray
) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of the mean of `values` (seeds x prompts) over the resamples."""
    means = np.concatenate(
        [
            values[
                seeds[b : b + BOOTSTRAP_CHUNK, :, None], prompts[b : b + BOOTSTRAP_CHUNK, None, :]
            ].mean(axis=(1, 2))
            for b in range(0, len(seeds), BOOTSTRAP_CHUNK)
        ]
    )
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)
