"""The local learning coefficient (LLC) of a trained model, estimated by SGLD.

Definitions (singular learning theory; Lau, Furman, Wang, Murfet & Wei 2023, "The local learning
coefficient: a singularity-aware complexity measure", and the devinterp documentation):

- ``L_n(w)`` is the model's mean loss over the ``n`` training samples, ``w*`` the weights whose
  LLC we want (a checkpoint, ideally near a local minimum).
- The localised, tempered posterior at ``w*`` is

      p(w) ∝ exp(−nβ L_n(w) − (γ/2) |w − w*|²)

  with inverse temperature ``nβ`` (default ``n / log n``, the literature's β* = 1/log n) and
  localisation strength ``γ`` that keeps the sampler near ``w*``.
- The estimate is   λ̂(w*) = nβ (E_p[L_n(w)] − L_n(w*)).

  For a regular model (positive-definite Hessian) with d parameters, λ = d/2; for the
  one-parameter model ŷ = w² x at w* = 0 (K(w) ∝ w⁴), λ = 1/4. Both are tested.

- E_p is approximated by stochastic-gradient Langevin dynamics (SGLD): several chains started at
  ``w*``, each step

      w ← w − (ε/2) (nβ ∇L_m(w) + γ (w − w*)) + N(0, ε I)

  with step size ε and ``L_m`` the loss on a minibatch of m samples (the whole dataset when
  ``batch_size`` is None). The loss of each step's batch at the weights before the step is one
  draw; the first ``burn_in`` steps of every chain are *excluded* from the average (devinterp
  2.0.1 includes them). λ̂ is computed per chain and averaged; the spread across chains is ``std``.

Example::

    sampler = SGLD(step_size=1e-4, localization=100.0, chains=4, draws=400, burn_in=100)
    result = estimate_llc(model, lambda m, x, y: ((m(x) - y) ** 2).mean(), (x, y), sampler,
                          torch.Generator().manual_seed(0))
    result.mean, result.std, result.loss_trace   # float, float, (chains, draws)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["SGLD", "LLCResult", "default_nbeta", "samples_and_nbeta", "estimate_llc", "gaussian_llc", "gaussian_llc_by_step"]


@dataclass(frozen=True)
class SGLD:
    step_size: float = 1e-4             # ε, SGLD step size
    localization: float = 100.0         # γ, strength of the pull back to w*
    nbeta: float | None = None          # nβ, inverse temperature; None = n / log n
    chains: int = 4                     # independent chains, all started at w*
    draws: int = 200                    # steps per chain that enter the average
    burn_in: int = 100                  # steps per chain before the draws, left out of the average
    batch_size: int | None = None       # minibatch size m; None = the whole dataset every step

    def __post_init__(self) -> None:
        for name in ("step_size", "localization", "chains", "draws"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SGLD.{name} must be positive (got {getattr(self, name)!r})")
        if self.burn_in < 0:
            raise ValueError(f"SGLD.burn_in must be ≥ 0 (got {self.burn_in!r})")
        if self.nbeta is not None and self.nbeta <= 0:
            raise ValueError(f"SGLD.nbeta must be positive or None (got {self.nbeta!r})")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(f"SGLD.batch_size must be positive or None (got {self.batch_size!r})")


@dataclass(frozen=True)
class LLCResult:
    mean: float                         # λ̂ averaged over chains
    std: float                          # standard deviation of the per-chain λ̂ (0 for one chain)
    per_chain: np.ndarray               # (chains,) λ̂ of each chain
    loss_trace: np.ndarray              # (chains, draws) the sampled losses after burn-in
    init_loss: float                    # L_n(w*) over the whole dataset
    nbeta: float                        # the inverse temperature used


def default_nbeta(n: int) -> float:
    """n / log n (β* = 1 / log n, the choice of Watanabe's WBIC and of the LLC literature)."""
    if n < 2:
        raise ValueError(f"need at least 2 samples for n / log n (got n = {n})")
    return n / math.log(n)


def samples_and_nbeta(data: Sequence[torch.Tensor], sampler: SGLD) -> tuple[int, float]:
    """``(n, nβ)``: the number of samples the tensors of ``data`` share (``ValueError`` if they
    disagree or there are none) and the sampler's inverse temperature (``n / log n`` when unset)."""
    if not data:
        raise ValueError("data must hold at least one tensor")
    n = int(data[0].shape[0])
    if any(int(t.shape[0]) != n for t in data):
        raise ValueError(f"data tensors disagree on the number of samples: {[int(t.shape[0]) for t in data]}")
    return n, sampler.nbeta if sampler.nbeta is not None else default_nbeta(n)


def estimate_llc(model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], data: Sequence[torch.Tensor],
                 sampler: SGLD, generator: torch.Generator) -> LLCResult:
    """λ̂ at the model's current weights w* (the model itself is not changed).

    Parameters
    ----------
    model : the network at w*.
    loss_fn : ``loss_fn(model, *batch) -> scalar`` mean loss over the batch.
    data : tensors sharing their first dimension n (e.g. ``(x, y)``); a batch indexes all of them.
    sampler : the SGLD settings.
    generator : a CPU ``torch.Generator``; all randomness (batches, noise) comes from it.

    Returns
    -------
    LLCResult with ``mean``, ``std``, ``per_chain`` (chains,), ``loss_trace`` (chains, draws).
    """
    n, nbeta = samples_and_nbeta(data, sampler)
    with torch.no_grad():
        init_loss = float(loss_fn(model, *data))
    eps, gamma = sampler.step_size, sampler.localization
    traces = np.empty((sampler.chains, sampler.draws))
    for c in range(sampler.chains):
        walker = copy.deepcopy(model)
        params = [p for p in walker.parameters() if p.requires_grad]
        centre = [p.detach().clone() for p in params]
        for t in range(sampler.burn_in + sampler.draws):
            batch = data
            if sampler.batch_size is not None and sampler.batch_size < n:
                idx = torch.randperm(n, generator=generator)[: sampler.batch_size].to(data[0].device)
                batch = [d[idx] for d in data]
            loss = loss_fn(walker, *batch)
            grads = torch.autograd.grad(loss, params)
            if t >= sampler.burn_in:
                traces[c, t - sampler.burn_in] = loss.item()
            with torch.no_grad():
                for p, g, w0 in zip(params, grads, centre):
                    noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
                    p.add_(-(eps / 2) * (nbeta * g + gamma * (p - w0)) + math.sqrt(eps) * noise)
        if not np.all(np.isfinite(traces[c])):
            raise FloatingPointError(f"SGLD chain {c} diverged; lower SGLD.step_size (now {eps}) "
                                     f"or raise SGLD.localization (now {gamma})")
    per_chain = nbeta * (traces.mean(axis=1) - init_loss)
    std = float(per_chain.std(ddof=1)) if sampler.chains > 1 else 0.0
    return LLCResult(float(per_chain.mean()), std, per_chain, traces, init_loss, float(nbeta))


