"""The sequence-model contract: the state of every prefix in one call, no recurrence assumed.

Every model the automata pipeline trains, probes and extracts from is a :class:`SequenceModel`::

    states = model.prefix_states(symbols)   # (B, T) long -> (B, T + 1, S); row 0 = the empty prefix
    logits = model.readout(states)          # (..., S) -> (..., O)

Everything else (``prefix_outputs``, ``forward``, ``forward_last``) follows from these two, and a
model may override them for speed. A recurrent model (``models/rnn.py``) also offers the one-step
API, ``initial_state(batch_size) -> (B, S)`` and ``step(state (B, S), symbols (B,)) -> (B, S)``,
which the probe uses to reach every node of a prefix tree from its parent (one step per node). A
model without ``step`` must be *causal*: position t of ``prefix_states`` depends on symbols ≤ t
only, so one pass over a long string gives the state of each of its prefixes (the probe relies on
this; ``models/transformer.py`` is such a model).

Example
-------
>>> import torch
>>> from rnnautomata.models.rnn import RecurrentModel
>>> model = RecurrentModel(n_symbols=2, n_outputs=2, hidden_size=4)
>>> model.prefix_states(torch.zeros(3, 5, dtype=torch.long)).shape
torch.Size([3, 6, 4])
>>> is_recurrent(model)
True
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SequenceModel", "is_recurrent"]


class SequenceModel(nn.Module):
    """Base class of the automata pipeline's models.

    Attributes set by subclasses: ``n_symbols`` (input alphabet size), ``n_outputs`` (output
    classes), ``state_size`` (S, the width of a prefix's state).
    """

    n_symbols: int
    n_outputs: int
    state_size: int

    def prefix_states(self, symbols: torch.Tensor) -> torch.Tensor:
        """The state after every prefix: (B, T) long -> (B, T + 1, S); row 0 is the empty prefix."""
        raise NotImplementedError

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Output logits of states: (..., S) -> (..., O)."""
        raise NotImplementedError

    def prefix_outputs(self, symbols: torch.Tensor) -> torch.Tensor:
        """Logits after every prefix, the empty one included: (B, T) -> (B, T + 1, O)."""
        return self.readout(self.prefix_states(symbols))  # (B, T + 1, O)

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        """Logits after every symbol: (B, T) long -> (B, T, O)."""
        return self.prefix_outputs(symbols)[:, 1:]  # (B, T, O)

    def forward_last(self, symbols: torch.Tensor) -> torch.Tensor:
        """Logits after the whole string: (B, T) long -> (B, O)."""
        return self.prefix_outputs(symbols)[:, -1]  # (B, O)


def is_recurrent(model: nn.Module) -> bool:
    """True when `model` offers the one-step API (``initial_state`` and ``step``)."""
    return callable(getattr(model, "step", None)) and callable(getattr(model, "initial_state", None))
