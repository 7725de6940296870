"""A small pre-LayerNorm causal transformer on the sequence-model contract (models/base.py).

The string is read after a BOS token, so position 0 is the empty prefix and position t the prefix
of length t::

    tokens   = [BOS, s_1, ..., s_T]                                   (B, T + 1)
    resid    = W_E[tokens] (+ W_pos[t] | sinusoid(t))                  (B, T + 1, d)
    block l  : resid_mid  = resid_pre + Attn(LN1(resid_pre))           causal, optional RoPE on q, k
               resid_post = resid_mid + MLP(LN2(resid_mid))            (no MLP when attn_only)
    state    = ln_final(resid_post of the last block)                  (B, T + 1, d)  = prefix_states
    logits   = state @ W_U + b_U                                       (B, T + 1, O)  = readout

The state of a prefix is the final LayerNorm's output at its last position (as van Rossem & Saxe,
App. C.2, and Adriaensen & Maene 2024 read it), i.e. exactly what the unembedding sees. Position t
attends to positions ≤ t only, so one pass gives every prefix's state (the probe relies on this).

Hook points carry TransformerLens's names (``hook_embed``, ``hook_pos_embed``,
``blocks.{l}.hook_resid_pre``, ``blocks.{l}.attn.hook_pattern``, ``blocks.{l}.hook_resid_mid``,
``blocks.{l}.hook_resid_post``, ``ln_final.hook_normalized``); :meth:`Transformer.run_with_cache`
returns every one of them. Parameter names and shapes follow TransformerLens too (``W_Q`` is
``(n_heads, d_model, d_head)``, ...), so weights can be set by hand (tests/test_transformer.py).
No TransformerLens dependency.

Example
-------
>>> import torch
>>> model = Transformer(n_symbols=2, n_outputs=2, n_layers=1, d_model=8, n_heads=2)
>>> logits, cache = model.run_with_cache(torch.tensor([[0, 1, 1]]))
>>> logits.shape, cache["blocks.0.attn.hook_pattern"].shape, cache["ln_final.hook_normalized"].shape
(torch.Size([1, 4, 2]), torch.Size([1, 2, 4, 4]), torch.Size([1, 4, 8]))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from rnnautomata.errors import ConfigError
from rnnautomata.models.base import SequenceModel

if TYPE_CHECKING:  # pragma: no cover
    from rnnautomata.config import ModelConfig

__all__ = ["Transformer", "HookPoint", "POSITIONALS", "build_transformer"]

#: positional encodings: none (causal masking alone tells positions apart), a learned table,
#: fixed sinusoids added to the embedding, or rotary embeddings of queries and keys
POSITIONALS = ("none", "learned", "sinusoidal", "rope")


class HookPoint(nn.Module):
    """The identity; a forward hook on it sees the tensor that passes (TransformerLens's HookPoint)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LayerNorm(nn.Module):
    """LayerNorm with a gain ``w`` and bias ``b``; ``hook_normalized`` sees its output (after w, b)."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))  # (d,)
        self.b = nn.Parameter(torch.zeros(d_model))  # (d,)
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True)  # (..., d)
        scale = (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()  # (..., 1)
        return self.hook_normalized(x / scale * self.w + self.b)  # (..., d)


def sinusoids(n_positions: int, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding: (P, d), sin in even columns and cos in odd ones."""
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)  # (P, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (⌈d/2⌉,)
    table = torch.zeros(n_positions, d_model)  # (P, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return table


