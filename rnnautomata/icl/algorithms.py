"""In-context predictors a trained model can be compared with, and their expected losses.

Each predictor maps a batch of sequences to predictions for the queries, ``(B,)``; each has an
expected loss (mean squared error, no ½) computed independently of the predictor — in closed form
where one exists, else by Monte Carlo (``monte_carlo_loss``). Data: x ~ N(0, Λ), w ~ N(0, I),
label noise σ, N context examples.

- preconditioned GD, one step from w = 0:  ŷ = x_q^T Γ Σ_n y_n x_n.  Loss (theory T1):
      tr Λ + σ² − 2N tr(ΓΛ²) + tr(Γ G Γ^T Λ),  G = N(N+1)Λ² + N(tr Λ + σ²)Λ.
  With Γ = Γ*_k (``theory.optimal_gamma``) it is the linear-attention model's k-th plateau
  (``attention_pcr``), whose loss is ``theory.plateau_losses()[k]``.
- principal component regression with k components (population PCs e_1..e_k of Λ): least squares of
  y on the coordinates (e_d·x)_{d≤k}. The coordinates outside the top k are independent of those
  inside (Gaussian x), so they act as extra label noise of variance τ² = Σ_{d>k} λ_d w_d² + σ², and
  the classical fixed-design-averaged OLS risk E[x^T (X^T X)^{-1} x] = k/(N−k−1) gives
      L_PCR(k) = (Σ_{d>k} λ_d + σ²) (N − 1) / (N − k − 1),     N > k + 1.
  k = 0 predicts 0 (loss tr Λ + σ²); k = D is ordinary least squares (loss σ² (N−1)/(N−D−1)).
- ridge: ŵ = (X^T X + α I)^{-1} X^T y; no simple closed form for general Λ — Monte Carlo. With
  α = σ² it is the posterior mean, the Bayes-optimal predictor for w ~ N(0, I).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from rnnautomata.data.icl import ICLBatch, InContextRegression
from rnnautomata.icl import theory

__all__ = [
    "Predictor",
    "preconditioned_gd_predict",
    "preconditioned_gd_loss",
    "attention_pcr_predict",
    "attention_pcr_loss",
    "pcr_predict",
    "pcr_loss",
    "least_squares_predict",
    "least_squares_loss",
    "ridge_predict",
    "monte_carlo_loss",
    "predictor_suite",
]

Predictor = Callable[[ICLBatch], torch.Tensor]


def _beta(batch: ICLBatch) -> torch.Tensor:
    return torch.einsum("bn,bnd->bd", batch.y_context.double(), batch.x_context.double())   # (B, D)


def preconditioned_gd_predict(batch: ICLBatch, gamma: np.ndarray) -> torch.Tensor:
    """ŷ = x_q^T Γ Σ_n y_n x_n, (B,)."""
    g = torch.as_tensor(gamma, dtype=torch.float64, device=batch.tokens.device)
    return torch.einsum("bi,ij,bj->b", batch.x_query.double(), g, _beta(batch))


def preconditioned_gd_loss(gamma: np.ndarray, covariance: np.ndarray, n_context: int, noise_std: float = 0.0) -> float:
    """Closed-form expected loss of ``preconditioned_gd_predict`` (theory T1)."""
    return theory.icl_loss(gamma, covariance, n_context, noise_std)


def attention_pcr_predict(batch: ICLBatch, covariance: np.ndarray, k: int, noise_std: float = 0.0) -> torch.Tensor:
    """The linear-attention optimum restricted to the top-k PCs (the separate model's k-th plateau)."""
    n = batch.x_context.shape[1]
    return preconditioned_gd_predict(batch, theory.optimal_gamma(covariance, n, noise_std, k))


def attention_pcr_loss(covariance: np.ndarray, n_context: int, k: int, noise_std: float = 0.0) -> float:
    """Expected loss of ``attention_pcr_predict`` (theory T3)."""
    return float(theory.plateau_losses(covariance, n_context, noise_std)[k])


def pcr_predict(batch: ICLBatch, covariance: np.ndarray, k: int) -> torch.Tensor:
    """Least squares on the top-k population principal components of Λ, (B,)."""
    x = batch.x_context.double()
    if k == 0:
        return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    m = theory.moments(covariance, x.shape[1])
    p = torch.as_tensor(m.eigvecs[:, :k], dtype=torch.float64, device=x.device)    # (D, k)
    xk = x @ p                                                                       # (B, N, k)
    gram = xk.transpose(1, 2) @ xk                                                   # (B, k, k)
    rhs = xk.transpose(1, 2) @ batch.y_context.double()[..., None]                   # (B, k, 1)
    w_k = torch.linalg.solve(gram, rhs)[..., 0]                                      # (B, k)
    return ((batch.x_query.double() @ p) * w_k).sum(-1)


def pcr_loss(covariance: np.ndarray, n_context: int, k: int, noise_std: float = 0.0) -> float:
    """Closed-form expected loss of ``pcr_predict`` (module docstring); needs N > k + 1."""
    if n_context <= k + 1:
        raise ValueError(f"PCR with k={k} components needs more than k+1 context examples (N={n_context})")
    m = theory.moments(covariance, n_context, noise_std)
    return float((m.eigvals[k:].sum() + m.noise_var) * (n_context - 1) / (n_context - k - 1))


def least_squares_predict(batch: ICLBatch) -> torch.Tensor:
    """Ordinary least squares on the context, (B,)."""
    d = batch.x_context.shape[-1]
    return pcr_predict(batch, np.eye(d), d)


def least_squares_loss(x_dim: int, n_context: int, noise_std: float = 0.0) -> float:
    """σ² (N − 1) / (N − D − 1): OLS's expected loss (independent of Λ)."""
    return pcr_loss(np.eye(x_dim), n_context, x_dim, noise_std)


def ridge_predict(batch: ICLBatch, alpha: float) -> torch.Tensor:
    """Ridge regression on the context with penalty α, (B,)."""
    x = batch.x_context.double()
    eye = torch.eye(x.shape[-1], dtype=torch.float64, device=x.device)
    gram = x.transpose(1, 2) @ x + alpha * eye
    w = torch.linalg.solve(gram, x.transpose(1, 2) @ batch.y_context.double()[..., None])[..., 0]
    return (batch.x_query.double() * w).sum(-1)


def monte_carlo_loss(
    predict: Predictor, task: InContextRegression, n_samples: int, rng: np.random.Generator, batch_size: int = 20000,
) -> tuple[float, float]:
    """Expected loss of ``predict`` on fresh sequences: (mean, standard error)."""
    errs = []
    remaining = n_samples
    while remaining > 0:
        b = task.sample(min(batch_size, remaining), rng, dtype=torch.float64)
        errs.append(((predict(b) - b.target.double()) ** 2).cpu().numpy())
        remaining -= len(b)
    e = np.concatenate(errs)
    return float(e.mean()), float(e.std(ddof=1) / np.sqrt(len(e)))


def predictor_suite(covariance: np.ndarray, noise_std: float = 0.0) -> dict[str, Predictor]:
    """The named predictors ``measures.which_algorithm`` compares a model with.

    ``pcr_k`` and ``attention_pcr_k`` for k = 0..D, ``least_squares``, and ``ridge_bayes``
    (α = σ², or 1e-6 when σ = 0).
    """
    d = covariance.shape[0]
    suite: dict[str, Predictor] = {}
    for k in range(d + 1):
        suite[f"pcr_{k}"] = lambda b, k=k: pcr_predict(b, covariance, k)
        suite[f"attention_pcr_{k}"] = lambda b, k=k: attention_pcr_predict(b, covariance, k, noise_std)
    suite["least_squares"] = least_squares_predict
    suite["ridge_bayes"] = lambda b: ridge_predict(b, max(noise_std**2, 1e-6))
    return suite
