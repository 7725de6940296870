"""Where states sit: access strings and positions that stay put from one checkpoint to the next.

:func:`stable_positions` pins states across checkpoints: every state sits where its access string
(shortest, then lexicographically first string that reaches it) sits in one tidy prefix tree laid
out for all the machines together. A merged state keeps the place of the state whose access string
it inherits, so a reader sees states disappear into others instead of jumping. ``max_gap`` closes
up the empty space a small machine has in the union's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from rnnautomata.automata import Machine

__all__ = ["NODE_SEP", "PINNED_MAX_GAP", "RANK_SEP", "access_strings", "is_tree", "stable_positions"]

RANK_SEP = 1.1  # inches between depths in a pinned prefix-tree layout
NODE_SEP = 0.55  # inches between neighbouring leaves
#: ``max_gap`` (inches) of the pinned drawings in the report and the merge snapshots: empty space
#: the union prefix tree leaves between a small machine's states is closed up to this.
PINNED_MAX_GAP = 2 * NODE_SEP


def access_strings(machine: Machine) -> dict[int, tuple[int, ...]]:
    """The shortest (then lexicographically first) string reaching each reachable state.

    Returns
    -------
    dict
        state id -> tuple of symbol ids; the start state maps to ``()``. Unreachable states are
        absent. The strings are prefix-closed (a breadth-first spanning tree).
    """
    found = {machine.start: ()}
    frontier = [machine.start]
    transitions = machine.transitions
    while frontier:
        nxt = []
        for state in frontier:
            for symbol in range(machine.n_symbols):
                target = int(transitions[state, symbol])
                if target >= 0 and target not in found:
                    found[target] = found[state] + (symbol,)
                    nxt.append(target)
        frontier = nxt
    return found


def is_tree(machine: Machine) -> bool:
    """True when the reachable part is a tree rooted at the start (no state entered twice)."""
    reach = access_strings(machine)
    entered = 0
    for state in reach:
        row = machine.transitions[state]
        entered += int((row >= 0).sum())
    return entered == len(reach) - 1


def _tree_layout(strings: set[tuple[int, ...]], rank_sep: float, node_sep: float) -> dict:
    """Tidy left-to-right layout of a prefix-closed set of strings: leaves evenly spaced,
    a parent midway between its first and last child. Returns string -> (x, y) in inches."""
    ordered = sorted(strings)  # lexicographic order of tuples = depth-first order
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for s in ordered:
        if s:
            children.setdefault(s[:-1], []).append(s)
    y: dict[tuple[int, ...], float] = {}
    slot = 0
    for s in ordered:
        if s not in children:
            y[s] = -slot * node_sep
            slot += 1
    for s in sorted(strings, key=len, reverse=True):
        if s in children:
            kids = children[s]
            y[s] = (y[kids[0]] + y[kids[-1]]) / 2
    return {s: (len(s) * rank_sep, y[s]) for s in strings}


def _close_gaps(values: Sequence[float], max_gap: float) -> dict[float, float]:
    """Each distinct value -> a new one: order kept, the smallest kept, every gap between
    neighbouring values shrunk to at most ``max_gap``."""
    ordered = sorted(set(values))
    out = {ordered[0]: ordered[0]}
    for low, high in zip(ordered, ordered[1:]):
        out[high] = out[low] + min(high - low, max_gap)
    return out


def stable_positions(machines: Sequence[Machine], *, rank_sep: float = RANK_SEP,
                     node_sep: float = NODE_SEP,
                     max_gap: float | None = None) -> list[dict[int, tuple[float, float]]]:
    """Positions that stay put from one machine (checkpoint) to the next.

    All machines' access strings are laid out as one prefix tree (depth left to right); each state
    is placed where its access string is. Unreachable states go in a column right of the tree.

    A machine much smaller than the union (two states, when a later checkpoint has hundreds) then
    sits on a canvas sized for the union, its states far apart. With ``max_gap``, each machine's
    empty space is closed up: gaps between its occupied rows wider than ``max_gap`` shrink to
    ``max_gap`` (and between columns, to ``1.5 * rank_sep``). States keep their order, and their
    relative places wherever the drawing is dense, so merges still read as states vanishing.

    Parameters
    ----------
    machines : sequence of Machine
        Over one alphabet, e.g. the machines of consecutive checkpoints.
    rank_sep, node_sep : float
        Inches between depths and between neighbouring leaves.
    max_gap : float, optional
        Inches; see above. None (the default) keeps the union's coordinates exactly.

    Returns
    -------
    list of dict
        One ``{state id: (x, y)}`` (inches) per machine, every state placed.
    """
    accesses = [access_strings(m) for m in machines]
    union: set[tuple[int, ...]] = {()}
    for acc in accesses:
        for s in acc.values():
            union.update(s[:i] for i in range(len(s) + 1))
    layout = _tree_layout(union, rank_sep, node_sep)
    max_x = max(x for x, _ in layout.values())
    out = []
    for machine, acc in zip(machines, accesses):
        pos = {state: layout[s] for state, s in acc.items()}
        extra = [q for q in range(machine.n_states) if q not in pos]
        for i, q in enumerate(extra):
            pos[q] = (max_x + 1.5 * rank_sep, -i * node_sep)
        if max_gap is not None:
            new_x = _close_gaps([x for x, _ in pos.values()], 1.5 * rank_sep)
            new_y = _close_gaps([y for _, y in pos.values()], max_gap)
            pos = {q: (new_x[x], new_y[y]) for q, (x, y) in pos.items()}
        out.append(pos)
    return out