def rotate(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, half-split form) of queries or keys (B, H, P, E), E even."""
    P, E = x.shape[-2], x.shape[-1]
    inv = base ** (-torch.arange(0, E, 2, dtype=torch.float32, device=x.device) / E)  # (E/2,)
    angle = torch.arange(P, dtype=torch.float32, device=x.device).unsqueeze(1) * inv  # (P, E/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (P, E/2)
    x1, x2 = x[..., : E // 2], x[..., E // 2 :]  # (B, H, P, E/2)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)  # (B, H, P, E)


class Attention(nn.Module):
    """Causal multi-head self-attention; ``hook_pattern`` sees the (B, H, query, key) softmax."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, rope: bool) -> None:
        super().__init__()
        self.rope = rope
        self.W_Q = nn.Parameter(torch.empty(n_heads, d_model, d_head))  # (H, d, E)
        self.W_K = nn.Parameter(torch.empty(n_heads, d_model, d_head))  # (H, d, E)
        self.W_V = nn.Parameter(torch.empty(n_heads, d_model, d_head))  # (H, d, E)
        self.W_O = nn.Parameter(torch.empty(n_heads, d_head, d_model))  # (H, E, d)
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head))  # (H, E)
        self.b_K = nn.Parameter(torch.zeros(n_heads, d_head))  # (H, E)
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head))  # (H, E)
        self.b_O = nn.Parameter(torch.zeros(d_model))  # (d,)
        self.hook_pattern = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, P, d) -> (B, P, d)."""
        q = torch.einsum("bpd,hde->bhpe", x, self.W_Q) + self.b_Q[:, None]  # (B, H, P, E)
        k = torch.einsum("bpd,hde->bhpe", x, self.W_K) + self.b_K[:, None]  # (B, H, P, E)
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V) + self.b_V[:, None]  # (B, H, P, E)
        if self.rope:
            q, k = rotate(q), rotate(k)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, P, P)
        P = x.shape[1]
        future = torch.ones(P, P, dtype=torch.bool, device=x.device).triu(1)  # (P, P) key after query
        scores = scores.masked_fill(future, float("-inf"))
        pattern = self.hook_pattern(scores.softmax(-1))  # (B, H, P, P)
        z = pattern @ v  # (B, H, P, E)
        return torch.einsum("bhpe,hed->bpd", z, self.W_O) + self.b_O  # (B, P, d)


class MLP(nn.Module):
    """GELU MLP: (B, P, d) -> (B, P, d)."""

    def __init__(self, d_model: int, d_mlp: int) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_model, d_mlp))  # (d, M)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))  # (M,)
        self.W_out = nn.Parameter(torch.empty(d_mlp, d_model))  # (M, d)
        self.b_out = nn.Parameter(torch.zeros(d_model))  # (d,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out  # (B, P, d)


class Block(nn.Module):
    """One pre-LayerNorm block: attention, then (unless attention-only) an MLP, each residual."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int, attn_only: bool, rope: bool) -> None:
        super().__init__()
        self.ln1 = LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, d_head, rope)
        self.attn_only = attn_only
        if not attn_only:
            self.ln2 = LayerNorm(d_model)
            self.mlp = MLP(d_model, d_mlp)
        self.hook_resid_pre = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)  # (B, P, d)
        resid = self.hook_resid_mid(resid + self.attn(self.ln1(resid)))  # (B, P, d)
        if not self.attn_only:
            resid = resid + self.mlp(self.ln2(resid))  # (B, P, d)
        return self.hook_resid_post(resid)  # (B, P, d)


