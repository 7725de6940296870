"""The two Bayes-optimal in-context regression predictors, on every prefix of a sequence.

For a sequence ``(x_1, y_1), ..., (x_K, y_K)`` with ``y = tᵀx + ε``, ``ε ~ N(0, σ²)``, the
prediction at position k uses the k − 1 earlier pairs and ``x_k`` (position 1: no examples yet)::

    ŷ_k = x_kᵀ t̂_k,    t̂_k = E[t | (x_j, y_j)_{j<k}]

- **ridge** (the prior t ~ N(0, I_D), i.e. task diversity M = ∞): the posterior mean is
  ``t̂_k = (X_kᵀX_k + σ² I)⁻¹ X_kᵀ y_k`` with X_k the (k−1, D) earlier inputs.
- **dMMSE_M** (the prior uniform over the M pool tasks): the posterior mean
  ``t̂_k = Σ_m w_m t_m`` with ``w_m ∝ exp(−|y_k − X_k t_m|² / (2σ²))``.

Each is the minimum-MSE predictor for data drawn from its own prior (tested), and dMMSE_M tends
to ridge as M → ∞ with the pool drawn from N(0, I) (tested, with a stated tolerance).

Example::

    ridge = ridge_predictions(batch.xs, batch.ys, noise_var=0.125)          # (B, K)
    dmmse = dmmse_predictions(batch.xs, batch.ys, pool, noise_var=0.125)    # (B, K)
    prefix_mse(ridge, batch.ys)                                             # (K,)
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ridge_predictions", "dmmse_predictions", "prefix_mse"]


def _exclusive_cumsum(a: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over the entries strictly before each index along ``dim`` (0 at index 0)."""
    c = a.cumsum(dim)
    return c - a


def ridge_predictions(xs: torch.Tensor, ys: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Posterior-mean predictions under t ~ N(0, I): xs (B, K, D), ys (B, K) -> (B, K), float64.

    Position k solves ``(X_kᵀX_k + σ² I) t = X_kᵀ y_k`` over the earlier k − 1 pairs."""
    if noise_var <= 0:
        raise ValueError(f"noise_var must be positive for the ridge posterior (got {noise_var})")
    x, y = xs.double(), ys.double()
    d = x.shape[-1]
    outer = torch.einsum("bki,bkj->bkij", x, x)                               # (B, K, D, D)
    gram = _exclusive_cumsum(outer, 1) + noise_var * torch.eye(d, dtype=x.dtype, device=x.device)
    rhs = _exclusive_cumsum(x * y[..., None], 1)                              # (B, K, D)
    t_hat = torch.linalg.solve(gram, rhs[..., None])[..., 0]                  # (B, K, D)
    return (x * t_hat).sum(-1)                                                # (B, K)


def dmmse_predictions(xs: torch.Tensor, ys: torch.Tensor, pool: np.ndarray | torch.Tensor, noise_var: float,
                      chunk: int = 2 ** 22) -> torch.Tensor:
    """Posterior-mean predictions under the uniform prior over ``pool`` (M, D): -> (B, K), float64.

    ``chunk`` bounds the size of the (b, K, M) residual array by working on b rows at a time."""
    if noise_var <= 0:
        raise ValueError(f"noise_var must be positive for the dMMSE posterior (got {noise_var})")
    x, y = xs.double(), ys.double()
    tasks = torch.as_tensor(np.asarray(pool), dtype=torch.float64, device=x.device)   # (M, D)
    b, k = y.shape
    rows = max(1, chunk // (k * tasks.shape[0]))
    out = []
    for start in range(0, b, rows):
        xb, yb = x[start:start + rows], y[start:start + rows]
        resid = (yb[..., None] - xb @ tasks.T) ** 2                           # (b, K, M)
        score = -_exclusive_cumsum(resid, 1) / (2 * noise_var)                # (b, K, M) log-likelihood so far
        t_hat = score.softmax(-1) @ tasks                                     # (b, K, D)
        out.append((xb * t_hat).sum(-1))                                      # (b, K)
    return torch.cat(out)


def prefix_mse(predictions: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean squared error at each position, over the batch: (B, K), (B, K) -> (K,)."""
    return ((predictions.double() - ys.double()) ** 2).mean(0)
