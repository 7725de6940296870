"""The merge history of a run: who merged into whom, and when.

States of consecutive checkpoints are the nodes of a directed acyclic graph; each state of a
checkpoint has an edge to the state of the next checkpoint that it became (``successor`` in
dynamics.json). A node with several incoming edges is a merge; a node with none is a state that
appeared (split off, or new in the tree).

Example
-------
>>> dyn = {"checkpoints": [{"step": 0, "n_states": 3, "successor": None},
...                        {"step": 10, "n_states": 2, "successor": [0, 1, 1]}]}
>>> sorted(merge_history_graph(dyn).edges())
[((0, 0), (10, 0)), ((0, 1), (10, 1)), ((0, 2), (10, 1))]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from rnnautomata.render.figures import save_figure

__all__ = ["merge_history_graph", "history_layout", "draw_merge_history"]


def merge_history_graph(dynamics: Mapping[str, Any]) -> nx.DiGraph:
    """The merge history as a networkx DAG.

    Parameters
    ----------
    dynamics : dict
        A ``rnnautomata.dynamics/1`` dict: ``checkpoints[i]`` has ``step``, ``n_states`` and
        ``successor`` (for each state of checkpoint ``i - 1``, the state it became, -1 for none).

    Returns
    -------
    nx.DiGraph
        Nodes ``(step, state)`` with attributes ``step``, ``state``, ``index`` (checkpoint index)
        and ``merged`` (True when two or more states of the previous checkpoint became it). Edges
        ``(prev_step, p) -> (step, successor[p])`` with ``merge`` (True when the target is a merge).

    Raises
    ------
    ValueError
        If a ``successor`` list does not have one entry per state of the previous checkpoint, or
        names a state that does not exist.
    """
    graph = nx.DiGraph()
    checkpoints = list(dynamics["checkpoints"])
    for index, ck in enumerate(checkpoints):
        step = int(ck["step"])
        for state in range(int(ck["n_states"])):
            graph.add_node((step, state), step=step, state=state, index=index, merged=False)
        successor = ck.get("successor")
        if index == 0 or successor is None:
            continue
        prev = checkpoints[index - 1]
        prev_step, n_prev = int(prev["step"]), int(prev["n_states"])
        if len(successor) != n_prev:
            raise ValueError(f"checkpoint at step {step}: successor has {len(successor)} entries, "
                             f"but the previous checkpoint has {n_prev} states")
        counts: dict[int, int] = {}
        for p, s in enumerate(successor):
            if s is None or s < 0:
                continue
            if s >= int(ck["n_states"]):
                raise ValueError(f"checkpoint at step {step}: successor {s} of state {p} is not a state")
            graph.add_edge((prev_step, p), (step, int(s)))
            counts[int(s)] = counts.get(int(s), 0) + 1
        for s, k in counts.items():
            if k > 1:
                graph.nodes[(step, s)]["merged"] = True
        for p, s in enumerate(successor):
            if s is not None and s >= 0:
                graph.edges[(prev_step, p), (step, int(s))]["merge"] = counts[int(s)] > 1
    return graph


def history_layout(graph: nx.DiGraph) -> dict[tuple[int, int], tuple[float, float]]:
    """Positions for drawing: x = checkpoint index, y = the state's rank in its column.

    The states of each checkpoint are ordered by the mean rank of their predecessors (states
    without one go last, by id), then centred on 0, so lines run straight unless states merge and
    the column's height is its number of states.
    """
    columns: dict[int, list[tuple[int, int]]] = {}
    for node, data in graph.nodes(data=True):
        columns.setdefault(data["index"], []).append(node)
    rank: dict[tuple[int, int], float] = {}
    pos = {}
    for index in sorted(columns):
        nodes = columns[index]

        def key(node: tuple[int, int]) -> tuple[float, int]:
            preds = [rank[p] for p in graph.predecessors(node) if p in rank]
            return (float(np.mean(preds)) if preds else np.inf, node[1])

        ordered = sorted(nodes, key=key)
        centre = (len(ordered) - 1) / 2
        for r, node in enumerate(ordered):
            rank[node] = r
            pos[node] = (float(index), r - centre)
    return pos


def draw_merge_history(
    graph: nx.DiGraph,
    path_stem: str | Path,
    formats: Sequence[str] = ("svg", "png"),
    *,
    title: str | None = None,
) -> list[Path]:
    """Draw the merge history: one column per checkpoint, a line from each state to its successor.

    Edges into a merge are orange, others grey; merges are marked with dots when the graph is
    small enough for markers to help (under 4,000 nodes). The x axis is labelled with steps.

    Returns
    -------
    list of Path
        ``<path_stem>.<fmt>`` for each of ``formats``.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    pos = history_layout(graph)
    fig = Figure(figsize=(10, 4.8), dpi=100)
    ax = fig.subplots()
    plain, merging = [], []
    for u, v, data in graph.edges(data=True):
        (merging if data.get("merge") else plain).append((pos[u], pos[v]))
    width = 0.4 if graph.number_of_edges() > 20000 else 0.8
    if plain:
        ax.add_collection(LineCollection(plain, colors="#9e9e9e", linewidths=width, alpha=0.6))
    if merging:
        ax.add_collection(LineCollection(merging, colors="#e6550d", linewidths=width, alpha=0.8,
                                         label="merged into one state"))
    nodes = list(graph.nodes)
    if nodes and len(nodes) < 4000:
        xy = np.array([pos[n] for n in nodes])
        ax.scatter(xy[:, 0], xy[:, 1], s=4, color="#424242", lw=0, zorder=3)
        mask = np.array([graph.nodes[n]["merged"] for n in nodes])
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color="#e6550d", lw=0, zorder=4)
    steps = {}
    for _, data in graph.nodes(data=True):
        steps[data["index"]] = data["step"]
    if steps:
        indices = sorted(steps)
        stride = max(1, len(indices) // 10)
        ticks = indices[::stride]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{steps[i]:,}" for i in ticks], fontsize=8, rotation=30)
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(-0.5, max(indices) + 0.5)
        ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.set_xlabel("checkpoint (training step)")
    ax.set_ylabel("states (column height = number of states)")
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    if merging:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "merge history: each state → the state it became", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path_stem, formats)
