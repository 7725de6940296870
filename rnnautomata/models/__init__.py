"""Model registry: a plain dict from architecture name to builder."""

from rnnautomata.models.rnn import RecurrentModel, build_recurrent

__all__ = ["RecurrentModel", "build_recurrent", "MODELS"]

#: arch name -> builder(cfg, n_symbols, n_outputs, generator)
MODELS = {"elman": build_recurrent, "gru": build_recurrent, "lstm": build_recurrent}
