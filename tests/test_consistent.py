"""The ε-free extractor on hand-set networks whose machine is known (issue 10's known answers).

Every test's ground truth is a machine built independently of the extractor: seeded random
minimal machines from `random_machine`, and a machine with one deliberately wrong string.
"""

import numpy as np
import pytest
import torch
from torch import nn

from rnnautomata.automata import Machine
from rnnautomata.consistent import ConsistentMerger, FoldPartition, candidate_edges
from rnnautomata.data.regular import random_machine
from rnnautomata.extract import extract_machine, tree_outputs
from rnnautomata.merge import _first_appearance
from rnnautomata.probe import ProbeResult, prefix_tree, probe
from rnnautomata.robust import RefineBudget, agreement_with_network, extract_robust


def truth_states(machine: Machine, tree) -> np.ndarray:
    """(N,) the machine's state after every node's string (brute force, one string at a time)."""
    out = np.empty(tree.n_nodes, dtype=np.int64)
    for i in range(tree.n_nodes):
        s = machine.start
        for a in tree.string(i):
            s = int(machine.transitions[s, a])
        out[i] = s
    return out


def noisy_one_hot(states: np.ndarray, n_states: int, noise: float, rng) -> np.ndarray:
    x = np.eye(n_states)[states]  # (N, n_states)
    return x + noise * rng.standard_normal(x.shape)


def extract_consistent(tree, X, outputs, machine):
    labels = ConsistentMerger(tree, outputs).fit(X).labels_
    return extract_machine(ProbeResult(tree, X.astype(np.float32), outputs), labels, machine.alphabet, machine.outputs)


@pytest.mark.parametrize("seed", range(6))
def test_noisy_one_hot_states_give_the_true_machine(seed):
    n, k, o = [(3, 2, 2), (5, 2, 3), (6, 3, 3), (8, 2, 2), (4, 3, 2), (7, 2, 3)][seed]
    truth = random_machine(n, k, o, np.random.default_rng(seed + 500))
    tree = prefix_tree(k, 9 if k == 2 else 6)
    states = truth_states(truth, tree)
    X = noisy_one_hot(states, n, 0.15, np.random.default_rng(seed))
    ext = extract_consistent(tree, X, truth.output_of_state[states], truth)
    assert ext.finite
    assert ext.transition_agreement == 1.0  # congruent by construction
    assert ext.machine.minimize().equivalent(truth)[0]


def test_one_state_in_two_far_apart_clouds_still_gives_the_true_machine():
    truth = random_machine(4, 2, 2, np.random.default_rng(11))
    tree = prefix_tree(2, 9)
    states = truth_states(truth, tree)
    rng = np.random.default_rng(0)
    X = noisy_one_hot(states, 4, 0.05, rng)
    # prefixes in true state 0 sit in one of two clouds, 10x farther apart than any two states
    cloud = rng.integers(0, 2, tree.n_nodes)
    X = np.hstack([X, np.where(states == 0, 10.0 * cloud, 0.0)[:, None]])
    ext = extract_consistent(tree, X, truth.output_of_state[states], truth)
    assert ext.machine.minimize().equivalent(truth)[0]


def test_output_conflicts_are_never_merged_even_when_states_coincide():
    # every state at one point: geometry says "one state", the outputs (parity) say two
    tree = prefix_tree(2, 6)
    parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    X = np.zeros((tree.n_nodes, 3))
    labels = ConsistentMerger(tree, parity).fit(X).labels_
    assert (np.bincount(labels, weights=parity) * np.bincount(labels, weights=1 - parity) == 0).all()
    ext = extract_machine(ProbeResult(tree, X, parity), labels, ("0", "1"), ("even", "odd"))
    assert ext.machine.minimize().n_states == 2


