"""From a probed prefix tree and a partition of its states to a Machine, and how good it is.

Steps 3 and 4 of DESIGN.md's "Extraction, precisely": states are clusters; the transition of
cluster c under symbol a is the majority cluster among the in-tree children under a of c's members;
the output of c is the network's majority output over its members. The machine is *finite* when
every transition of every state reachable from the start is defined (closes inside the tree).

Fidelity then compares the machine with the network (and with the task's ground truth) on every
short string and on long sampled ones, and reports the shortest disagreeing string it found.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rnnautomata.automata import Machine
from rnnautomata.merge import _first_appearance
from rnnautomata.models.base import is_recurrent
from rnnautomata.probe import PrefixTree, ProbeResult, prefix_tree, probe

__all__ = [
    "Extraction",
    "Fidelity",
    "LengthAccuracy",
    "extract_machine",
    "fidelity",
    "network_accuracy",
    "network_outputs",
    "tree_outputs",
]


@dataclass(frozen=True, eq=False)
class Extraction:
    """A machine extracted from a probed tree and a partition of its states.

    Attributes
    ----------
    machine : Machine
        States = clusters; start state 0 is the empty prefix's cluster; -1 = open transition.
    finite : bool
        Every transition of every state reachable from the start is defined.
    n_states : int
        Number of clusters (before minimisation; unreachable ones included).
    labels : np.ndarray
        (N,) int64 state of every tree node (the clusters renumbered as the machine's states).
    open_states : np.ndarray
        State ids with at least one undefined transition (all members at the tree's edge).
    support : np.ndarray
        (n_states, n_symbols) int64 number of member-children behind each transition.
    transition_agreement : float
        Fraction of tree edges whose child lies in the majority (chosen) cluster; 1.0 when the
        partition is exactly consistent with a deterministic machine.
    output_agreement : float
        Fraction of nodes whose network output equals their state's majority output.
    """

    machine: Machine
    finite: bool
    n_states: int
    labels: np.ndarray
    open_states: np.ndarray
    support: np.ndarray
    transition_agreement: float
    output_agreement: float


def _majority(keys: np.ndarray, values: np.ndarray, n_keys: int, n_values: int):
    """Per key, the most frequent value (ties -> smallest), its count, and the total count.

    Sparse in (key, value) pairs, so n_keys x n_values may be huge.
    """
    pair, count = np.unique(keys * n_values + values, return_counts=True)
    key, value = pair // n_values, pair % n_values
    order = np.lexsort((value, -count, key))  # by key, most frequent first, then smallest value
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    best = np.full(n_keys, -1, dtype=np.int64)
    best_count = np.zeros(n_keys, dtype=np.int64)
    best[key[first]] = value[first]
    best_count[key[first]] = count[first]
    total = np.bincount(keys, minlength=n_keys)
    return best, best_count, total


def _reachable(transitions: np.ndarray, start: int) -> np.ndarray:
    """(n_states,) bool: reachable from start through defined transitions."""
    seen = np.zeros(len(transitions), dtype=bool)
    seen[start] = True
    frontier = np.array([start])
    while len(frontier):
        nxt = transitions[frontier].ravel()  # (F * n_symbols,)
        nxt = np.unique(nxt[nxt >= 0])
        frontier = nxt[~seen[nxt]]
        seen[frontier] = True
    return seen


def extract_machine(
    probe_result: ProbeResult,
    labels,
    alphabet: Sequence[str],
    outputs: Sequence[str],
    unsupervised_below: int = 0,
) -> Extraction:
    """Build the machine whose states are the clusters of `labels`.

    Prefixes shorter than ``unsupervised_below`` are ones training never asked the network about
    (with ``task.target = "last"`` and ``train_min_length = 1``, just the empty prefix): their
    outputs do not vote. A state with no other member has a *free* output; it gets the output that
    makes the minimised machine smallest (trying every assignment, at most
    ``_MAX_FREE_ASSIGNMENTS``; ties keep the network's own output), and ``machine.meta`` records
    ``free_output_states`` and ``network_output_of_free_states`` so that the choice stays visible.

    Parameters
    ----------
    probe_result : ProbeResult
        The probed tree (its `outputs` are the network's output classes per node).
    labels : array_like of int
        (N,) cluster of every tree node, any numbering.
    alphabet : sequence of str
        Input symbol names; len = tree.n_symbols.
    outputs : sequence of str
        Output label names; the network's classes index them.
    unsupervised_below : int
        Prefix length below which the network's outputs were never trained (0: every prefix is).

    Returns
    -------
    Extraction

    Raises
    ------
    ValueError
        If the shapes disagree or a network output has no label.
    """
    tree = probe_result.tree
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != tree.n_nodes:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but the tree has {tree.n_nodes} nodes"
        )
    if len(alphabet) != tree.n_symbols:
        raise ValueError(f"alphabet has {len(alphabet)} symbols but the tree has {tree.n_symbols}")
    net_out = np.asarray(probe_result.outputs, dtype=np.int64)
    if net_out.size and (net_out.min() < 0 or net_out.max() >= len(outputs)):
        raise ValueError(
            f"network outputs must lie in 0..{len(outputs) - 1} (one per output label)"
        )

    state = _first_appearance(labels)  # (N,) root's cluster is 0 (node 0 comes first)
    n_states = int(state.max()) + 1
    transitions = np.full((n_states, tree.n_symbols), -1, dtype=np.int64)
    support = np.zeros((n_states, tree.n_symbols), dtype=np.int64)
    agreeing = 0
    for a in range(tree.n_symbols):
        child = tree.children[:, a]  # (N,)
        has = child >= 0
        best, best_count, total = _majority(state[has], state[child[has]], n_states, n_states)
        transitions[:, a] = best
        support[:, a] = total
        agreeing += int(best_count.sum())
    n_edges = tree.n_nodes - 1
    out_best, out_count, _ = _majority(state, net_out, n_states, len(outputs))
    meta: dict = {"n_prefixes": tree.n_nodes, "depth": tree.max_depth}
    voting = tree.depth >= unsupervised_below  # (N,)
    if not voting.all():
        voted, _, n_votes = _majority(state[voting], net_out[voting], n_states, len(outputs))
        free = np.flatnonzero(n_votes == 0)  # states with no supervised member
        own = out_best[free].copy()
        out_best = np.where(n_votes > 0, voted, out_best)
        out_best[free] = _smallest_filling(transitions, out_best, free, len(outputs), alphabet, outputs)
        if len(free):
            meta["free_output_states"] = free.tolist()
            meta["network_output_of_free_states"] = own.tolist()
        out_count = np.bincount(state, weights=(net_out == out_best[state]), minlength=n_states)

    reachable = _reachable(transitions, 0)
    machine = Machine(tuple(alphabet), tuple(outputs), transitions, out_best, 0, meta)
    open_mask = (transitions < 0).any(1)
    return Extraction(
        machine=machine,
        finite=not bool((open_mask & reachable).any()),
        n_states=n_states,
        labels=state,
        open_states=np.flatnonzero(open_mask),
        support=support,
        transition_agreement=agreeing / n_edges if n_edges else 1.0,
        output_agreement=float(out_count.sum()) / tree.n_nodes,
    )


_MAX_FREE_ASSIGNMENTS = 256  # output assignments tried for states with a free output


def _smallest_filling(transitions, out_best, free, n_outputs, alphabet, outputs) -> np.ndarray:
    """Outputs for the ``free`` states that make the minimised machine smallest (ties: the
    assignment tried first, the network's own outputs in ``out_best``)."""
    if len(free) == 0 or n_outputs ** len(free) > _MAX_FREE_ASSIGNMENTS:
        return out_best[free]
    own = tuple(int(o) for o in out_best[free])
    choices = [own] + [c for c in itertools.product(range(n_outputs), repeat=len(free)) if c != own]
    best, best_size = own, None
    for choice in choices:
        filled = out_best.copy()
        filled[free] = choice
        size = Machine(tuple(alphabet), tuple(outputs), transitions, filled, 0).minimize().n_states
        if best_size is None or size < best_size:
            best, best_size = choice, size
    return np.asarray(best, dtype=np.int64)


def tree_outputs(machine: Machine, tree: PrefixTree) -> np.ndarray:
    """(N,) the machine's output id after every node's string (-1 = unknown or fell off)."""
    padded = np.vstack([machine.transitions, np.full((1, machine.n_symbols), -1, np.int64)])
    state = np.empty(tree.n_nodes, dtype=np.int64)
    state[0] = machine.start
    for d in range(1, tree.max_depth + 1):
        nodes = tree.level(d)
        state[nodes] = padded[state[tree.parent[nodes]], tree.symbol[nodes]]
    return np.append(machine.output_of_state, -1)[state]


def network_outputs(
    model: torch.nn.Module, symbols: np.ndarray, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The network's output class after each symbol of a batch of strings.

    Parameters
    ----------
    model : torch.nn.Module
        One-step API or sequence-model contract (docs/contracts.md), already on `device`. A model
        with ``step`` is run one symbol at a time (as the probe runs it); any other in one
        ``prefix_outputs`` pass.
    symbols : np.ndarray
        (B, T) symbol ids.

    Returns
    -------
    np.ndarray
        (B, T) int64.
    """
    symbols_t = torch.as_tensor(np.asarray(symbols), dtype=torch.long, device=device)  # (B, T)
    batch_size, seq_len = symbols_t.shape
    result = torch.empty(batch_size, seq_len, dtype=torch.long, device=device)  # (B, T)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if not is_recurrent(model):
                return model.prefix_outputs(symbols_t)[:, 1:].argmax(-1).cpu().numpy()  # (B, T)
            state = model.initial_state(batch_size).to(device)  # (B, S)
            for t in range(seq_len):
                state = model.step(state, symbols_t[:, t])  # (B, S)
                result[:, t] = model.readout(state).argmax(-1)  # (B,)
    finally:
        model.train(was_training)
    return result.cpu().numpy()


def _relabel(machine: Machine, target: Machine) -> Machine:
    """`machine` with output ids translated to `target`'s labels (unknown labels -> -1)."""
    ids = {label: i for i, label in enumerate(target.outputs)}
    table = np.array([ids.get(label, -1) for label in machine.outputs] + [-1], dtype=np.int64)
    return Machine(machine.alphabet, target.outputs, machine.transitions,
                   table[machine.output_of_state], machine.start, machine.meta)


@dataclass(frozen=True, eq=False)
class Fidelity:
    """Agreement of an extracted machine with the network and with the ground truth.

    Attributes
    ----------
    brute_force_depth : int
        Every string up to this length was checked (the empty one included).
    network_agreement : dict[int, float]
        Per sampled length, the fraction of positions where machine and network outputs agree.
    network_witness : tuple of int or None
        The shortest string found on which they disagree (None: none found), the
        lexicographically first among equally short ones in the brute-force range. Truly shortest
        when its length is at most `brute_force_depth`. A string on which the machine falls off
        an open transition counts as a disagreement.
    truth_agreement : dict[int, float] or None
        Same against the ground-truth machine (None when no truth was given).
    truth_witness : tuple of int or None
        Shortest string found where machine and truth disagree.
    """

    brute_force_depth: int
    network_agreement: dict[int, float]
    network_witness: tuple[int, ...] | None
    truth_agreement: dict[int, float] | None
    truth_witness: tuple[int, ...] | None


def _shortest_witness(tree: PrefixTree, ours: np.ndarray, theirs: np.ndarray, samples):
    """Shortest disagreeing string: in the tree (BFS order) first, else among sampled batches."""
    bad = np.flatnonzero(ours != theirs)
    if len(bad):
        return tree.string(int(bad[0]))
    best = None
    for symbols, a, b in samples:  # (B, T) each
        rows, cols = np.nonzero(a != b)
        if len(rows):
            i = int(np.argmin(cols))
            if best is None or cols[i] + 1 < len(best):
                best = tuple(int(s) for s in symbols[rows[i], : cols[i] + 1])
    return best


def _auto_depth(n_symbols: int, max_nodes: int) -> int:
    depth, total = 0, 1
    while total + n_symbols ** (depth + 1) <= max_nodes:
        depth += 1
        total += n_symbols**depth
        if n_symbols == 1 and depth >= max_nodes - 1:
            break
    return depth


def fidelity(
    machine: Machine,
    model: torch.nn.Module,
    lengths: Sequence[int] = (100, 1000, 10000),
    n_strings: int = 4,
    truth: Machine | None = None,
    brute_force_depth: int | None = None,
    rng: np.random.Generator | None = None,
    device: str | torch.device = "cpu",
) -> Fidelity:
    """Compare `machine` with the network (and `truth`) on short and long strings.

    Every string up to `brute_force_depth` is checked on a prefix tree (shortest first); then
    `n_strings` uniformly sampled strings of each length in `lengths`, run as
    :func:`network_outputs` runs them (one `model.step` per position for a recurrent model, one
    pass otherwise).

    Parameters
    ----------
    machine : Machine
        The extracted machine; its output ids are the network's classes.
    model : torch.nn.Module
        One-step API, already on `device`.
    lengths : sequence of int
        Lengths of the sampled strings.
    n_strings : int
        Strings per length.
    truth : Machine or None
        Ground truth; outputs are matched by label.
    brute_force_depth : int or None
        Check every string up to this length; None picks the largest depth with <= 2**16 strings.
    rng : np.random.Generator or None
        Source of the sampled strings (None: seed 0).

    Returns
    -------
    Fidelity
    """
    rng = np.random.default_rng(0) if rng is None else rng
    depth = brute_force_depth
    if depth is None:
        depth = _auto_depth(machine.n_symbols, 2**16)
    tree = prefix_tree(machine.n_symbols, depth)
    net_tree = probe(model, tree, device=device).outputs  # (N,)
    ours_tree = tree_outputs(machine, tree)  # (N,)
    truth_view = _relabel(machine, truth) if truth is not None else None
    truth_tree = tree_outputs(truth, tree) if truth is not None else None
    mine_tree_t = tree_outputs(truth_view, tree) if truth is not None else None

    net_agree, truth_agree, net_samples, truth_samples = {}, {}, [], []
    for length in lengths:
        symbols = rng.integers(0, machine.n_symbols, size=(n_strings, length))  # (B, T)
        net = network_outputs(model, symbols, device)  # (B, T)
        ours = machine.output_sequence(symbols)  # (B, T)
        net_agree[int(length)] = float((net == ours).mean())
        net_samples.append((symbols, ours, net))
        if truth is not None:
            mine = truth_view.output_sequence(symbols)
            true = truth.output_sequence(symbols)
            truth_agree[int(length)] = float((mine == true).mean())
            truth_samples.append((symbols, mine, true))
    return Fidelity(
        brute_force_depth=depth,
        network_agreement=net_agree,
        network_witness=_shortest_witness(tree, ours_tree, net_tree, net_samples),
        truth_agreement=truth_agree if truth is not None else None,
        truth_witness=(_shortest_witness(tree, mine_tree_t, truth_tree, truth_samples)
                       if truth is not None else None),
    )


@dataclass(frozen=True)
class LengthAccuracy:
    """The network's accuracy against the truth on strings of one length.

    Attributes
    ----------
    length : int
    last_position : float
        Fraction of strings whose output at the last position is right (the paper's measure).
    per_position : float
        Fraction of all positions that are right.
    """

    length: int
    last_position: float
    per_position: float


def network_accuracy(
    model: torch.nn.Module,
    truth_machine: Machine,
    length: int,
    n_strings: int,
    rng: np.random.Generator,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
) -> LengthAccuracy:
    """Accuracy of the network against `truth_machine` on uniformly sampled strings of `length`.

    The network's output classes are compared with the truth's output ids directly (the task's
    output labels are the network's classes).

    Returns
    -------
    LengthAccuracy
    """
    if length < 1 or n_strings < 1:
        raise ValueError(f"length and n_strings must be positive, got {length} and {n_strings}")
    last, positions = 0, 0
    for start in range(0, n_strings, batch_size):
        b = min(batch_size, n_strings - start)
        symbols = rng.integers(0, truth_machine.n_symbols, size=(b, length))  # (B, T)
        correct = network_outputs(model, symbols, device) == truth_machine.output_sequence(symbols)
        last += int(correct[:, -1].sum())
        positions += int(correct.sum())
    return LengthAccuracy(int(length), last / n_strings, positions / (n_strings * length))
