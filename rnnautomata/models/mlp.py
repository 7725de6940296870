"""A one-hidden-layer MLP on two embedded tokens, the small network that groks modular addition."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TwoTokenMLP"]


class TwoTokenMLP(nn.Module):
    """logits = W_out relu(W_in [E a ; E b] + b_in) + b_out, with one shared embedding E: (p, d).

    Parameters
    ----------
    n_tokens : vocabulary size p (inputs and outputs).
    embed_dim : d.
    hidden_size : ReLU units.
    generator : torch.Generator for the init (PyTorch's default init scheme, made reproducible).
    """

    def __init__(self, n_tokens: int, embed_dim: int, hidden_size: int,
                 generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.empty(n_tokens, embed_dim, device=device))            # (p, d)
        self.w_in = nn.Parameter(torch.empty(hidden_size, 2 * embed_dim, device=device))      # (H, 2d)
        self.b_in = nn.Parameter(torch.zeros(hidden_size, device=device))
        self.w_out = nn.Parameter(torch.empty(n_tokens, hidden_size, device=device))          # (p, H)
        self.b_out = nn.Parameter(torch.zeros(n_tokens, device=device))
        with torch.no_grad():
            self.embed.normal_(0.0, 1.0, generator=generator)
            self.w_in.uniform_(-1.0, 1.0, generator=generator).mul_((2 * embed_dim) ** -0.5)
            self.w_out.uniform_(-1.0, 1.0, generator=generator).mul_(hidden_size ** -0.5)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """pairs (B, 2) long -> logits (B, p)."""
        x = self.embed[pairs].flatten(1)                   # (B, 2d)
        h = torch.relu(x @ self.w_in.T + self.b_in)        # (B, H)
        return h @ self.w_out.T + self.b_out               # (B, p)