def gaussian_llc(hessian_eigenvalues: np.ndarray, nbeta: float, localization: float, step_size: float = 0.0) -> float:
    """Exact E[λ̂] of the SGLD chain on a quadratic loss L(w) − L(w*) = ½ Σ_i h_i u_i² (u = w − w*).

    Each eigen-direction is a Gaussian AR(1) chain u ← (1 − εa/2) u + √ε ξ with a = nβ h + γ, whose
    stationary variance is 1 / (a (1 − εa/4)) (ε = 0: the continuous-time 1/a). Then
    λ = nβ Σ_i ½ h_i Var_i, which tends to d/2 as γ → 0 and ε → 0.
    """
    h = np.asarray(hessian_eigenvalues, dtype=np.float64)
    a = nbeta * h + localization
    if np.any(step_size * a >= 4):
        raise ValueError("step_size too large: the chain diverges (need ε (nβ h + γ) < 4)")
    var = 1.0 / (a * (1.0 - step_size * a / 4.0))
    return float(nbeta * np.sum(0.5 * h * var))


def gaussian_llc_by_step(hessian_eigenvalues: np.ndarray, nbeta: float, localization: float, step_size: float,
                         steps: int) -> np.ndarray:
    """(steps,) exact E[nβ (L(w_t) − L(w*))] at each step t of an SGLD chain started at w* = the minimum.

    The quadratic loss of :func:`gaussian_llc`; direction i starts at u = 0 and after t steps has
    variance ε (1 − ρ_i^{2t}) / (1 − ρ_i²) with ρ_i = 1 − ε a_i / 2. Step t's loss is the one taken
    before the t-th update (t = 0: at w*), as both estimators record it; the mean over steps
    ``burn_in:`` is the expected burn-in-excluded λ̂, over all steps devinterp's burn-in-included one.
    """
    h = np.asarray(hessian_eigenvalues, dtype=np.float64)
    if step_size <= 0:
        raise ValueError(f"step_size must be positive (got {step_size})")
    a = nbeta * h + localization
    if np.any(step_size * a >= 4):
        raise ValueError("step_size too large: the chain diverges (need ε (nβ h + γ) < 4)")
    rho2 = (1.0 - step_size * a / 2.0) ** 2                                   # (d,)
    t = np.arange(steps)[:, None]                                             # (steps, 1)
    var = step_size * (1.0 - rho2 ** t) / (1.0 - rho2)                        # (steps, d)
    return nbeta * (0.5 * h * var).sum(axis=1)
