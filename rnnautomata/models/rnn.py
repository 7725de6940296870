"""Recurrent sequence models with a one-step API for probing.

Every model follows the sequence-model contract (``models/base.py``, docs/contracts.md) and adds the
one-step API (``initial_state`` / ``step``). The recurrent state is a single tensor
``(B, S)`` (``S = H`` for Elman and GRU, ``S = 2H`` for LSTM, holding ``[h, c]``), so the probe and the
merger never need to know which cell produced it. ``forward`` runs torch's fused recurrent kernels;
``step`` runs the same module one symbol at a time, so probed states match training-time states.
Inputs are one-hot symbols; the readout is linear.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from rnnautomata.models import RECURRENT_CELLS
from rnnautomata.models.base import SequenceModel

if TYPE_CHECKING:  # pragma: no cover
    from rnnautomata.config import ModelConfig

__all__ = ["RecurrentModel", "build_recurrent", "ARCHS"]

ARCHS = {arch: getattr(nn, cell) for arch, cell in RECURRENT_CELLS.items()}  # {"elman": nn.RNN, ...}


TIME_CHUNK = 512  # symbols per recurrent-kernel call in forward_last (long strings)


class RecurrentModel(SequenceModel):
    """One-layer Elman / GRU / LSTM network with one-hot input and a linear readout.

    Parameters
    ----------
    n_symbols : input alphabet size.
    n_outputs : number of output classes.
    hidden_size : units H.
    arch : "elman", "gru" or "lstm".
    nonlinearity : "relu" or "tanh" (elman only).
    initial_state : value of every unit of h0 (and c0).
    learn_initial_state : make h0 a parameter.
    """

    def __init__(
        self,
        n_symbols: int,
        n_outputs: int,
        hidden_size: int = 100,
        arch: str = "elman",
        nonlinearity: str = "relu",
        initial_state: float = 1.0,
        learn_initial_state: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        self.n_symbols = n_symbols
        self.n_outputs = n_outputs
        self.hidden_size = hidden_size
        self.arch = arch
        self.state_size = 2 * hidden_size if arch == "lstm" else hidden_size
        kwargs = {"nonlinearity": nonlinearity} if arch == "elman" else {}
        self.cell = ARCHS[arch](n_symbols, hidden_size, batch_first=True, **kwargs)
        self.readout_layer = nn.Linear(hidden_size, n_outputs)
        h0 = torch.full((self.state_size,), float(initial_state))
        if learn_initial_state:
            self.h0 = nn.Parameter(h0)
        else:
            self.register_buffer("h0", h0)

    # --- state <-> torch's (h, c) ----------------------------------------------------------
    def _unpack(self, state: torch.Tensor):
        h = state[:, : self.hidden_size].unsqueeze(0).contiguous()  # (1, B, H)
        if self.arch == "lstm":
            c = state[:, self.hidden_size :].unsqueeze(0).contiguous()  # (1, B, H)
            return (h, c)
        return h

    def _pack(self, hx) -> torch.Tensor:
        if self.arch == "lstm":
            return torch.cat([hx[0][0], hx[1][0]], dim=-1)  # (B, 2H)
        return hx[0]  # (B, H)

    # --- the one-step API ------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> torch.Tensor:
        """h0 repeated over the batch: (B, S)."""
        return self.h0.unsqueeze(0).expand(batch_size, -1)  # (B, S)

    def step(self, state: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
        """Advance every state by one symbol: (B, S), (B,) long -> (B, S)."""
        x = F.one_hot(symbols, self.n_symbols).to(state.dtype).unsqueeze(1)  # (B, 1, A)
        _, hx = self.cell(x, self._unpack(state))
        return self._pack(hx)  # (B, S)

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        """Outputs of states: (..., S) -> (..., O)."""
        return self.readout_layer(state[..., : self.hidden_size])  # (..., O)

    # --- the sequence-model contract (models/base.py) ----------------------------------------
    def prefix_states(self, symbols: torch.Tensor) -> torch.Tensor:
        """The state after every prefix: (B, T) long -> (B, T + 1, S); row 0 is h0.

        Elman and GRU: one fused kernel call. LSTM: one ``step`` per symbol (the kernel returns
        h at every step but c only at the last).
        """
        B = symbols.shape[0]
        state = self.initial_state(B)  # (B, S)
        if self.arch == "lstm":
            states = [state]
            for t in range(symbols.shape[1]):
                states.append(self.step(states[-1], symbols[:, t]))  # (B, S)
            return torch.stack(states, dim=1)  # (B, T + 1, S)
        x = F.one_hot(symbols, self.n_symbols).to(self.h0.dtype)  # (B, T, A)
        hs, _ = self.cell(x, self._unpack(state))  # (B, T, H)
        return torch.cat([state.unsqueeze(1), hs], dim=1)  # (B, T + 1, H)

    def prefix_outputs(self, symbols: torch.Tensor) -> torch.Tensor:
        """Outputs after every prefix, the empty one included: (B, T) -> (B, T + 1, O)."""
        out0 = self.readout(self.initial_state(symbols.shape[0])).unsqueeze(1)  # (B, 1, O)
        return torch.cat([out0, self(symbols)], dim=1)  # (B, T + 1, O)

    def forward(self, symbols: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs after every symbol: (B, T) long -> (B, T, O)."""
        B = symbols.shape[0]
        if state is None:
            state = self.initial_state(B)  # (B, S)
        x = F.one_hot(symbols, self.n_symbols).to(self.h0.dtype)  # (B, T, A)
        hs, _ = self.cell(x, self._unpack(state))  # (B, T, H)
        return self.readout_layer(hs)  # (B, T, O)

    def forward_last(self, symbols: torch.Tensor) -> torch.Tensor:
        """Output after the last symbol only: (B, T) -> (B, O); for long strings.

        The string goes through the recurrent kernel ``TIME_CHUNK`` symbols at a time, carrying
        the state: the kernel's (B, T, H) output of every step is never allocated whole (at
        T = 10,000 that allocation made each step ~5x slower). Same kernel, same numbers.
        """
        hx = self._unpack(self.initial_state(symbols.shape[0]))
        for start in range(0, symbols.shape[1], TIME_CHUNK):
            x = F.one_hot(symbols[:, start : start + TIME_CHUNK], self.n_symbols).to(self.h0.dtype)  # (B, ≤C, A)
            _, hx = self.cell(x, hx)
        return self.readout(self._pack(hx))  # (B, O)


