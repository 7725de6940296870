"""Other sequence tasks: modular addition (the grokking benchmark of Power et al. 2022).

Example (p = 5):  input (3, 4)  ->  target 2        # (3 + 4) mod 5
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["modular_addition", "split_pairs"]


def modular_addition(modulus: int, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """All p² pairs (a, b) as a (p², 2) long tensor and their sums mod p, (p²,)."""
    a, b = np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1)
    target = (pairs[:, 0] + pairs[:, 1]) % modulus
    return (torch.as_tensor(pairs, dtype=torch.long, device=device),
            torch.as_tensor(target, dtype=torch.long, device=device))


def split_pairs(n_pairs: int, train_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of pair indices into (train, test); the train share rounds to the nearest pair."""
    perm = rng.permutation(n_pairs)
    n_train = int(round(train_fraction * n_pairs))
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])
