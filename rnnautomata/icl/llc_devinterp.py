"""devinterp 2.0.1's LLC estimator run with our :class:`~rnnautomata.icl.llc.SGLD` settings (the ``[slt]`` extra).

A cross-check of :func:`rnnautomata.icl.llc.estimate_llc` against the reference implementation
(timaeus-research's devinterp, ``pip install 'rnnautomata[slt]'``). devinterp is imported only when
:func:`estimate_llc_devinterp` is called: importing rnnautomata never imports devinterp, nor the
``transformers`` and ``datasets`` packages that devinterp imports.

What devinterp 2.0.1 computes (read from its source, ``devinterp/slt/sampling.py``, ``sampler.py``,
``llc.py`` and ``optim/sgmcmc.py``):

- Its entry point is ``devinterp.slt.llc.llc(model, dataset, observables, lr=, n_beta=, ...)``
  (1.x's ``estimate_learning_coeff_with_summary`` is gone). It samples language models: the
  dataset is a Hugging Face ``Dataset`` with an integer ``input_ids`` column and the loss is a
  per-token loss of shape (batch, seq − 1). We feed it rows ``[i, i]`` (sample indices) and a loss
  that looks the samples up and broadcasts our scalar batch loss to (batch, 1); its mean, which
  devinterp differentiates, is our loss, so the gradient is ours.
- Its SGLD step (``SGMCMC.sgld``, no preconditioner) is the same as ours:
  ``w ← w − (ε/2)(nβ ∇L_m(w) + γ (w − w₀)) + √ε σ ξ`` with ``σ = noise_level = 1``; the loss of a
  step is taken at the weights before it. ``lr`` = ε, ``localization`` = γ, ``n_beta`` = nβ.
- nβ has no default in 2.0.1's ``llc``; its helper ``devinterp.utils.default_nbeta`` gives
  m / log m with m the *batch size*, not n / log n: we always pass our nβ (n / log n when None).
- It records every step's loss (``sampling_loss_micro``, burn-in steps included) and, after
  burn-in, every draw's (``sampling_loss``). ``compute_llc`` averages ``sampling_loss_micro``
  over *every step including burn-in* (its docstring says so), minus ``init_loss``, times nβ.
  We return that number as ``reported_mean`` and, from the same per-step trace with the first
  ``burn_in`` steps of each chain dropped, ``mean`` (our convention).
- ``init_loss`` is the mean of ``num_init_loss_batches`` batch losses; we set that to cover the
  dataset once (n // m batches; full-batch sampling: one batch of all n samples, i.e. L_n(w*)).
- Its ``llc_std`` is xarray's std (ddof = 0); our ``std`` is ddof = 1, as in ``estimate_llc``.

Caveats of the mapping: devinterp draws its noise (float32, whatever the model's dtype) from the
*global* torch RNG, reseeded per chain (``init_seed + chain``), so it takes an integer ``seed``
rather than our ``torch.Generator`` (the global RNG states of torch, numpy and ``random`` are
restored afterwards). For a float32 model, full-batch sampling, chain c of devinterp with seed s
and our chain 0 with ``torch.Generator().manual_seed(s + c)`` draw the same noise and so follow
the same path up to rounding (tested). Minibatches (``batch_size`` < n) come from a shuffled,
``drop_last`` loader whose first epoch is replayed (``itertools.cycle``), not redrawn like ours;
losses are stored as float32; the sampler puts the model copy in train mode; and every step's
per-sample losses and ``input_ids`` are written to a zarr store (a temporary folder here, removed
afterwards), which makes a step several times slower than ours (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from rnnautomata.errors import ConfigError
from rnnautomata.icl.llc import SGLD, samples_and_nbeta

__all__ = ["SLT_EXTRA", "DevinterpLLC", "estimate_llc_devinterp"]

SLT_EXTRA = "pip install 'rnnautomata[slt]'"


@dataclass(frozen=True)
class DevinterpLLC:
    reported_mean: float                # devinterp's own llc_mean: burn-in steps in the average
    reported_std: float                 # devinterp's own llc_std (ddof = 0)
    mean: float                         # burn-in excluded, λ̂ per chain averaged (our convention)
    std: float                          # standard deviation of per_chain (ddof = 1; 0 for one chain)
    per_chain: np.ndarray               # (chains,) burn-in-excluded λ̂ of each chain
    loss_trace: np.ndarray              # (chains, burn_in + draws) every step's batch loss, burn-in first
    init_loss: float                    # devinterp's init_loss (L_n(w*) for full-batch sampling)
    nbeta: float                        # the inverse temperature used


def _import_devinterp():
    try:
        import datasets
        from devinterp.slt import sampler as dsampler
        from devinterp.slt.llc import compute_llc, sample
    except ImportError:
        raise ConfigError(f"the devinterp cross-check needs devinterp 2.0.1, which is not installed: "
                          f"{SLT_EXTRA}") from None
    return datasets, dsampler, sample, compute_llc


@contextlib.contextmanager
def _global_rng_restored() -> Iterator[None]:
    """devinterp reseeds the global torch, numpy and random generators; put them back afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def _quiet_progress(dsampler, progress: bool) -> Iterator[None]:
    """Turn off devinterp's per-chain tqdm bar (its sampler module's ``trange``) unless asked for."""
    original = getattr(dsampler, "trange", None)
    if progress or original is None:
        yield
        return
    dsampler.trange = lambda *a, **k: original(*a, **{**k, "disable": True})
    try:
        yield
    finally:
        dsampler.trange = original


