"""The paired bootstrap shared by the summary and head_safety."""

from __future__ import annotations

import numpy as np
import pytest

from isaac.bootstrap import BOOTSTRAP_CHUNK, bootstrap_interval, resample_indices


def test_bootstrap_interval_by_hand():
    values = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    seeds = np.array([[0, 0], [1, 1], [0, 1]])
    prompts = np.array([[0, 1, 2], [0, 0, 0], [0, 0, 1]])
    # resample means: 2/3 (seed 0 twice), 1 (seed 1), (0 + 0 + 1 + 1 + 1 + 1) / 6 = 2/3
    means = np.array([2 / 3, 1.0, 2 / 3])
    lo, hi = bootstrap_interval(values, seeds, prompts)
    assert lo == pytest.approx(np.quantile(means, 0.025))
    assert hi == pytest.approx(np.quantile(means, 0.975))
    assert lo == pytest.approx(2 / 3) and hi == pytest.approx(2 / 3 + 0.95 * (1 - 2 / 3))


def test_bootstrap_interval_is_the_same_across_chunks():
    """More resamples than one vectorised block: the same as a plain loop over resamples."""
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2, size=(3, 11)).astype(float)
    resamples = 2 * BOOTSTRAP_CHUNK + 37
    seeds, prompts = resample_indices(3, 11, resamples, seed=3)
    assert seeds.shape == (resamples, 3) and prompts.shape == (resamples, 11)
    means = [values[np.ix_(s, p)].mean() for s, p in zip(seeds, prompts)]
    lo, hi = bootstrap_interval(values, seeds, prompts)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)


def test_resample_indices_draw_seeds_only_with_several_seeds():
    seeds, prompts = resample_indices(1, 7, 500, seed=1)
    assert (seeds == 0).all() and seeds.shape == (500, 1)
    assert prompts.min() == 0 and prompts.max() == 6 and prompts.shape == (500, 7)
    seeds, prompts = resample_indices(3, 7, 500, seed=1)
    assert set(np.unique(seeds)) == {0, 1, 2} and seeds.shape == (500, 3)
    # seeds drawn with replacement: some resamples repeat a seed
    assert any(len(set(s)) < 3 for s in seeds)
    again = resample_indices(3, 7, 500, seed=1)
    assert np.array_equal(again[0], seeds) and np.array_equal(again[1], prompts)


@pytest.mark.parametrize(
    "n, resamples, seed", [(1, 10, 0), (13, 500, 7), (250, 3 * BOOTSTRAP_CHUNK + 1, 42)]
)
def test_one_seed_is_the_bootstrap_of_a_mean_over_prompts_with_the_same_draws(n, resamples, seed):
    """With one seed, the interval equals resampling the prompts' values from the same
    Generator directly, to the last bit."""
    values = np.random.default_rng(seed + 1).random(n) - 0.5
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    expected = (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    seeds, prompts = resample_indices(1, n, resamples, seed)
    assert bootstrap_interval(values[None, :], seeds, prompts) == expected