def test_the_quotient_reproduces_every_probed_output_when_the_network_is_wrong_on_one_string():
    truth = random_machine(5, 2, 2, np.random.default_rng(3))
    tree = prefix_tree(2, 8)
    states = truth_states(truth, tree)
    out = truth.output_of_state[states].copy()
    wrong = int(np.flatnonzero(tree.depth == 5)[7])
    out[wrong] = 1 - out[wrong]  # the "network" errs on one string of length 5
    X = noisy_one_hot(states, 5, 0.05, np.random.default_rng(1))
    ext = extract_consistent(tree, X, out, truth)
    machine = ext.machine.minimize()
    assert (tree_outputs(machine, tree) == out).all()
    same, cex = machine.equivalent(truth)
    assert not same and tuple(cex) == tree.string(wrong)


def test_unsupervised_prefixes_do_not_block_merges():
    tree = prefix_tree(2, 5)
    parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    out = parity.copy()
    out[0] = 1  # untrained empty prefix answers "odd"
    X = np.eye(2)[parity]
    voting = tree.depth >= 1
    labels = ConsistentMerger(tree, out, voting=voting).fit(X).labels_
    assert labels.max() + 1 == 2


def test_fold_partition_undoes_a_rejected_merge():
    tree = prefix_tree(2, 3)
    out = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    part = FoldPartition.from_tree(tree, out)
    before = (list(part.parent), list(part.size), list(part.out), [list(r) for r in part.child])
    assert not part.try_merge(0, 2)  # "" (even) with "1" (odd)
    assert (part.parent, part.size, part.out, part.child) == before
    assert part.try_merge(0, 3)  # "" with "00": both even, and so are all their extensions
    labels = part.labels()
    assert labels[0] == labels[3] and labels[1] == labels[7]  # folded: "0" with "000"


def test_candidate_edges_connect_everything_in_distance_order():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.01, (30, 3)), rng.normal(5, 0.01, (30, 3)), [[0, 0, 0]] * 3])
    a, b, d = candidate_edges(X, n_neighbors=3)
    assert (np.diff(d) >= 0).all()
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    assert connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[0] == 1


class MachineNetwork(nn.Module):
    """A 'network' whose state is the one-hot state of a given machine plus seeded noise."""

    def __init__(self, machine: Machine, noise: float = 0.05, seed: int = 0):
        super().__init__()
        self.machine = machine
        self.n_symbols, self.n_outputs = machine.n_symbols, len(machine.outputs)
        self.state_size = self.hidden_size = machine.n_states
        self.delta = torch.as_tensor(np.array(machine.transitions))
        self.out = torch.as_tensor(np.array(machine.output_of_state))
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def _embed(self, q):  # (B,) -> (B, n)
        x = torch.nn.functional.one_hot(q, self.state_size).float()
        return x + self.noise * torch.randn(x.shape, generator=self.generator)

    def initial_state(self, batch_size):
        return self._embed(torch.full((batch_size,), self.machine.start, dtype=torch.long))

    def step(self, state, symbols):
        return self._embed(self.delta[state.argmax(-1), symbols])

    def readout(self, state):
        return 10.0 * torch.nn.functional.one_hot(self.out[state.argmax(-1)], self.n_outputs).float()


def with_one_wrong_string(truth: Machine, word: tuple[int, ...]) -> Machine:
    """The truth, except that its output after exactly `word` is flipped (a chain of copies)."""
    n, k = truth.n_states, truth.n_symbols
    chain = len(word)  # chain state i (1..len) = "read word[:i] exactly so far"
    trans = np.vstack([truth.transitions, np.zeros((chain, k), dtype=np.int64)])
    outs = np.concatenate([truth.output_of_state, np.zeros(chain, dtype=np.int64)])
    q = truth.start
    start = n + chain  # a fresh start state, copy of the truth's
    trans = np.vstack([trans, truth.transitions[q][None, :]])
    outs = np.append(outs, truth.output_of_state[q])
    prev = start
    for i, a in enumerate(word):
        q = int(truth.transitions[q, a])
        node = n + i
        trans[prev, a] = node
        trans[node] = truth.transitions[q]
        outs[node] = truth.output_of_state[q]
        prev = node
    outs[prev] = 1 - outs[prev]
    return Machine(truth.alphabet, truth.outputs, trans, outs, start).minimize()


