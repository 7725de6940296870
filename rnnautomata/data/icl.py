"""In-context linear regression (the task of Zhang et al. 2025 and Mainali & Teixeira 2025).

A sequence holds ``n_context`` labelled examples and one query::

    tokens[b] = [(x_1, y_1), ..., (x_N, y_N), (x_q, 0)]      # (N+1, D+1)
    x ~ N(0, Λ) in D dimensions,  y_n = w·x_n + ε_n,  ε ~ N(0, σ²)
    target[b] = w·x_q + ε_q

Each sequence has its own task vector ``w``: drawn afresh from N(0, I) (``task_pool=None``) or
from a fixed pool of M vectors (task diversity M). The query's label is masked with 0.

Example (D = 1, N = 2, w = 2)::

    tokens = [[1.0, 2.0], [-0.5, -1.0], [0.3, 0.0]]   target = 0.6

Conventions chosen to match the authors' code (yedizhang/linattn-icl): Λ has eigenvalues
proportional to 1..D, is randomly rotated and normalised to trace 1; the training set's task
vectors are whitened (zero mean, identity covariance over the set), which removes finite-sample
drift of the parameters outside the invariant subspace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnautomata.errors import ConfigError

__all__ = ["make_covariance", "ICLBatch", "InContextRegression", "whiten_rows"]


def make_covariance(
    x_dim: int, spectrum: str | tuple[float, ...], rng: np.random.Generator, rotate: bool = True
) -> np.ndarray:
    """The input covariance Λ (D, D), normalised to trace 1.

    Parameters
    ----------
    x_dim : D.
    spectrum : ``"linear"`` (eigenvalues ∝ 1..D), ``"white"`` (∝ 1), or explicit eigenvalues.
    rng : source of the random rotation.
    rotate : rotate the eigenbasis by a Haar-random orthogonal matrix (else Λ is diagonal).
    """
    if isinstance(spectrum, str):
        if spectrum == "linear":
            eig = np.arange(1, x_dim + 1, dtype=np.float64)
        elif spectrum == "white":
            eig = np.ones(x_dim)
        else:
            raise ConfigError(f"data.spectrum = {spectrum!r} is not allowed; choose 'linear', 'white' or a list of {x_dim} positive numbers")
    else:
        eig = np.asarray(spectrum, dtype=np.float64)
        if eig.shape != (x_dim,) or np.any(eig <= 0):
            raise ConfigError(f"data.spectrum must list {x_dim} positive eigenvalues (got {list(spectrum)})")
    eig = eig / eig.sum()
    if not rotate:
        return np.diag(eig)
    q, r = np.linalg.qr(rng.standard_normal((x_dim, x_dim)))
    q = q * np.sign(np.diag(r))  # Haar-distributed
    return q @ np.diag(eig) @ q.T


def whiten_rows(w: np.ndarray) -> np.ndarray:
    """Make the rows of ``w`` (M, D) have zero mean and identity sample covariance."""
    w = w - w.mean(axis=0, keepdims=True)
    cov = np.cov(w, rowvar=False).reshape(w.shape[1], w.shape[1])
    vals, vecs = np.linalg.eigh(cov)
    return w @ (vecs @ np.diag(vals ** -0.5) @ vecs.T)


@dataclass(frozen=True)
class ICLBatch:
    """A batch of in-context regression sequences (torch tensors on one device)."""

    tokens: torch.Tensor   # (B, N+1, D+1); the last token is the query with y masked to 0
    target: torch.Tensor   # (B,) the query's label
    w: torch.Tensor        # (B, D) each sequence's task vector

    @property
    def x_context(self) -> torch.Tensor:
        return self.tokens[:, :-1, :-1]   # (B, N, D)

    @property
    def y_context(self) -> torch.Tensor:
        return self.tokens[:, :-1, -1]    # (B, N)

    @property
    def x_query(self) -> torch.Tensor:
        return self.tokens[:, -1, :-1]    # (B, D)

    def __len__(self) -> int:
        return self.tokens.shape[0]


@dataclass(frozen=True)
class InContextRegression:
    """Generator of in-context linear regression data.

    Parameters
    ----------
    covariance : Λ, (D, D) positive definite.
    n_context : N, labelled examples before the query.
    noise_std : σ, label noise (context and query).
    task_pool : None for w ~ N(0, I) per sequence; else (M, D) fixed task vectors to draw from.
    """

    covariance: np.ndarray
    n_context: int
    noise_std: float = 0.0
    task_pool: np.ndarray | None = None

    @property
    def x_dim(self) -> int:
        return self.covariance.shape[0]

    def sample(
        self, n_samples: int, rng: np.random.Generator, whiten_tasks: bool = False,
        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    ) -> ICLBatch:
        """Draw ``n_samples`` sequences; ``whiten_tasks`` whitens the batch's w (needs n_samples > D)."""
        d, n = self.x_dim, self.n_context
        chol = np.linalg.cholesky(self.covariance)
        x = rng.standard_normal((n_samples, n + 1, d)) @ chol.T                 # (B, N+1, D)
        if self.task_pool is None:
            w = rng.standard_normal((n_samples, d))                              # (B, D)
        else:
            w = self.task_pool[rng.integers(0, len(self.task_pool), n_samples)]
        if whiten_tasks and self.task_pool is None:
            w = whiten_rows(w)
        y = np.einsum("bnd,bd->bn", x, w) + self.noise_std * rng.standard_normal((n_samples, n + 1))
        tokens = np.concatenate([x, y[..., None]], axis=-1)                      # (B, N+1, D+1)
        target = tokens[:, -1, -1].copy()
        tokens[:, -1, -1] = 0.0
        as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return ICLBatch(tokens=as_t(tokens), target=as_t(target), w=as_t(w))