def estimate_llc_devinterp(model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], data: Sequence[torch.Tensor],
                           sampler: SGLD, seed: int = 0, progress: bool = False) -> DevinterpLLC:
    """λ̂ at the model's current weights by devinterp 2.0.1, with ``sampler`` mapped onto its arguments.

    Parameters
    ----------
    model : the network at w* (not changed).
    loss_fn : ``loss_fn(model, *batch) -> scalar`` mean loss over the batch (as for ``estimate_llc``).
    data : tensors sharing their first dimension n (e.g. ``(x, y)``).
    sampler : our SGLD settings: ε → ``lr``, γ → ``localization``, nβ → ``n_beta`` (n / log n when
        None), chains → ``num_chains``, draws → ``num_draws``, burn_in → ``num_burnin_steps``,
        batch_size → ``batch_size`` (n when None).
    seed : devinterp's ``init_seed`` (chain c's noise is seeded with seed + c).
    progress : show devinterp's per-chain progress bars.

    Returns
    -------
    DevinterpLLC with devinterp's ``reported_mean`` (burn-in included) and the burn-in-excluded
    ``mean`` from the same run.

    Raises
    ------
    ConfigError if devinterp is not installed; FloatingPointError if a chain diverged.
    """
    datasets, dsampler, sample, compute_llc = _import_devinterp()
    n, nbeta = samples_and_nbeta(data, sampler)
    m = n if sampler.batch_size is None else min(sampler.batch_size, n)
    device = str(next(model.parameters()).device)
    rows = torch.arange(n).repeat(2, 1).T.tolist()                          # (n, 2): [i, i]
    index = datasets.Dataset.from_dict({"input_ids": rows}).with_format("torch")

    def per_token_loss(net: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        idx = input_ids[:, 0].to(data[0].device)                             # (B,)
        loss = loss_fn(net, *[t[idx] for t in data])                         # scalar
        return loss.reshape(1, 1).expand(input_ids.shape[0], 1)              # (B, 1)

    with tempfile.TemporaryDirectory(prefix="llc_devinterp_") as tmp, _global_rng_restored(), \
            _quiet_progress(dsampler, progress), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = sample(model, index, {}, lr=sampler.step_size, n_beta=nbeta, localization=sampler.localization,
                      num_chains=sampler.chains, num_draws=sampler.draws, num_burnin_steps=sampler.burn_in,
                      batch_size=m, num_init_loss_batches=max(1, n // m), shuffle=m < n, init_seed=seed, device=device,
                      loss_fn=per_token_loss, output_path=f"{tmp}/samples.zarr")
        summary = compute_llc(tree).load()
        init_loss = float(summary.init_loss)
        trace = np.asarray(summary.loss_trace.values, dtype=np.float64)      # (chains, burn_in + draws)
        reported_mean, reported_std = float(summary.llc_mean), float(summary.llc_std)
        tree.close()
    failed = [str(w.message) for w in caught if "Chain failed" in str(w.message)]
    if failed or not np.all(np.isfinite(trace)):
        raise FloatingPointError(f"devinterp SGLD chain diverged ({failed[0] if failed else 'non-finite loss'}); "
                                 f"lower SGLD.step_size (now {sampler.step_size}) or raise SGLD.localization "
                                 f"(now {sampler.localization})")
    for w in caught:                                  # devinterp's other warnings (e.g. nβ = 1) reach the caller
        warnings.warn(f"devinterp: {w.message}", w.category, stacklevel=2)
    per_chain = nbeta * (trace[:, sampler.burn_in:].mean(axis=1) - init_loss)
    std = float(per_chain.std(ddof=1)) if sampler.chains > 1 else 0.0
    return DevinterpLLC(reported_mean, reported_std, float(per_chain.mean()), std, per_chain, trace, init_loss,
                        float(nbeta))