class Transformer(SequenceModel):
    """Pre-LayerNorm causal transformer over [BOS] + string, read out after the final LayerNorm.

    Parameters
    ----------
    n_symbols : input alphabet size A (token A is BOS).
    n_outputs : output classes O.
    n_layers : blocks.
    d_model : residual width d (the state size S).
    n_heads : attention heads per block.
    d_head : width of each head (None: d_model // n_heads).
    d_mlp : MLP width (None: 4 d_model); unused when attn_only.
    attn_only : blocks without MLPs.
    positional : "none", "learned", "sinusoidal" or "rope" (:data:`POSITIONALS`).
    max_length : longest string a learned positional table serves (its rows: max_length + 1).
    """

    arch = "transformer"

    def __init__(
        self, n_symbols: int, n_outputs: int, n_layers: int = 2, d_model: int = 32, n_heads: int = 2,
        d_head: int | None = None, d_mlp: int | None = None, attn_only: bool = False,
        positional: str = "learned", max_length: int = 64,
    ) -> None:
        super().__init__()
        if positional not in POSITIONALS:
            raise ConfigError(f"model.transformer.positional = {positional!r} is not allowed; choose one of: {', '.join(POSITIONALS)}")
        d_head = d_model // n_heads if d_head is None else d_head
        if positional == "rope" and d_head % 2:
            raise ConfigError(f"rotary positions need an even head width (d_head = {d_head})")
        self.n_symbols, self.n_outputs = n_symbols, n_outputs
        self.state_size = self.d_model = d_model
        self.n_layers, self.n_heads, self.d_head = n_layers, n_heads, d_head
        self.positional, self.max_length, self.attn_only = positional, max_length, attn_only
        self.bos = n_symbols
        self.W_E = nn.Parameter(torch.empty(n_symbols + 1, d_model))  # (A + 1, d) the last row is BOS
        if positional == "learned":
            self.W_pos = nn.Parameter(torch.empty(max_length + 1, d_model))  # (L + 1, d)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, d_head, 4 * d_model if d_mlp is None else d_mlp, attn_only, positional == "rope")
            for _ in range(n_layers)
        )
        self.ln_final = LayerNorm(d_model)
        self.W_U = nn.Parameter(torch.empty(d_model, n_outputs))  # (d, O)
        self.b_U = nn.Parameter(torch.zeros(n_outputs))  # (O,)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()

    def embed(self, symbols: torch.Tensor) -> torch.Tensor:
        """The residual stream entering block 0: (B, T) long -> (B, T + 1, d)."""
        B, T = symbols.shape
        if self.positional == "learned" and T > self.max_length:
            raise ConfigError(
                f"a string of length {T} is longer than the learned positional table "
                f"(model.transformer.max_length = {self.max_length}); raise it or use another positional"
            )
        bos = torch.full((B, 1), self.bos, dtype=torch.long, device=symbols.device)  # (B, 1)
        tokens = torch.cat([bos, symbols], dim=1)  # (B, P), P = T + 1
        resid = self.hook_embed(self.W_E[tokens])  # (B, P, d)
        if self.positional == "learned":
            resid = resid + self.hook_pos_embed(self.W_pos[: T + 1])  # (B, P, d)
        elif self.positional == "sinusoidal":
            resid = resid + self.hook_pos_embed(sinusoids(T + 1, self.d_model).to(resid))  # (B, P, d)
        return resid

    def prefix_states(self, symbols: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm's output at every position: (B, T) long -> (B, T + 1, d); row 0 = BOS."""
        resid = self.embed(symbols)  # (B, P, d)
        for block in self.blocks:
            resid = block(resid)  # (B, P, d)
        return self.ln_final(resid)  # (B, P, d)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Logits of states: (..., d) -> (..., O)."""
        return states @ self.W_U + self.b_U  # (..., O)

    def run_with_cache(self, symbols: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at every position (B, T + 1, O) and every hook point's tensor, by name."""
        cache: dict[str, torch.Tensor] = {}
        handles = [
            module.register_forward_hook(lambda _m, _i, out, name=name: cache.__setitem__(name, out.detach()))
            for name, module in self.named_modules() if isinstance(module, HookPoint)
        ]
        try:
            logits = self.prefix_outputs(symbols)  # (B, T + 1, O)
        finally:
            for handle in handles:
                handle.remove()
        return logits, cache


def init_weights(model: Transformer, std: float | None, generator: torch.Generator) -> None:
    """Every ``W_*`` normal with standard deviation `std` (None: 0.8 / √d_model, TransformerLens's
    default) drawn from `generator` in parameter order; biases 0; LayerNorm gains 1."""
    std = 0.8 / math.sqrt(model.d_model) if std is None else std
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("W_"):
                p.copy_(torch.randn(p.shape, generator=generator) * std)
            elif leaf == "w":
                p.fill_(1.0)
            else:
                p.zero_()


def build_transformer(cfg: ModelConfig, n_symbols: int, n_outputs: int, generator: torch.Generator) -> Transformer:
    """Build and initialise a :class:`Transformer` from ``cfg.transformer`` (config.TransformerConfig)."""
    t = cfg.transformer
    model = Transformer(
        n_symbols, n_outputs, n_layers=t.n_layers, d_model=t.d_model, n_heads=t.n_heads, d_head=t.d_head,
        d_mlp=t.d_mlp, attn_only=t.attn_only, positional=t.positional, max_length=t.max_length,
    )
    init_weights(model, t.init_std, generator)
    return model
