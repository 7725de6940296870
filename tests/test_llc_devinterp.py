"""devinterp 2.0.1 (the ``[slt]`` extra) as a cross-check of our SGLD estimate of the LLC.

Ground truths: the exact Gaussian chain on a quadratic loss (``gaussian_llc``, ``gaussian_llc_by_step``:
the regular model's λ = d/2 with the finite-γ, finite-ε correction, and the chain's transient
from w*), and, on a trained transformer where no closed form exists, the step-for-step path of our
own sampler fed the same noise. Tolerances are Monte-Carlo: the spread of the 4-chain estimate
over repeated seeds, measured with our (fast) sampler and stated where used.

devinterp's per-step cost is several times ours (it writes every step's losses to a zarr store),
so each test keeps its step count small; the module is skipped where devinterp is absent, except
the last two tests, which run everywhere.
"""

import builtins
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnautomata.errors import ConfigError
from rnnautomata.icl.llc import SGLD, estimate_llc, gaussian_llc, gaussian_llc_by_step
from rnnautomata.icl.llc_devinterp import SLT_EXTRA, estimate_llc_devinterp
from tests.test_llc import regression as llc_regression


def needs_devinterp():
    """Skip unless devinterp and what its LLC module imports (transformers, datasets) load."""
    try:
        import devinterp.slt.llc  # noqa: F401
    except ImportError as err:
        pytest.skip(f"devinterp is not installed or does not import ({err}): {SLT_EXTRA}")


def mse(model, x, y):
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def regression(n, d, seed=0):
    """test_llc's noiseless linear regression at its exact minimum, plus the eigenvalues of the
    MSE's Hessian 2 xᵀx / n."""
    model, x, y = llc_regression(n, d, seed)
    return model, x, y, np.linalg.eigvalsh(2 * (x.T @ x).numpy() / n)


def test_regular_model_both_estimators_match_the_exact_chain_and_each_other():
    """Linear regression, d = 16 (λ = d/2 = 8), n = 500, ε = 1e-3, γ = 1, 4 chains × 500 draws
    after 50 burn-in steps. The exact expectation of the chain (finite ε and γ) is 8.29 (its ε → 0
    value 7.95, within 1 % of d/2). Over 16 seeds our 4-chain estimate had mean 8.29 and standard
    deviation 0.21 (2.5 %): each estimate must lie within 8 % (3 sd) of the exact value, and the two
    within 11 % of each other (3 sd of a difference of two such estimates)."""
    needs_devinterp()
    model, x, y, h = regression(500, 16)
    n, d = x.shape
    sampler = SGLD(step_size=1e-3, localization=1.0, chains=4, draws=500, burn_in=50)
    ours = estimate_llc(model, mse, (x, y), sampler, torch.Generator().manual_seed(11))
    theirs = estimate_llc_devinterp(model, mse, (x, y), sampler, seed=1000)
    exact = gaussian_llc(h, n / math.log(n), sampler.localization, sampler.step_size)
    assert gaussian_llc(h, n / math.log(n), sampler.localization) == pytest.approx(d / 2, rel=0.01)
    assert theirs.nbeta == pytest.approx(n / math.log(n)) and theirs.init_loss == pytest.approx(0.0, abs=1e-12)
    assert theirs.loss_trace.shape == (4, 550) and theirs.per_chain.shape == (4,)
    assert ours.mean == pytest.approx(exact, rel=0.08)
    assert theirs.mean == pytest.approx(exact, rel=0.08)
    assert theirs.mean == pytest.approx(ours.mean, rel=0.11)
    assert theirs.std > 0


def test_minibatches_map_onto_devinterps_loader():
    """batch_size = 500 of n = 2000 (d = 16, ε = 5e-4): devinterp's shuffled, replayed loader and its
    init_loss over n // m batches; its estimate lies within 8 % of the exact full-batch chain (8.56;
    over three seeds it gave 8.39–8.51, ours 8.70–8.79: minibatch noise moves each a few %), and a
    wrong nβ scaling (by n/m, say) would be off fourfold."""
    needs_devinterp()
    model, x, y, h = regression(2000, 16)
    n = x.shape[0]
    sampler = SGLD(step_size=5e-4, localization=1.0, chains=4, draws=400, burn_in=50, batch_size=500)
    res = estimate_llc_devinterp(model, mse, (x, y), sampler, seed=1)
    assert res.init_loss == pytest.approx(0.0, abs=1e-12)
    assert res.mean == pytest.approx(gaussian_llc(h, n / math.log(n), 1.0, 5e-4), rel=0.08)


