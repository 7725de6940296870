"""In-context predictors vs their closed-form losses, and the trajectory measures on known answers."""

import numpy as np
import pytest
import torch

from rnnautomata.data.icl import InContextRegression, make_covariance
from rnnautomata.icl import algorithms as alg
from rnnautomata.icl import measures


@pytest.fixture(scope="module")
def setting():
    cov = make_covariance(3, "linear", np.random.default_rng(0))
    return cov, InContextRegression(cov, n_context=9, noise_std=0.3)


def _check(predict, closed, task, seed):
    # 60,000 sequences: the Monte Carlo standard error is ~0.5 % of the loss; allow 4 standard errors
    mean, se = alg.monte_carlo_loss(predict, task, 60_000, np.random.default_rng(seed))
    assert abs(mean - closed) < 4 * se, (mean, se, closed)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_pcr_monte_carlo_matches_closed_form(setting, k):
    cov, task = setting
    _check(lambda b: alg.pcr_predict(b, cov, k), alg.pcr_loss(cov, 9, k, 0.3), task, k)


@pytest.mark.parametrize("k", [1, 3])
def test_attention_pcr_and_gd_match_closed_form(setting, k):
    cov, task = setting
    _check(lambda b: alg.attention_pcr_predict(b, cov, k, 0.3), alg.attention_pcr_loss(cov, 9, k, 0.3), task, 10 + k)
    gamma = np.eye(3) * 0.05
    _check(lambda b: alg.preconditioned_gd_predict(b, gamma), alg.preconditioned_gd_loss(gamma, cov, 9, 0.3), task, 20 + k)


def test_least_squares_and_ridge(setting):
    cov, task = setting
    _check(alg.least_squares_predict, alg.least_squares_loss(3, 9, 0.3), task, 30)
    b = task.sample(100, np.random.default_rng(1))
    assert torch.allclose(alg.ridge_predict(b, 1e-10), alg.least_squares_predict(b), atol=1e-6)
    # ridge with α = σ² is the posterior mean, so no predictor can beat it (up to Monte Carlo error)
    bayes, se = alg.monte_carlo_loss(lambda x: alg.ridge_predict(x, 0.09), task, 60_000, np.random.default_rng(31))
    assert bayes < alg.least_squares_loss(3, 9, 0.3) and bayes < alg.attention_pcr_loss(cov, 9, 3, 0.3)


def test_effective_and_numerical_rank():
    assert measures.effective_rank(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert measures.effective_rank(np.ones(4)) == pytest.approx(4.0)
    assert measures.numerical_rank(np.array([1.0, 0.5, 0.01]), 0.1) == 2


def test_subspace_overlap_known_answers():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    a = q[:, :2] @ np.diag([3.0, 2.0]) @ rng.standard_normal((2, 5))
    assert measures.subspace_overlap(a, 7 * a, 2) == pytest.approx(1.0)
    b = q[:, 2:4] @ rng.standard_normal((2, 5))
    assert measures.subspace_overlap(a, b, 2) == pytest.approx(0.0, abs=1e-12)


def test_spectral_dynamics_and_stability_over_checkpoints():
    # a rank growing 1 -> 2 -> 3 as diagonal entries switch on; the third checkpoint rotates nothing
    states = [{"w": torch.diag(torch.tensor(v))} for v in ([1.0, 0, 0], [1.0, 1, 0], [1.0, 1, 1])]
    spec = measures.spectral_dynamics(states)
    assert spec["w"]["rank"].tolist() == [1, 2, 3]
    stab = measures.subspace_stability(states, k=1)
    assert stab["w"][0] == 1.0
    final = measures.subspace_stability(states, k=3, reference="final")
    assert final["w"][-1] == pytest.approx(1.0)


def test_which_algorithm_is_zero_for_itself(setting):
    cov, task = setting
    b = task.sample(500, np.random.default_rng(0))
    suite = {n: f(b) for n, f in alg.predictor_suite(cov, 0.3).items()}
    dist = measures.which_algorithm(suite["pcr_2"], suite, b.target)
    assert dist["pcr_2"] == 0.0 and min(dist, key=dist.get) == "pcr_2"
