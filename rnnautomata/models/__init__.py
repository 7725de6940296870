"""Model registry: a plain dict from architecture name to builder, and the sequence-model contract.

``MODELS[arch](cfg, n_symbols, n_outputs, generator)`` builds a model that follows the contract of
:mod:`rnnautomata.models.base`. The builders are imported on first use, so reading the names
(``rnnautomata.config``'s choices for ``model.arch``) imports no torch. A recurrent arch is one torch
cell (``RECURRENT_CELLS``; :mod:`rnnautomata.models.rnn` builds them all); adding another kind of
model = one module with a builder + one line in ``MODELS``.

>>> "transformer" in MODELS and "lstm" in RECURRENT_CELLS
True
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["RecurrentModel", "SequenceModel", "Transformer", "build_recurrent", "build_transformer", "is_recurrent",
           "MODELS", "RECURRENT_CELLS", "LazyRegistry"]


class LazyRegistry(Mapping):
    """A read-only dict ``name -> object`` whose objects are given as ``"module:attribute"`` and
    imported on first lookup."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Any:
        module, attribute = self._entries[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LazyRegistry({self._entries!r})"


#: recurrent arch -> its torch.nn cell class (rnnautomata.models.rnn.ARCHS holds the classes)
RECURRENT_CELLS = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}

#: arch name -> builder(cfg, n_symbols, n_outputs, generator)
MODELS = LazyRegistry({
    **{arch: "rnnautomata.models.rnn:build_recurrent" for arch in RECURRENT_CELLS},
    "transformer": "rnnautomata.models.transformer:build_transformer",
})

_EXPORTS = {"RecurrentModel": "rnnautomata.models.rnn", "build_recurrent": "rnnautomata.models.rnn",
            "SequenceModel": "rnnautomata.models.base", "is_recurrent": "rnnautomata.models.base",
            "Transformer": "rnnautomata.models.transformer", "build_transformer": "rnnautomata.models.transformer"}


def __getattr__(name: str) -> Any:
    """``from rnnautomata.models import RecurrentModel`` (and the rest of ``__all__``) without
    importing torch at ``import rnnautomata.models``."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnautomata.models' has no attribute {name!r}")