def test_a_diverging_devinterp_chain_is_a_one_line_error():
    needs_devinterp()
    model, x, y, _ = regression(100, 2)
    with pytest.raises(FloatingPointError, match="lower SGLD.step_size") as err:
        estimate_llc_devinterp(model, mse, (x, y), SGLD(step_size=10.0, chains=2, draws=20, burn_in=0))
    assert "\n" not in str(err.value)


def test_devinterp_reports_the_mean_with_burn_in_which_lies_below_ours_from_the_minimum():
    """Started at the minimum, the chain's loss climbs from L(w*) to its stationary level, so an
    average that keeps the burn-in steps (devinterp's ``llc_mean``) lies below one that drops them.

    Linear regression with d = 64, ε = 2e-4 (slow relaxation: 1/(ε a) is 17–75 steps), 100 burn-in
    steps then 300 draws. (1) devinterp's reported mean is exactly nβ × (the mean over *all* steps of
    its own per-step loss trace − init_loss), i.e. burn-in included; (2) the exact transient
    (``gaussian_llc_by_step``) predicts 29.24 with burn-in and 31.72 without: each estimate lies
    within 8 % (3 sd; our 4-chain sd is 0.8 here) of its prediction; (3) the paired difference
    (without − with) is 2.48 in expectation and its sd over 10 of our runs was 0.42: it must be
    positive and within 1.25 (3 sd) of 2.48."""
    needs_devinterp()
    model, x, y, h = regression(500, 64)
    n = x.shape[0]
    burn_in, draws = 100, 300
    sampler = SGLD(step_size=2e-4, localization=1.0, chains=4, draws=draws, burn_in=burn_in)
    res = estimate_llc_devinterp(model, mse, (x, y), sampler, seed=7)
    full = res.nbeta * (res.loss_trace.mean(axis=1) - res.init_loss)                 # (chains,) burn-in included
    assert res.reported_mean == pytest.approx(full.mean(), rel=1e-6)
    drawn = res.nbeta * (res.loss_trace[:, burn_in:].mean(axis=1) - res.init_loss)    # (chains,) burn-in excluded
    assert res.mean == pytest.approx(drawn.mean(), rel=1e-12)
    by_step = gaussian_llc_by_step(h, n / math.log(n), sampler.localization, sampler.step_size, burn_in + draws)
    assert by_step[burn_in:].mean() - by_step.mean() == pytest.approx(2.48, abs=0.01)
    assert res.reported_mean == pytest.approx(by_step.mean(), rel=0.08)
    assert res.mean == pytest.approx(by_step[burn_in:].mean(), rel=0.08)
    gap = res.mean - res.reported_mean
    assert gap > 0
    assert gap == pytest.approx(by_step[burn_in:].mean() - by_step.mean(), abs=1.25)


def test_gaussian_llc_by_step_tends_to_the_stationary_value_and_matches_our_chain():
    """The exact transient starts at 0, rises monotonically to ``gaussian_llc``, and our sampler's
    per-step losses (d = 32, averaged over 16 chains and 60-step windows, about 4 % noise each)
    follow it within 15 % (no devinterp needed)."""
    model, x, y, h = regression(400, 32, seed=3)
    n = x.shape[0]
    nbeta, eps, gamma = n / math.log(n), 2e-4, 1.0
    by_step = gaussian_llc_by_step(h, nbeta, gamma, eps, 3000)
    assert by_step[0] == 0 and np.all(np.diff(by_step) >= 0) and by_step[300] < by_step[-1]
    assert by_step[-1] == pytest.approx(gaussian_llc(h, nbeta, gamma, eps), rel=1e-6)
    sampler = SGLD(step_size=eps, localization=gamma, chains=16, draws=300, burn_in=0)
    res = estimate_llc(model, mse, (x, y), sampler, torch.Generator().manual_seed(0))
    per_step = nbeta * res.loss_trace.mean(axis=0)                                   # (300,)
    windows = per_step.reshape(5, 60).mean(axis=1)                                   # 60-step windows
    expected = by_step[:300].reshape(5, 60).mean(axis=1)
    np.testing.assert_allclose(windows, expected, rtol=0.15)
    with pytest.raises(ValueError, match="diverges"):
        gaussian_llc_by_step(h, nbeta, gamma, 1.0, 10)


