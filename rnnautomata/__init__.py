"""rnnautomata: watch neural networks develop algorithms during training."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``rnnautomata.Run`` without importing torch at ``import rnnautomata``."""
    if name == "Run":
        from rnnautomata.run import Run

        return Run
    raise AttributeError(f"module 'rnnautomata' has no attribute {name!r}")
