"""Model registry: a plain dict from architecture name to builder.

Every model follows the sequence-model contract of :mod:`rnnautomata.models.base`.
"""

from rnnautomata.models.base import SequenceModel, is_recurrent
from rnnautomata.models.rnn import RecurrentModel, build_recurrent
from rnnautomata.models.transformer import Transformer, build_transformer

__all__ = ["RecurrentModel", "SequenceModel", "Transformer", "build_recurrent", "build_transformer", "is_recurrent", "MODELS"]

#: arch name -> builder(cfg, n_symbols, n_outputs, generator)
MODELS = {"elman": build_recurrent, "gru": build_recurrent, "lstm": build_recurrent, "transformer": build_transformer}
