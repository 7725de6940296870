"""Pictures of machines and of their merge dynamics: graphviz drawings and matplotlib figures.

One module per job, all re-exported here:

- :mod:`~rnnautomata.render.layout`: :func:`access_strings`, :func:`stable_positions` (states
  pinned across checkpoints, a merged state keeping the place of the state whose access string it
  inherits).
- :mod:`~rnnautomata.render.dot`: :func:`machine_dot` turns a
  :class:`~rnnautomata.automata.Machine` into styled DOT (start arrow, states filled by output,
  parallel transitions on one edge, open transitions as dashed stubs, big machines minimised or
  laid out by ``sfdp``); :func:`styled_dot` draws one as it is, :func:`choose_drawn` picks what to
  draw.
- :mod:`~rnnautomata.render.graphviz`: :func:`draw_machine` writes SVG/PNG with the graphviz
  ``dot`` binary (without it, a ``.dot`` file and a one-line notice); :func:`dot_to_svgs` and
  :func:`clean_svg` give SVG text to inline in HTML.
- :mod:`~rnnautomata.render.figures`: :func:`plot_timeline` (one run) and
  :func:`plot_timeline_seeds` (median and IQR over seeds), :func:`save_figure` (atomic, undated
  SVG) and :data:`PHASE_COLOURS`.
- :mod:`~rnnautomata.render.run`: :func:`draw_merge_snapshots` and :func:`render_run`, the
  figures of a run directory.

Example
-------
>>> parity = Machine.from_function(("0", "1"), ("even", "odd"), 2,
...                                delta=lambda q, a: q ^ a, out=lambda q: q)
>>> draw_machine(parity, "figures/parity")            # doctest: +SKIP
[PosixPath('figures/parity.svg'), PosixPath('figures/parity.png')]
"""

from __future__ import annotations

from rnnautomata.automata import Machine  # noqa: F401  (the example above uses it)
from rnnautomata.render.dot import (
    DEFAULT_MAX_STATES,
    OUTPUT_COLOURS,
    SCALABLE_LAYOUT_STATES,
    choose_drawn,
    dot_quote,
    layout_engine,
    machine_dot,
    output_colour,
    styled_dot,
)
from rnnautomata.render.figures import PHASE_COLOURS, image_grid, plot_timeline, plot_timeline_seeds, save_figure
from rnnautomata.render.graphviz import (
    GRAPHVIZ_TIMEOUT_S,
    clean_svg,
    dot_to_svgs,
    draw_machine,
    graphviz_binary,
    write_dot_outputs,
)
from rnnautomata.render.layout import NODE_SEP, PINNED_MAX_GAP, RANK_SEP, access_strings, is_tree, stable_positions
from rnnautomata.render.run import (
    draw_merge_snapshots,
    load_run_machine,
    open_run,
    read_dynamics,
    render_run,
    snapshot_steps,
)

__all__ = [
    "DEFAULT_MAX_STATES",
    "GRAPHVIZ_TIMEOUT_S",
    "NODE_SEP",
    "OUTPUT_COLOURS",
    "PHASE_COLOURS",
    "PINNED_MAX_GAP",
    "RANK_SEP",
    "SCALABLE_LAYOUT_STATES",
    "access_strings",
    "choose_drawn",
    "clean_svg",
    "dot_quote",
    "dot_to_svgs",
    "draw_machine",
    "draw_merge_snapshots",
    "graphviz_binary",
    "image_grid",
    "is_tree",
    "layout_engine",
    "load_run_machine",
    "machine_dot",
    "open_run",
    "output_colour",
    "plot_timeline",
    "plot_timeline_seeds",
    "read_dynamics",
    "render_run",
    "save_figure",
    "snapshot_steps",
    "stable_positions",
    "styled_dot",
    "write_dot_outputs",
]
