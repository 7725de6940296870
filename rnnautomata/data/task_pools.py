"""In-context linear regression with nested task pools (Raventós et al. 2023; Carroll et al. 2025).

One fixed, infinite sequence of task vectors t_1, t_2, ... ~ N(0, I_D) is drawn from a seed; the
pool of task diversity M is its first M tasks, so the pools are nested: T_1 ⊂ T_2 ⊂ ... A
sequence of K examples picks one task t uniformly from the pool (or, for M = ∞, draws a fresh
t ~ N(0, I_D)) and then::

    x_k ~ N(0, I_D),   y_k = tᵀ x_k + ε_k,   ε_k ~ N(0, σ²),   k = 1..K

Example (D = 1, K = 2, t = 2, σ² = 0)::

    xs = [[1.0], [-0.5]]   ys = [2.0, -1.0]

The task sequence is independent of how many tasks a study uses: ``task_sequence(4, D, seed)`` is
the first 4 rows of ``task_sequence(1000, D, seed)``, which is what makes runs with different M
comparable (they share t_1, the task of the joint-PCA batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["INFINITE", "task_sequence", "RegressionBatch", "PooledRegression"]

#: the value of ``n_tasks`` that means "a fresh Gaussian task per sequence" (M = ∞)
INFINITE = "inf"


def task_sequence(n_tasks: int, x_dim: int, seed: int) -> np.ndarray:
    """The first ``n_tasks`` task vectors of the sequence drawn from ``seed``: (M, D) float64.

    Drawn one task at a time from one generator, so every prefix of a longer sequence is the
    shorter sequence (nested pools)."""
    rng = np.random.default_rng([seed, 7])
    return rng.standard_normal((n_tasks, x_dim))            # (M, D), row-major: nested prefixes


@dataclass(frozen=True)
class RegressionBatch:
    """``xs (B, K, D)``, ``ys (B, K)``, ``tasks (B, D)``: float32 tensors on one device."""

    xs: torch.Tensor
    ys: torch.Tensor
    tasks: torch.Tensor

    def to(self, device: str | torch.device) -> "RegressionBatch":
        return RegressionBatch(self.xs.to(device), self.ys.to(device), self.tasks.to(device))

    def __len__(self) -> int:
        return self.xs.shape[0]


@dataclass(frozen=True)
class PooledRegression:
    """Sampler of in-context regression sequences whose tasks come from a pool (or are fresh).

    Parameters
    ----------
    x_dim : D.
    n_examples : K, (x, y) pairs per sequence.
    noise_var : σ², label-noise variance.
    pool : (M, D) task vectors, or None for a fresh t ~ N(0, I_D) per sequence (M = ∞).
    """

    x_dim: int
    n_examples: int
    noise_var: float
    pool: np.ndarray | None = None

    def sample(self, batch_size: int, rng: np.random.Generator) -> RegressionBatch:
        """``batch_size`` sequences, tasks uniform over the pool (or Gaussian)."""
        if self.pool is None:
            tasks = rng.standard_normal((batch_size, self.x_dim))                 # (B, D)
        else:
            tasks = self.pool[rng.integers(0, len(self.pool), batch_size)]      # (B, D)
        return self.sample_tasks(tasks, rng)

    def sample_tasks(self, tasks: np.ndarray, rng: np.random.Generator) -> RegressionBatch:
        """One sequence per row of ``tasks`` (B, D): fresh x and noise for the given tasks."""
        tasks = np.asarray(tasks, dtype=np.float64)
        b = tasks.shape[0]
        xs = rng.standard_normal((b, self.n_examples, self.x_dim))                 # (B, K, D)
        noise = math.sqrt(self.noise_var) * rng.standard_normal((b, self.n_examples))
        ys = np.einsum("bkd,bd->bk", xs, tasks) + noise                            # (B, K)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        return RegressionBatch(as_t(xs), as_t(ys), as_t(tasks))