def test_robust_extraction_gives_the_networks_machine_not_the_truth():
    truth = random_machine(4, 2, 2, np.random.default_rng(21))
    network_machine = with_one_wrong_string(truth, (1, 0, 1))
    assert not network_machine.equivalent(truth)[0]
    model = MachineNetwork(network_machine)
    res = extract_robust(model, prefix_tree(2, 8), truth.alphabet, truth.outputs)
    assert res.machine.equivalent(network_machine)[0]
    assert res.agreement == 1.0 and res.rounds == 0


def test_refinement_finds_a_disagreement_beyond_the_tree():
    truth = random_machine(3, 2, 2, np.random.default_rng(4))
    network_machine = with_one_wrong_string(truth, (0, 1, 1, 0, 1, 0, 0))  # length 7 > depth 4
    model = MachineNetwork(network_machine)
    tree = prefix_tree(2, 4)
    plain = extract_robust(model, tree, truth.alphabet, truth.outputs, budget=RefineBudget(max_rounds=0))
    assert plain.machine.equivalent(truth)[0]  # the tree alone cannot see the wrong string
    refined = extract_robust(model, tree, truth.alphabet, truth.outputs,
                             budget=RefineBudget(max_rounds=8, check_strings=4096, tolerance=0.0),
                             rng=np.random.default_rng(0))
    assert refined.rounds >= 1
    assert refined.machine.equivalent(network_machine)[0]


def test_agreement_with_network_counts_every_prefix():
    truth = random_machine(3, 2, 2, np.random.default_rng(4))
    model = MachineNetwork(truth)
    assert agreement_with_network(truth, model, n_strings=8, max_length=20) == (1.0, None)
    flipped = truth.replace(output_of_state=1 - truth.output_of_state)
    agree, witness = agreement_with_network(flipped, model, n_strings=8, max_length=20)
    assert agree == 0.0 and len(witness) == 1


def test_robust_extraction_of_a_trained_network(tiny_study, tmp_path):
    from rnnautomata.data import make_task
    from rnnautomata.train import load_model, train

    study = tiny_study
    train(study, tmp_path / "run", progress=False)
    model, info = load_model(tmp_path / "run", "last")
    task = make_task(study.task)
    res = extract_robust(model, prefix_tree(2, 6), task.alphabet, task.outputs, unsupervised_below=1)
    # whatever the tiny network learned, the machine reproduces it on every probed prefix
    pr = probe(model, prefix_tree(2, 6))
    mine = tree_outputs(res.machine, pr.tree)
    assert (mine[1:] == pr.outputs[1:]).all()
    assert res.machine.meta["method"] == "consistent"
    assert _first_appearance(res.extraction.labels)[0] == 0


def test_consistent_merger_is_a_sklearn_estimator():
    """get_params / clone / fit_predict from scikit-learn's base classes; the clone fits alike."""
    from sklearn.base import clone

    tree = prefix_tree(2, 4)
    parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    X = noisy_one_hot(parity, 2, 0.05, np.random.default_rng(0))
    merger = ConsistentMerger(tree, parity, n_neighbors=4)
    params = merger.get_params()
    assert params["tree"] is tree and params["n_neighbors"] == 4 and params["voting"] is None
    twin = clone(merger)
    assert twin is not merger and not hasattr(twin, "labels_")
    labels = twin.fit_predict(X)
    np.testing.assert_array_equal(labels, merger.fit(X).labels_)
    np.testing.assert_array_equal(labels, parity)  # parity's two states, numbered by first appearance
    assert merger.n_features_in_ == 2
