"""rnnautomata: watch neural networks develop algorithms during training."""

__version__ = "0.1.0"
