"""Multi-head linear self-attention for in-context regression, read out at the query token.

Tokens are z_n = (x_n, y_n) ∈ R^{D+1}; the query is z_q = (x_q, 0). Head h attends from the query
to every token j (the query included) with a *linear* score and adds a value; only the y-coordinate
of the query's output is read, so of each head's value/output map W_V,h only its last row v_h
matters and only that row is stored::

    merged   (ATTN_M, Zhang et al. 2025 Eq. 2):   score_h(j) = z_q^T W_KQ,h z_j
    separate (ATTN_S, Zhang et al. 2025 Eq. 3):   score_h(j) = (Q_h z_q)·(K_h z_j),  Q_h, K_h: (rank, D+1)
    ŷ = c · Σ_h Σ_j score_h(j) (v_h · z_j) = c · Σ_h z_q^T W_h (Σ_j z_j z_j^T) v_h

with W_h = W_KQ,h or Q_h^T K_h and c = ``context_scale`` (1 as in the authors' code; 1/N is the
other common convention). In the invariant subspace where the key reads only x and the value only y
(``init_in_subspace``; the authors zero exactly these blocks at init) the model is

    ŷ = x_q^T Γ β,   β = Σ_{n≤N} y_n x_n,   Γ = c Σ_h v_h,y W_h,xx          (``effective_matrix``)

(outside it a second path W_h,xy v_h,x^T also contributes to Γ; ``effective_matrix`` includes it).

i.e. one step of preconditioned gradient descent from w = 0 with preconditioner Γ. Population data
keep the weights in this subspace (every other cubic feature is odd in w, so uncorrelated with the
target); ``rnnautomata.icl.theory`` works in it.

:class:`SimplifiedLinearTransformer` is the exact-dynamics model (our reading of Mainali & Teixeira
2025, Sec. 3): one head whose key-query block is a product of two full D×D matrices with a unit
value, ŷ = c x_q^T A B β, a two-layer linear network in Γ = c A B whose modes decouple in Λ's
eigenbasis.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnautomata.errors import ConfigError

__all__ = ["LinearAttention", "SimplifiedLinearTransformer", "PARAMETRIZATIONS", "token_moments"]

PARAMETRIZATIONS = ("merged", "separate")


def token_moments(tokens: torch.Tensor) -> torch.Tensor:
    """Σ_j z_j z_j^T over all tokens, the query included: (B, N+1, E) -> (B, E, E)."""
    return torch.einsum("bne,bnf->bef", tokens, tokens)


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator | None, device) -> torch.Tensor:
    out = torch.empty(shape, device=device)
    out.normal_(0.0, std, generator=generator)
    return out


class LinearAttention(nn.Module):
    """Multi-head linear self-attention (merged or separate key-query) predicting the query's y.

    Parameters
    ----------
    x_dim : D.
    n_heads : H.
    parametrization : "merged" (one W_KQ per head) or "separate" (W_K, W_Q per head).
    rank : rows of W_K and W_Q per head ("separate" only).
    init_scale : std of the Gaussian initial weights.
    context_scale : c in ŷ = c Σ_h z_q^T W_h Z^T Z v_h (1 = authors' code; 1/N = normalised attention).
    init_in_subspace : zero the key's y-column and the value's x-entries at init, so the model starts in
        the invariant subspace of the theory (the authors do this for the merged model).
    generator : torch.Generator for the init (created on ``device``'s type as needed).
    """

    def __init__(
        self, x_dim: int, n_heads: int, parametrization: str = "merged", rank: int = 1,
        init_scale: float = 1e-6, context_scale: float = 1.0, init_in_subspace: bool = True,
        generator: torch.Generator | None = None, device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(f"model.parametrization = {parametrization!r} is not allowed; choose one of: merged, separate")
        self.x_dim, self.n_heads, self.rank = x_dim, n_heads, rank
        self.parametrization = parametrization
        self.context_scale = float(context_scale)
        e = x_dim + 1
        if parametrization == "merged":
            self.key_query = nn.Parameter(_normal((n_heads, e, e), init_scale, generator, device))   # (H, E, E)
        else:
            self.query = nn.Parameter(_normal((n_heads, rank, e), init_scale, generator, device))    # (H, R, E)
            self.key = nn.Parameter(_normal((n_heads, rank, e), init_scale, generator, device))      # (H, R, E)
        self.value = nn.Parameter(_normal((n_heads, e), init_scale, generator, device))              # (H, E)
        if init_in_subspace:
            with torch.no_grad():
                if parametrization == "merged":
                    self.key_query[:, :, -1] = 0.0   # key side reads x only
                else:
                    self.key[:, :, -1] = 0.0
                self.value[:, :-1] = 0.0             # value reads y only

    def head_matrices(self) -> torch.Tensor:
        """W_h with score_h(j) = z_q^T W_h z_j, (H, E, E)."""
        if self.parametrization == "merged":
            return self.key_query
        return torch.einsum("hri,hrj->hij", self.query, self.key)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Predict the query's label: tokens (B, N+1, E) -> (B,)."""
        return self.forward_moments(token_moments(tokens), tokens[:, -1, :])

    def forward_moments(self, zz: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        """The same prediction from ``zz = token_moments(tokens)`` (B, E, E) and the query z_q (B, E).

        The model sees a sequence only through these, so full-batch training computes them once.
        """
        b, e = z_q.shape
        zz_v = zz @ self.value.T                                        # (B, E, H)  Σ_j z_j (v_h·z_j)
        w = self.head_matrices()                                        # (H, E, E)
        q_w = (z_q @ w.permute(1, 0, 2).reshape(e, -1)).view(b, -1, e)  # (B, H, E)  z_q^T W_h
        return self.context_scale * (q_w * zz_v.transpose(1, 2)).sum(dim=(1, 2))

    def effective_matrix(self) -> torch.Tensor:
        """Γ (D, D): the part of ŷ linear in β, ŷ = x_q^T Γ β + (terms even in w).

        Two paths build it: key reads x and value reads y (W_h,xx v_h,y, the one the theory follows),
        and key reads y and value reads x (W_h,xy v_h,x^T), which the init zeroes and population
        gradients keep at zero but finite training sets seed (docs/icl.md).
        """
        w = self.head_matrices()                                        # (H, E, E)
        main = torch.einsum("h,hij->ij", self.value[:, -1], w[:, :-1, :-1])
        cross = torch.einsum("hi,hj->ij", w[:, :-1, -1], self.value[:, :-1])
        return self.context_scale * (main + cross)


class SimplifiedLinearTransformer(nn.Module):
    """ŷ = c x_q^T A B β with A, B: (D, D) — the exact-dynamics model (Mainali & Teixeira 2025, Sec. 3).

    Equivalent to one linear-attention head with query block A^T, key block B and unit value on y.
    Under gradient flow A^T A - B B^T is conserved (the balance law of two-layer linear networks),
    and with A, B diagonal in Λ's eigenbasis each mode follows a closed-form logistic
    (``rnnautomata.icl.theory.simplified_mode_solution``).
    """

    def __init__(
        self, x_dim: int, init_scale: float = 1e-3, context_scale: float = 1.0,
        generator: torch.Generator | None = None, device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.x_dim, self.context_scale = x_dim, float(context_scale)
        self.a = nn.Parameter(_normal((x_dim, x_dim), init_scale, generator, device))   # (D, D)
        self.b = nn.Parameter(_normal((x_dim, x_dim), init_scale, generator, device))   # (D, D)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N+1, D+1) -> (B,)."""
        beta = torch.einsum("bn,bnd->bd", tokens[:, :-1, -1], tokens[:, :-1, :-1])   # (B, D)
        x_q = tokens[:, -1, :-1]                                                     # (B, D)
        return self.context_scale * torch.einsum("bi,ij,jk,bk->b", x_q, self.a, self.b, beta)

    def effective_matrix(self) -> torch.Tensor:
        return self.context_scale * self.a @ self.b
