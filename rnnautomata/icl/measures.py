"""Theory-inspired measures over a training trajectory (Mainali & Teixeira 2025, Sec. 5).

They work on any model's checkpoints (a checkpoint = ``dict[str, Tensor]``), not only linear attention:

- spectral rank: singular values of chosen weight matrices per checkpoint, their effective rank
  exp(H(σ/Σσ)) (Roy & Vetterli 2007) and the count of singular values above a fraction of the largest.
  In a deep linear network each learned mode adds one singular value, so rank tracks what was learned.
- subspace stability: overlap |U_a^T U_b|_F² / k ∈ [0, 1] of the leading-k left singular subspaces of a
  matrix at two checkpoints (1 = the same subspace). It drops while a network reorganises (a loss
  drop, a grokking transition) and stays near 1 on a plateau.
- which algorithm: distance of a model's in-context predictions to each predictor of
  ``rnnautomata.icl.algorithms``, normalised by the target's mean square.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "as_matrices",
    "singular_values",
    "effective_rank",
    "numerical_rank",
    "spectral_dynamics",
    "subspace_overlap",
    "subspace_stability",
    "which_algorithm",
]


def as_matrices(state: Mapping[str, torch.Tensor], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The weight matrices of a checkpoint: 2-D tensors as they are, higher ones as (prod(leading), last).

    ``names`` picks tensors (all tensors with ≥ 2 dimensions when None); 1-D tensors are reshaped to (1, n).
    """
    keys = names if names is not None else [k for k, v in state.items() if v.dim() >= 2]
    out = {}
    for k in keys:
        if k not in state:
            raise KeyError(f"checkpoint has no tensor {k!r}; it has: {', '.join(state)}")
        t = state[k].detach().to("cpu", torch.float64)
        out[k] = t.reshape(-1, t.shape[-1]).numpy() if t.dim() >= 1 else t.reshape(1, 1).numpy()
    return out


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values, descending."""
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)


def effective_rank(sv: np.ndarray) -> float:
    """exp of the Shannon entropy of σ/Σσ; 1 for rank one, r for r equal singular values."""
    sv = np.asarray(sv, dtype=np.float64)
    total = sv.sum()
    if total <= 0:
        return 0.0
    p = sv[sv > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def numerical_rank(sv: np.ndarray, rel_tol: float = 0.1) -> int:
    """Number of singular values above ``rel_tol`` × the largest."""
    sv = np.asarray(sv, dtype=np.float64)
    return int((sv > rel_tol * sv.max()).sum()) if sv.size and sv.max() > 0 else 0


def spectral_dynamics(
    states: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str] | None = None, rel_tol: float = 0.1,
) -> dict[str, dict[str, np.ndarray]]:
    """Per matrix name: ``singular_values`` (T, r), ``effective_rank`` (T,), ``rank`` (T,) over checkpoints."""
    per = [as_matrices(s, names) for s in states]
    out = {}
    for name in per[0]:
        svs = np.stack([singular_values(p[name]) for p in per])
        out[name] = {
            "singular_values": svs,
            "effective_rank": np.array([effective_rank(s) for s in svs]),
            "rank": np.array([numerical_rank(s, rel_tol) for s in svs]),
        }
    return out


def subspace_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """|U_a^T U_b|_F² / k for the top-k left singular vectors of ``a`` and ``b`` (same shape)."""
    k = min(k, *a.shape)
    ua = np.linalg.svd(np.asarray(a, dtype=np.float64), full_matrices=False)[0][:, :k]
    ub = np.linalg.svd(np.asarray(b, dtype=np.float64), full_matrices=False)[0][:, :k]
    return float(np.sum((ua.T @ ub) ** 2) / k)


def subspace_stability(
    states: Sequence[Mapping[str, torch.Tensor]], k: int, names: Sequence[str] | None = None,
    reference: str = "previous",
) -> dict[str, np.ndarray]:
    """Per matrix name, the overlap (T,) of each checkpoint's top-k subspace with the previous one's
    (``reference="previous"``; the first entry is 1) or with the final checkpoint's (``"final"``)."""
    if reference not in ("previous", "final"):
        raise ValueError(f"reference must be 'previous' or 'final', got {reference!r}")
    per = [as_matrices(s, names) for s in states]
    out = {}
    for name in per[0]:
        mats = [p[name] for p in per]
        if reference == "final":
            out[name] = np.array([subspace_overlap(m, mats[-1], k) for m in mats])
        else:
            out[name] = np.array([1.0] + [subspace_overlap(mats[i - 1], mats[i], k) for i in range(1, len(mats))])
    return out


def which_algorithm(
    model_predictions: torch.Tensor, predictions: Mapping[str, torch.Tensor], target: torch.Tensor,
) -> dict[str, float]:
    """mean((ŷ_model − ŷ_alg)²) / mean(y²) for every named predictor (smaller = closer)."""
    scale = float((target.double() ** 2).mean())
    m = model_predictions.double()
    return {name: float(((m - p.double()) ** 2).mean()) / scale for name, p in predictions.items()}