# ----------------------------------------------------------------------------- a trained transformer
@pytest.fixture(scope="module")
def trained_transformer():
    """A one-layer RegressionTransformer (D = 2, K = 4, d = 16) trained 300 Adam steps on in-context
    linear regression (to the plateau of the mean predictor, loss 2.38 → 1.82); returns (model,
    the 128 sequences the LLC is measured on (xs, ys), loss before and after training)."""
    from rnnautomata.data.task_pools import PooledRegression
    from rnnautomata.models.icl_transformer import build_regression_transformer

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_regression_transformer(2, 4, 16, 16, 2, 1, None, gen)
    task = PooledRegression(2, 4, 0.05)
    rng = np.random.default_rng(0)
    fixed = task.sample(128, np.random.default_rng(99))
    def loss(m):
        with torch.no_grad():
            return float(((m(fixed.xs, fixed.ys) - fixed.ys) ** 2).mean())

    before = loss(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        b = task.sample(64, rng)
        opt.zero_grad()
        ((model(b.xs, b.ys) - b.ys) ** 2).mean().backward()
        opt.step()
    return model, (fixed.xs, fixed.ys), before, loss(model)


def seq_mse(model, xs, ys):
    return ((model(xs, ys) - ys) ** 2).mean()


def test_trained_transformer_same_noise_same_path(trained_transformer):
    """On a float32 model with full-batch sampling, devinterp's chain c (init_seed s) draws the same
    standard normals as our chain 0 with a generator seeded s + c, so, if its SGLD step is ours
    (ε/2 (nβ ∇L + γ (w − w*)) + √ε ξ, loss taken before the step), the two loss traces agree step
    for step up to float32 rounding (measured: 4e-7): checked to 1e-5 relative over 120 steps of
    2 chains, and so are the per-chain λ̂ (burn-in excluded)."""
    needs_devinterp()
    model, data, before, after = trained_transformer
    assert after < 0.8 * before                              # a trained checkpoint, not the initialisation
    sampler = SGLD(step_size=1e-4, localization=100.0, chains=2, draws=100, burn_in=20)
    theirs = estimate_llc_devinterp(model, seq_mse, data, sampler, seed=21)
    one = SGLD(step_size=1e-4, localization=100.0, chains=1, draws=120, burn_in=0, nbeta=theirs.nbeta)
    for c in range(2):
        ours = estimate_llc(model, seq_mse, data, one, torch.Generator().manual_seed(21 + c))
        np.testing.assert_allclose(theirs.loss_trace[c], ours.loss_trace[0], rtol=1e-5)
        ours_lam = theirs.nbeta * (ours.loss_trace[0, 20:].mean() - ours.init_loss)
        assert theirs.per_chain[c] == pytest.approx(ours_lam, rel=1e-3)
    assert theirs.init_loss == pytest.approx(after, rel=1e-5)


@pytest.mark.slow
def test_trained_transformer_independent_chains_agree(trained_transformer):
    """With independent noise (our generator's stream against devinterp's reseeded chains), the two
    estimates on the trained transformer agree within 4 standard errors of their difference (the
    per-chain spread of each, 4 chains × 150 draws after 50 burn-in steps), and both are positive.
    Slow: about 25 s on a loaded CPU core (a transformer step costs ~10 ms, devinterp's more)."""
    needs_devinterp()
    model, data, _, _ = trained_transformer
    sampler = SGLD(step_size=1e-4, localization=100.0, chains=4, draws=150, burn_in=50)
    ours = estimate_llc(model, seq_mse, data, sampler, torch.Generator().manual_seed(1234))
    theirs = estimate_llc_devinterp(model, seq_mse, data, sampler, seed=5678)
    se = math.hypot(ours.std, theirs.std) / math.sqrt(sampler.chains)
    assert ours.mean > 0 and theirs.mean > 0
    assert abs(ours.mean - theirs.mean) < 4 * se


def test_global_random_state_is_left_as_it_was():
    """devinterp reseeds torch, numpy and random globally; the wrapper restores all three."""
    needs_devinterp()
    import random

    model, x, y, _ = regression(50, 2)
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    expected = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    estimate_llc_devinterp(model, mse, (x, y), SGLD(chains=1, draws=3, burn_in=1), seed=0)
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expected


# ------------------------------------------------------------------------------ without devinterp
def test_without_devinterp_the_error_is_one_line_naming_the_extra(monkeypatch):
    """Runs where devinterp is installed too: its modules are hidden from the import system."""
    real_import = builtins.__import__

    def hiding(name, *args, **kwargs):
        if name.split(".")[0] in ("devinterp", "datasets"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.split(".")[0] == "devinterp"]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", hiding)
    model, x, y, _ = regression(20, 2)
    with pytest.raises(ConfigError) as err:
        estimate_llc_devinterp(model, mse, (x, y), SGLD(chains=1, draws=2, burn_in=0))
    assert "\n" not in str(err.value) and "pip install 'rnnautomata[slt]'" in str(err.value)


def test_importing_rnnautomata_does_not_import_devinterp():
    code = ("import sys, rnnautomata, rnnautomata.icl, rnnautomata.icl.llc, rnnautomata.icl.llc_devinterp, "
            "rnnautomata.studies.transient_ridge; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'devinterp', 'transformers', 'datasets'}))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip() == "[]"
