"""Ridge and dMMSE_M on every prefix (rnnautomata.icl.baselines), against independent references:
numpy solves, explicit enumeration of the discrete posterior, the ridge loss in closed form,
Bayes-optimality on each one's own prior, and dMMSE_M -> ridge as M grows."""

import math

import numpy as np
import pytest
import torch

from rnnautomata.data.task_pools import PooledRegression, task_sequence
from rnnautomata.icl.baselines import dmmse_predictions, prefix_mse, ridge_predictions


def _batch(pool, n, d=3, k=6, noise_var=0.25, seed=0):
    return PooledRegression(d, k, noise_var, pool).sample(n, np.random.default_rng(seed))


def test_ridge_matches_a_numpy_solve_at_every_prefix():
    b = _batch(None, 5, noise_var=0.3)
    pred = ridge_predictions(b.xs, b.ys, 0.3).numpy()
    x, y = b.xs.double().numpy(), b.ys.double().numpy()
    for i in range(5):
        for k in range(6):
            xk, yk = x[i, :k], y[i, :k]                     # the k earlier pairs
            t = np.linalg.solve(xk.T @ xk + 0.3 * np.eye(3), xk.T @ yk)
            assert pred[i, k] == pytest.approx(x[i, k] @ t, abs=1e-10)
    assert np.all(pred[:, 0] == 0)                          # no examples: the prior mean 0


def test_dmmse_matches_explicit_enumeration_of_the_posterior():
    pool = task_sequence(5, 3, seed=1)
    b = _batch(pool, 4, noise_var=0.5, seed=2)
    pred = dmmse_predictions(b.xs, b.ys, pool, 0.5).numpy()
    x, y = b.xs.double().numpy(), b.ys.double().numpy()
    for i in range(4):
        for k in range(6):
            logw = []
            for t in pool:                                  # log-likelihood of the k earlier pairs
                logw.append(sum(-(y[i, j] - x[i, j] @ t) ** 2 / (2 * 0.5) for j in range(k)))
            w = np.exp(np.array(logw) - max(logw))
            t_hat = (w[:, None] * pool).sum(0) / w.sum()
            assert pred[i, k] == pytest.approx(x[i, k] @ t_hat, abs=1e-10)


def test_dmmse_with_one_task_predicts_that_task():
    pool = task_sequence(1, 3, seed=0)
    b = _batch(pool, 8)
    assert torch.allclose(dmmse_predictions(b.xs, b.ys, pool, 0.25), b.xs.double() @ torch.tensor(pool[0]), atol=1e-10)


def test_dmmse_is_chunked_without_changing_the_answer():
    pool = task_sequence(7, 3, seed=0)
    b = _batch(pool, 9)
    whole = dmmse_predictions(b.xs, b.ys, pool, 0.25)
    assert torch.allclose(dmmse_predictions(b.xs, b.ys, pool, 0.25, chunk=40), whole, atol=1e-12)


def test_ridge_loss_matches_its_closed_form():
    """Under t ~ N(0, I), E[(y_k − ŷ_k)² | X] = σ² + x_kᵀ Σ_k x_k with Σ_k = (X_kᵀX_k/σ² + I)⁻¹;
    at k = 1 (no examples) it is D + σ² exactly."""
    d, k, s2 = 3, 6, 0.25
    b = _batch(None, 20000, d, k, s2, seed=3)
    per = prefix_mse(ridge_predictions(b.xs, b.ys, s2), b.ys).numpy()             # (K,)
    x = b.xs.double().numpy()
    expected = np.empty(k)
    for j in range(k):
        gram = np.einsum("bki,bkj->bij", x[:, :j], x[:, :j])                       # (B, D, D)
        cov = np.linalg.inv(gram / s2 + np.eye(d))
        expected[j] = s2 + np.einsum("bi,bij,bj->b", x[:, j], cov, x[:, j]).mean()
    assert expected[0] == pytest.approx(d + s2, rel=0.03)
    # Monte Carlo over t and ε only: 20,000 sequences give a few per cent
    np.testing.assert_allclose(per, expected, rtol=0.05)


@pytest.mark.parametrize("prior", ["gaussian", "pool"])
def test_each_baseline_is_bayes_optimal_on_its_own_prior(prior):
    """On data from its own prior, a baseline's MSE is not beaten by the other beyond Monte Carlo
    error (paired differences, 3 standard errors); the other is strictly worse somewhere."""
    d, k, s2 = 3, 6, 0.25
    pool = task_sequence(8, d, seed=4)
    b = _batch(None if prior == "gaussian" else pool, 20000, d, k, s2, seed=5)
    ridge = ((ridge_predictions(b.xs, b.ys, s2) - b.ys.double()) ** 2).numpy()       # (B, K)
    dmmse = ((dmmse_predictions(b.xs, b.ys, pool, s2) - b.ys.double()) ** 2).numpy()
    own, other = (ridge, dmmse) if prior == "gaussian" else (dmmse, ridge)
    diff = (other - own).mean(1)                                                     # per sequence
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert diff.mean() > -3 * se
    assert diff.mean() > 3 * se                                                      # and here clearly better


def test_dmmse_tends_to_ridge_as_the_pool_grows():
    """With the pool drawn from N(0, I), dMMSE_M -> ridge: the mean squared distance of their
    predictions, relative to the mean square of y, falls with M and is below 10⁻³ at M = 2^15
    (D = 2, K = 4, σ² = 0.25; stated tolerance; measured 5.6e-5, and 0.39 at M = 4)."""
    d, k, s2 = 2, 4, 0.25
    b = _batch(None, 500, d, k, s2, seed=6)
    ridge = ridge_predictions(b.xs, b.ys, s2)
    scale = float((b.ys.double() ** 2).mean())
    gaps = []
    for m in (4, 64, 1024, 2 ** 15):
        pool = task_sequence(m, d, seed=7)
        gaps.append(float(((dmmse_predictions(b.xs, b.ys, pool, s2) - ridge) ** 2).mean()) / scale)
    assert all(a > b_ for a, b_ in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-3, gaps
    assert gaps[0] > 0.1, gaps


def test_baselines_refuse_zero_noise():
    b = _batch(None, 2)
    with pytest.raises(ValueError, match="noise_var"):
        ridge_predictions(b.xs, b.ys, 0.0)
    with pytest.raises(ValueError, match="noise_var"):
        dmmse_predictions(b.xs, b.ys, task_sequence(2, 3, 0), 0.0)


def test_task_pools_are_nested():
    long = task_sequence(100, 4, seed=3)
    for m in (1, 7, 64):
        np.testing.assert_array_equal(task_sequence(m, 4, seed=3), long[:m])
    assert not np.allclose(task_sequence(4, 4, seed=4), long[:4])
