"""A causal pre-LayerNorm transformer on interleaved (x, y) tokens, for in-context regression.

The blocks, LayerNorm and hook points are those of :mod:`rnnautomata.models.transformer`; only
the input and output differ (continuous vectors instead of symbols). The token layout is the one
of the timaeus-research/icl code that Carroll et al. (2025) build on: each example becomes two
tokens of size D + 1::

    tokens   = [(0, x_1), (y_1, 0), (0, x_2), (y_2, 0), ..., (0, x_K), (y_K, 0)]    (B, 2K, D + 1)
    resid    = tokens @ W_E + b_E + W_pos[:2K]                                        (B, 2K, d)
    blocks   : pre-LN attention + GELU MLP, causal                                    (B, 2K, d)
    out      = ln_final(resid) @ W_U + b_U                                            (B, 2K, 1)
    ŷ_k      = out[:, 2(k − 1)]       the output at the token (0, x_k)                (B, K)

so ŷ_k sees x_1, y_1, ..., x_{k−1}, y_{k−1}, x_k and not y_k (the causal mask), and the loss
averages over all K positions. The first entry of a token says "this is a y" (it holds y, and
x-tokens hold 0 there), which together with learned positions tells x- and y-tokens apart.

Example
-------
>>> import torch
>>> model = RegressionTransformer(x_dim=2, n_examples=3, d_model=8, d_mlp=8, n_heads=2, n_layers=1)
>>> model(torch.zeros(4, 3, 2), torch.zeros(4, 3)).shape
torch.Size([4, 3])
"""

from __future__ import annotations

import torch
from torch import nn

from rnnautomata.errors import ConfigError
from rnnautomata.models.transformer import Block, HookPoint, LayerNorm, init_weights

__all__ = ["RegressionTransformer", "interleave", "build_regression_transformer"]


def interleave(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """xs (B, K, D), ys (B, K) -> tokens (B, 2K, D + 1): (0, x_k) then (y_k, 0) for every k."""
    b, k, d = xs.shape
    x_tok = torch.cat([torch.zeros_like(ys)[..., None], xs], -1)                  # (B, K, D + 1)
    y_tok = torch.cat([ys[..., None], torch.zeros_like(xs)], -1)                  # (B, K, D + 1)
    return torch.stack([x_tok, y_tok], 2).reshape(b, 2 * k, d + 1)                # (B, 2K, D + 1)


class RegressionTransformer(nn.Module):
    """Pre-LN causal transformer reading interleaved (x, y) tokens; predicts y at every x-token.

    Parameters
    ----------
    x_dim : D.
    n_examples : the most examples K a sequence may hold (the learned position table has 2K rows).
    d_model, d_mlp, n_heads, n_layers : the sizes (d_head = d_model // n_heads).
    """

    def __init__(self, x_dim: int, n_examples: int, d_model: int = 64, d_mlp: int = 64, n_heads: int = 4,
                 n_layers: int = 2) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"model.d_model ({d_model}) must be a multiple of model.n_heads ({n_heads})")
        self.x_dim, self.n_examples, self.d_model = x_dim, n_examples, d_model
        self.W_E = nn.Parameter(torch.empty(x_dim + 1, d_model))           # (D + 1, d)
        self.b_E = nn.Parameter(torch.zeros(d_model))                      # (d,)
        self.W_pos = nn.Parameter(torch.empty(2 * n_examples, d_model))    # (2K, d)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_model // n_heads, d_mlp, False, False)
                                    for _ in range(n_layers))
        self.ln_final = LayerNorm(d_model)
        self.W_U = nn.Parameter(torch.empty(d_model, 1))                   # (d, 1)
        self.b_U = nn.Parameter(torch.zeros(1))                            # (1,)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """xs (B, K, D), ys (B, K) -> predictions ŷ (B, K), ŷ_k from the pairs before k and x_k."""
        k = xs.shape[1]
        if k > self.n_examples:
            raise ConfigError(f"a sequence of {k} examples is longer than the model's position table "
                              f"({self.n_examples} examples); raise data.n_examples")
        tokens = interleave(xs, ys)                                        # (B, 2K, D + 1)
        resid = self.hook_embed(tokens @ self.W_E + self.b_E)              # (B, 2K, d)
        resid = resid + self.hook_pos_embed(self.W_pos[: 2 * k])           # (B, 2K, d)
        for block in self.blocks:
            resid = block(resid)                                           # (B, 2K, d)
        out = self.ln_final(resid) @ self.W_U + self.b_U                   # (B, 2K, 1)
        return out[:, 0::2, 0]                                             # (B, K) at the x-tokens


def build_regression_transformer(x_dim: int, n_examples: int, d_model: int, d_mlp: int, n_heads: int,
                                 n_layers: int, init_std: float | None, generator: torch.Generator) -> RegressionTransformer:
    """A :class:`RegressionTransformer` with the automaton transformer's initialisation
    (``W_*`` normal with std ``init_std``, None: 0.8/√d; biases 0; LayerNorm gains 1)."""
    model = RegressionTransformer(x_dim, n_examples, d_model, d_mlp, n_heads, n_layers)
    init_weights(model, init_std, generator)
    return model