def _init_weights(model: RecurrentModel, init: str, gain: float, generator: torch.Generator) -> None:
    """Initialise weights from ``generator``; biases are zero, except for ``default``, which is
    torch's own RNN init (every weight and bias uniform in ±1/√H) drawn from ``generator``."""
    with torch.no_grad():
        if init == "default":
            bound = 1.0 / math.sqrt(model.hidden_size)
            for name, p in model.named_parameters():
                if name != "h0":
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            return
        for name, p in model.named_parameters():
            if name == "h0":
                continue
            if name.startswith(("cell.bias", "readout_layer.bias")):
                p.zero_()
                continue
            fan_out, fan_in = p.shape
            if init == "xavier_normal":
                std = gain * math.sqrt(2.0 / (fan_in + fan_out))
                p.copy_(torch.randn(p.shape, generator=generator) * std)
            elif init == "xavier_uniform":
                a = gain * math.sqrt(6.0 / (fan_in + fan_out))
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * a)
            elif init == "normal":
                p.copy_(torch.randn(p.shape, generator=generator) * gain)
            else:  # pragma: no cover - validated in config
                raise ValueError(f"unknown init {init!r}")


def build_recurrent(cfg: ModelConfig, n_symbols: int, n_outputs: int, generator: torch.Generator) -> RecurrentModel:
    """Build and initialise a :class:`RecurrentModel` from a :class:`ModelConfig`."""
    model = RecurrentModel(
        n_symbols,
        n_outputs,
        hidden_size=cfg.hidden_size,
        arch=cfg.arch,
        nonlinearity=cfg.nonlinearity,
        initial_state=cfg.initial_state,
        learn_initial_state=cfg.learn_initial_state,
    )
    _init_weights(model, cfg.init, cfg.init_gain, generator)
    return model
