"""The default extractor: no ε, no ground truth — the network's own behaviour picks the machine.

:func:`extract_robust` runs three steps on one checkpoint:

1. **Consistent merging** (:class:`~rnnautomata.consistent.ConsistentMerger`): the probed
   prefixes' hidden states are merged nearest first, and a merge is kept only if the folded
   quotient still gives every probed prefix the network's own output.
2. **Minimisation** of the quotient machine.
3. **Counterexample-guided refinement** (as Weiss, Goldberg & Yahav 2018 do around L*, here
   around state merging): the machine is run beside the network on ``check_strings`` strings of
   length ``check_length`` (half uniformly random, half starting from a state's access string, as
   AALpy's state-prefix oracle does), every prefix compared. The
   shortest disagreeing prefix is added to the prefix tree, the new prefixes are probed, and
   merging starts again, so the merge that caused the disagreement now conflicts. At most
   ``max_rounds`` rounds, and none once the machine disagrees on at most ``tolerance`` of the
   checked positions.

The result reproduces the network on every probed prefix by construction, and the
``agreement`` it reports is measured on fresh random strings (not the ones used to refine). If
the network itself is wrong, the machine follows the network, not the task: the ground truth is
never consulted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnautomata.automata import Machine
from rnnautomata.consistent import ConsistentMerger
from rnnautomata.extract import Extraction, extract_machine, network_outputs
from rnnautomata.models.base import is_recurrent
from rnnautomata.probe import PrefixTree, ProbeResult, prefix_tree_from_strings, probe

__all__ = ["RefineBudget", "RobustExtraction", "extract_robust", "agreement_with_network", "robust_depth"]

#: most prefixes the robust extractor merges by default (longer strings are checked, not merged)
MAX_NODES = 16384


@dataclass(frozen=True)
class RefineBudget:
    """How much checking and refining :func:`extract_robust` may do.

    Attributes
    ----------
    max_rounds : int
        Refinement rounds (re-probe and re-merge with a counterexample); 0 = check only.
    check_strings : int
        Random strings per check.
    check_length : int
        Length of the checked strings (every prefix of each is compared).
    tolerance : float
        Refinement stops once the machine disagrees with the network on at most this fraction of
        the checked positions. 0 follows every disagreement found (the machine then grows to
        copy each of the network's own errors); the default 1e-3 matches the "99.9 % right"
        bar used for networks, so a network that errs on rare strings is summarised by the
        small machine it almost implements, and the disagreement is reported, not hidden.
    n_neighbors : int
        Nearest neighbours per state among candidate merges (ConsistentMerger).
    """

    max_rounds: int = 5
    check_strings: int = 256
    check_length: int = 50
    tolerance: float = 1e-3
    n_neighbors: int = 8

    @classmethod
    def from_config(cls, extract) -> "RefineBudget":
        """The budget a study's ``[extract]`` section sets (refine_rounds, check_strings,
        check_length, tolerance)."""
        return cls(max_rounds=extract.refine_rounds, check_strings=extract.check_strings,
                   check_length=extract.check_length, tolerance=extract.tolerance)


@dataclass(frozen=True, eq=False)
class RobustExtraction:
    """A machine chosen from the network's behaviour, with how it was found.

    Attributes
    ----------
    machine : Machine
        The minimised machine (states numbered in BFS order from the start): of the refinement
        rounds' machines, the one that agrees best with the network on fresh strings (its
        ``meta["chosen_round"]`` says which).
    extraction : Extraction
        The quotient before minimisation (its ``labels`` are states of the final tree's nodes).
    probe_result : ProbeResult
        The final probed tree (the original tree plus any counterexamples' prefixes).
    n_clusters : int
        States of the quotient before minimisation.
    agreement : float
        Fraction of positions where the machine and the network agree on fresh random strings of
        lengths 1 .. ``check_length`` (a machine falling off an open transition disagrees).
    witness : tuple of int or None
        The shortest disagreeing string found in that fresh check (None: none found).
    rounds : int
        Refinement rounds used.
    counterexamples : list of tuple of int
        The strings added to the tree, in order.
    threshold : float
        Longest candidate-edge distance accepted in the first merging pass (for reference: the ε
        single linkage would have needed; not a setting).
    n_rejected : int
        Merges undone because they mixed outputs (last round).
    seconds : float
        Wall time of the whole extraction.
    """

    machine: Machine
    extraction: Extraction
    probe_result: ProbeResult
    n_clusters: int
    agreement: float
    witness: tuple[int, ...] | None
    rounds: int
    counterexamples: list = field(default_factory=list)
    threshold: float = 0.0
    n_rejected: int = 0
    seconds: float = 0.0

    @property
    def finite(self) -> bool:
        """Every reachable transition of the machine is defined."""
        return self.extraction.finite


def robust_depth(n_symbols: int, depth: int, max_nodes: int = MAX_NODES) -> int:
    """The deepest complete prefix tree, at most `depth`, with at most `max_nodes` nodes.

    >>> robust_depth(2, 10), robust_depth(3, 10), robust_depth(3, 10, max_nodes=100_000)
    (10, 8, 10)
    """
    total, d = 1, 0
    while d < depth and total + n_symbols ** (d + 1) <= max_nodes:
        d += 1
        total += n_symbols**d
    return max(d, 1) if depth >= 1 else 0


def _outputs(model, symbols: np.ndarray, device) -> np.ndarray:
    """(B, T) the network's output class after every symbol, in one forward pass when it can (a
    recurrent model with a fused kernel, or any model without ``step``)."""
    if hasattr(model, "readout_layer") or not is_recurrent(model):
        x = torch.as_tensor(symbols, dtype=torch.long, device=device)  # (B, T)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(x).argmax(-1).cpu().numpy()  # (B, T)
        finally:
            model.train(was_training)
    return network_outputs(model, symbols, device)


def _access_strings(machine: Machine) -> list[tuple[int, ...]]:
    """A shortest string reaching each reachable state (BFS, symbols in order)."""
    access = {machine.start: ()}
    frontier = [machine.start]
    while frontier:
        nxt = []
        for s in frontier:
            for a, t in enumerate(machine.transitions[s].tolist()):
                if t >= 0 and t not in access:
                    access[t] = access[s] + (a,)
                    nxt.append(t)
        frontier = nxt
    return [access[s] for s in sorted(access)]


def _check_strings(machine: Machine, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """(n, length) strings to check: half uniformly random, half starting with a state's access
    string (so that every state of the hypothesis is tested, as AALpy's state-prefix oracle does)."""
    symbols = rng.integers(0, machine.n_symbols, size=(n, length))  # (n, L)
    access = [a for a in _access_strings(machine) if len(a) < length]
    for i in range(n // 2, n):
        a = access[i % len(access)]
        symbols[i, : len(a)] = a
    return symbols


def _disagreement(machine: Machine, model, symbols: np.ndarray, device, start_after: int = 0):
    """(agreeing positions, positions, shortest disagreeing prefix or None) on (B, T) `symbols`."""
    net = _outputs(model, symbols, device)  # (B, T)
    ours = machine.output_sequence(symbols)  # (B, T); -1 once it falls off
    counted = np.arange(1, symbols.shape[1] + 1) > start_after  # positions after unsupervised ones
    same = (net == ours)[:, counted]
    rows, cols = np.nonzero((net != ours) & counted[None, :])
    witness = None
    if len(rows):
        i = int(np.argmin(cols))
        witness = tuple(int(s) for s in symbols[rows[i], : cols[i] + 1])
    return int(same.sum()), int(same.size), witness


def agreement_with_network(machine: Machine, model, n_strings: int = 256, max_length: int = 50,
                           rng: np.random.Generator | None = None, device: str | torch.device = "cpu",
                           unsupervised_below: int = 0) -> tuple[float, tuple[int, ...] | None]:
    """Agreement of `machine` with the network on every prefix of `n_strings` random strings of
    length `max_length` (so on every length 1 .. `max_length`).

    Returns
    -------
    (fraction of agreeing positions, shortest disagreeing string found or None)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    symbols = rng.integers(0, machine.n_symbols, size=(n_strings, max_length))  # (B, T)
    agree, total, witness = _disagreement(machine, model, symbols, device, unsupervised_below)
    return (agree / total if total else 1.0), witness


def _leaf_strings(tree: PrefixTree) -> list[tuple[int, ...]]:
    leaves = np.flatnonzero((tree.children < 0).all(1))
    matrix = tree.symbols_matrix()
    return [tuple(int(s) for s in matrix[i, : tree.depth[i]]) for i in leaves]


def extract_robust(
    model: torch.nn.Module,
    tree: PrefixTree,
    alphabet: Sequence[str],
    outputs: Sequence[str],
    unsupervised_below: int = 0,
    probe_result: ProbeResult | None = None,
    budget: RefineBudget = RefineBudget(),
    rng: np.random.Generator | None = None,
    device: str | torch.device = "cpu",
    lstm_state: str = "h",
) -> RobustExtraction:
    """Extract the machine the network implements, with no ε and no ground truth.

    Parameters
    ----------
    model : torch.nn.Module
        One-step API (docs/contracts.md), already on `device`.
    tree : PrefixTree
        The prefixes to probe (e.g. every string up to the study's probe depth).
    alphabet, outputs : sequence of str
        Symbol and output labels (the network's classes index `outputs`).
    unsupervised_below : int
        Prefixes shorter than this were never trained; their outputs do not count.
    probe_result : ProbeResult or None
        `tree` already probed (saves one probe).
    budget : RefineBudget
        Checking and refinement budget.
    rng : np.random.Generator or None
        Source of the checked strings (None: seed 0).
    lstm_state : str
        For an LSTM, the part of the state whose geometry orders the merges ("h", "c", "hc").

    Returns
    -------
    RobustExtraction
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(0) if rng is None else rng
    pr = probe_result if probe_result is not None else probe(model, tree, device=device, lstm_state=lstm_state)
    extra: list[tuple[int, ...]] = []
    rounds = 0
    candidates = []  # (round, minimal, ext, pr, merger): one per round
    while True:
        t = pr.tree
        voting = t.depth >= unsupervised_below
        merger = ConsistentMerger(t, pr.outputs, voting=voting, n_neighbors=budget.n_neighbors).fit(pr.states)
        ext = extract_machine(pr, merger.labels_, alphabet, outputs, unsupervised_below)
        minimal = ext.machine.minimize()
        candidates.append((rounds, minimal, ext, pr, merger))
        if rounds >= budget.max_rounds:
            break
        symbols = _check_strings(minimal, rng, budget.check_strings, max(budget.check_length, t.max_depth + 1))
        agree, total, witness = _disagreement(minimal, model, symbols, device, unsupervised_below)
        if witness is None or witness in extra or total - agree <= budget.tolerance * total:
            break
        extra.append(witness)
        rounds += 1
        grown = prefix_tree_from_strings(_leaf_strings(tree) + extra, len(alphabet))
        pr = probe(model, grown, device=device, lstm_state=lstm_state)
    # A refinement that fits a network's errors on one string can cost agreement elsewhere (a network
    # that is not quite finite-state): keep the round whose machine agrees best with the network on
    # one common set of fresh strings (ties: fewer states, then the earlier round).
    check_rng = np.random.default_rng(rng.integers(2**63))
    check = check_rng.integers(0, len(alphabet), size=(budget.check_strings, budget.check_length))  # (B, T)
    scored = []
    for cand in candidates:
        agree, total, witness = _disagreement(cand[1], model, check, device, unsupervised_below)
        scored.append(((agree / total if total else 1.0), witness, cand))
    agreement, witness, (chosen, minimal, ext, pr, merger) = max(
        scored, key=lambda x: (x[0], -x[2][1].n_states, -x[2][0]))
    meta = dict(minimal.meta)
    meta.update(method="consistent", n_clusters=int(ext.n_states), refine_rounds=rounds, chosen_round=chosen,
                agreement=agreement, threshold=merger.threshold_)
    return RobustExtraction(
        machine=minimal.replace(meta=meta),
        extraction=ext,
        probe_result=pr,
        n_clusters=int(ext.n_states),
        agreement=float(agreement),
        witness=witness,
        rounds=rounds,
        counterexamples=extra,
        threshold=merger.threshold_,
        n_rejected=merger.n_rejected_,
        seconds=time.perf_counter() - t0,
    )
