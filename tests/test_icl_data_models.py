"""In-context regression data and linear-attention models: shapes, masking, and exact forward passes."""

import numpy as np
import pytest
import torch

from rnnautomata.data.icl import InContextRegression, make_covariance, whiten_rows
from rnnautomata.errors import ConfigError
from rnnautomata.models.linear_attention import LinearAttention, SimplifiedLinearTransformer


def test_covariance_trace_one_and_spectrum():
    cov = make_covariance(4, "linear", np.random.default_rng(0))
    assert np.trace(cov) == pytest.approx(1.0)
    assert np.allclose(np.sort(np.linalg.eigvalsh(cov)), np.arange(1, 5) / 10)
    with pytest.raises(ConfigError, match="spectrum"):
        make_covariance(3, "pink", np.random.default_rng(0))


def test_sample_masks_query_and_labels_match_tasks():
    task = InContextRegression(make_covariance(3, "linear", np.random.default_rng(0)), n_context=5, noise_std=0.0)
    b = task.sample(7, np.random.default_rng(1))
    assert b.tokens.shape == (7, 6, 4)
    assert torch.all(b.tokens[:, -1, -1] == 0)
    assert torch.allclose(b.y_context, torch.einsum("bnd,bd->bn", b.x_context, b.w), atol=1e-5)
    assert torch.allclose(b.target, (b.x_query * b.w).sum(-1), atol=1e-5)
    again = task.sample(7, np.random.default_rng(1))
    assert torch.equal(b.tokens, again.tokens)                     # same seed => same data


def test_whitening_and_task_pool():
    w = whiten_rows(np.random.default_rng(0).standard_normal((500, 3)) * 3 + 1)
    assert np.allclose(w.mean(0), 0, atol=1e-12) and np.allclose(np.cov(w, rowvar=False), np.eye(3))
    pool = np.random.default_rng(0).standard_normal((2, 3))
    task = InContextRegression(np.eye(3) / 3, 4, task_pool=pool)
    b = task.sample(50, np.random.default_rng(2))
    assert len({tuple(np.round(r, 5)) for r in b.w.numpy()}) == 2


def _brute_force(model: LinearAttention, tokens: torch.Tensor) -> torch.Tensor:
    """Loop over tokens: Σ_h Σ_j (z_q^T W_h z_j)(v_h·z_j), times the context scale."""
    w = model.head_matrices()
    out = torch.zeros(tokens.shape[0])
    for b in range(tokens.shape[0]):
        z_q = tokens[b, -1]
        for h in range(model.n_heads):
            for z_j in tokens[b]:
                out[b] += (z_q @ w[h] @ z_j) * (model.value[h] @ z_j)
    return model.context_scale * out


@pytest.mark.parametrize("parametrization", ["merged", "separate"])
def test_forward_matches_brute_force_attention(parametrization):
    model = LinearAttention(3, 2, parametrization, rank=2, init_scale=0.5, context_scale=0.25,
                            init_in_subspace=False, generator=torch.Generator().manual_seed(0))
    tokens = torch.randn(4, 6, 4, generator=torch.Generator().manual_seed(1))
    tokens[:, -1, -1] = 0
    assert torch.allclose(model(tokens), _brute_force(model, tokens), atol=1e-5)


@pytest.mark.parametrize("parametrization", ["merged", "separate"])
def test_effective_matrix_reproduces_prediction_in_subspace(parametrization):
    model = LinearAttention(3, 3, parametrization, init_scale=0.5, generator=torch.Generator().manual_seed(0))
    b = InContextRegression(np.eye(3), 6).sample(5, np.random.default_rng(0))
    beta = torch.einsum("bn,bnd->bd", b.y_context, b.x_context)
    direct = torch.einsum("bi,ij,bj->b", b.x_query, model.effective_matrix(), beta)
    assert torch.allclose(model(b.tokens), direct, atol=1e-5)


def test_effective_matrix_includes_the_cross_path():
    """Key reads y and value reads x: ŷ = x_q^T (Σ_h W_h,xy v_h,x^T) β when the main path is off."""
    model = LinearAttention(3, 2, "merged", init_scale=0.5, init_in_subspace=False,
                            generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.key_query[:, :-1, :-1] = 0   # no x-x key-query block
        model.value[:, -1] = 0             # value does not read y
    b = InContextRegression(np.eye(3), 6).sample(5, np.random.default_rng(0))
    beta = torch.einsum("bn,bnd->bd", b.y_context, b.x_context)
    direct = torch.einsum("bi,ij,bj->b", b.x_query, model.effective_matrix(), beta)
    assert torch.allclose(model(b.tokens), direct, atol=1e-5)


def test_same_seed_same_init_and_simplified_model():
    a = LinearAttention(4, 8, generator=torch.Generator().manual_seed(3))
    b = LinearAttention(4, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.key_query, b.key_query) and torch.all(a.value[:, :-1] == 0)
    s = SimplifiedLinearTransformer(2, init_scale=1.0, generator=torch.Generator().manual_seed(0))
    batch = InContextRegression(np.eye(2), 5).sample(3, np.random.default_rng(0))
    beta = torch.einsum("bn,bnd->bd", batch.y_context, batch.x_context)
    assert torch.allclose(s(batch.tokens), torch.einsum("bi,ij,bj->b", batch.x_query, s.effective_matrix(), beta), atol=1e-5)
