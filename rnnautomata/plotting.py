"""Matplotlib figures that leave the caller's pyplot alone.

Every figure the package draws is a plain :class:`matplotlib.figure.Figure`, made here rather than
with ``pyplot.subplots``: no backend is chosen or switched (so ``plt.show()`` in a notebook or a
script keeps working after a run drew its figures), nothing is registered with pyplot's global
figure list (nothing to close, nothing leaks in a long sweep), and drawing is safe in worker threads
and processes. Figures are written with :func:`rnnautomata.runs.atomic_savefig` or
:func:`rnnautomata.icl.figures.save_figure`.

Examples
--------
>>> fig, (left, right) = subplots(1, 2, figsize=(6, 3))
>>> type(fig).__name__, len(fig.axes)
('Figure', 2)
>>> len(colours("viridis", 3))
3
"""

from __future__ import annotations

from typing import Any

__all__ = ["subplots", "colours", "default_colours"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             constrained_layout: bool = False, **subplot_kw: Any):
    """``(Figure, axes)`` as ``pyplot.subplots`` returns them, without touching pyplot.

    ``subplot_kw`` goes to :meth:`matplotlib.figure.Figure.subplots` (``sharex``, ``sharey``,
    ``squeeze``, ``gridspec_kw``, ``subplot_kw``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained" if constrained_layout else None)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def colours(cmap: str, n_or_values) -> list:
    """RGBA colours from the colour map named ``cmap``: ``n`` evenly spaced ones (an int) or the
    colours at ``values`` in [0, 1] (a sequence)."""
    import matplotlib
    import numpy as np

    values = np.linspace(0, 1, n_or_values) if isinstance(n_or_values, int) else np.asarray(n_or_values, float)
    return [tuple(c) for c in matplotlib.colormaps[cmap](values)]


def default_colours() -> list[str]:
    """The colour cycle of the current matplotlib style (what ``plt.rcParams`` would give)."""
    import matplotlib

    return list(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
