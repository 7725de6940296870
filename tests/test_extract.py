"""Extraction and fidelity on hand-set networks with known answers."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rnnautomata.automata import Machine
from rnnautomata.extract import extract_machine, fidelity, network_accuracy, tree_outputs
from rnnautomata.merge import LeaderMerger, SingleLinkageMerger, epsilon_from_states
from rnnautomata.probe import ProbeResult, prefix_tree, probe

PARITY_TRANSITIONS = np.array([[0, 1], [1, 0]])  # state = parity so far; symbol 1 flips it
PARITY_OUTPUTS = np.array([0, 1])
PARITY = Machine(("0", "1"), ("even", "odd"), PARITY_TRANSITIONS, PARITY_OUTPUTS)


class NoisyParity(nn.Module):
    """State = one-hot parity (padded to 4 units) + small seeded Gaussian noise."""

    n_symbols, n_outputs, hidden_size, state_size = 2, 2, 4, 4

    def __init__(self, noise=1e-4, seed=0):
        super().__init__()
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def _state(self, parity):  # (B,) -> (B, 4)
        state = torch.zeros(len(parity), 4)
        state[torch.arange(len(parity)), parity] = 1.0
        return state + self.noise * torch.randn(state.shape, generator=self.generator)

    def initial_state(self, batch_size):
        return self._state(torch.zeros(batch_size, dtype=torch.long))  # (B, 4)

    def step(self, state, symbols):
        return self._state(state[:, :2].argmax(-1) ^ symbols)  # (B, 4)

    def readout(self, state):
        return 10 * state[:, :2]  # (B, 2)


class Memoriser(nn.Module):
    """State = (base-3 code of the prefix with digits 1, 2; its length): unique per prefix."""

    n_symbols, n_outputs, hidden_size, state_size = 2, 2, 2, 2

    def initial_state(self, batch_size):
        return torch.zeros(batch_size, 2, dtype=torch.float64)  # (B, 2)

    def step(self, state, symbols):
        code = state[:, 0] * 3 + symbols + 1  # (B,)
        return torch.stack([code, state[:, 1] + 1], dim=1)  # (B, 2)

    def readout(self, state):
        odd = state[:, 0].remainder(2)  # (B,)
        return torch.stack([1 - odd, odd], dim=1)  # (B, 2)


@pytest.mark.parametrize("merger", [LeaderMerger, SingleLinkageMerger])
def test_noisy_parity_extracts_exact_parity_machine(merger):
    result = probe(NoisyParity(), prefix_tree(2, 8))
    epsilon = epsilon_from_states(result.states, scale=0.01)
    assert epsilon > 20 * 1e-4  # noise well below epsilon
    labels = merger(epsilon).fit(result.states).labels_
    extraction = extract_machine(result, labels, ("0", "1"), ("even", "odd"))
    assert extraction.n_states == 2 and extraction.finite
    np.testing.assert_array_equal(extraction.machine.transitions, PARITY_TRANSITIONS)
    np.testing.assert_array_equal(extraction.machine.output_of_state, PARITY_OUTPUTS)
    assert extraction.open_states.size == 0
    assert extraction.transition_agreement == 1.0 and extraction.output_agreement == 1.0
    assert extraction.machine.equivalent(PARITY)[0]


def _parity_with_own_start(start_output):
    """A probed depth-6 tree of parity whose empty prefix sits alone (as h0 of a trained RNN does),
    the network answering ``start_output`` there; every other prefix in its parity's cluster."""
    tree = prefix_tree(2, 6)
    parity = np.zeros(tree.n_nodes, dtype=np.int64)
    for d in range(1, tree.max_depth + 1):
        nodes = tree.level(d)
        parity[nodes] = parity[tree.parent[nodes]] ^ tree.symbol[nodes]
    outputs = parity.copy()
    outputs[0] = start_output
    labels = parity + 1
    labels[0] = 0  # the start state: only the empty prefix
    return ProbeResult(tree, np.zeros((tree.n_nodes, 1), np.float32), outputs), labels


@pytest.mark.parametrize("start_output", [0, 1])
def test_unsupervised_empty_prefix_output_is_free(start_output):
    """Trained with target = "last" on lengths >= 1, the network's output at the empty prefix
    was never asked for. Counted, a wrong answer there makes 3 minimal states; free, the start
    takes the output that minimises the machine (parity's 2 states) and meta keeps the network's."""
    result, labels = _parity_with_own_start(start_output)
    counted = extract_machine(result, labels, ("0", "1"), ("even", "odd"))
    assert counted.machine.minimize().n_states == (2 if start_output == 0 else 3)
    assert counted.machine.equivalent(PARITY)[0] == (start_output == 0)
    free = extract_machine(result, labels, ("0", "1"), ("even", "odd"), unsupervised_below=1)
    assert free.machine.output_of_state[0] == 0
    assert free.machine.minimize().n_states == 2 and free.machine.equivalent(PARITY)[0]
    assert free.machine.meta["free_output_states"] == [0]
    assert free.machine.meta["network_output_of_free_states"] == [start_output]
    assert free.output_agreement == pytest.approx(1 - (start_output != 0) / result.tree.n_nodes)


def test_unsupervised_prefix_in_a_supervised_state_does_not_vote():
    """The empty prefix's (unsupervised) answer never outvotes supervised members of its state."""
    tree = prefix_tree(1, 2)  # ε, a, aa: one state
    result = ProbeResult(tree, np.zeros((3, 1), np.float32), np.array([1, 1, 0]))
    assert extract_machine(result, np.zeros(3), ("a",), ("x", "y")).machine.output_of_state.tolist() == [1]
    only = extract_machine(result, np.zeros(3), ("a",), ("x", "y"), unsupervised_below=2)
    assert only.machine.output_of_state.tolist() == [0] and "free_output_states" not in only.machine.meta


def test_memoriser_extracts_the_full_tree():
    tree = prefix_tree(2, 4)
    result = probe(Memoriser(), tree)
    labels = LeaderMerger(0.5).fit(result.states).labels_
    extraction = extract_machine(result, labels, ("0", "1"), ("even", "odd"))
    assert extraction.n_states == 31 and not extraction.finite
    # clusters numbered by first appearance in BFS order = node ids, so the machine is the tree
    np.testing.assert_array_equal(extraction.labels, np.arange(31))
    np.testing.assert_array_equal(extraction.machine.transitions, tree.children)
    np.testing.assert_array_equal(extraction.open_states, np.arange(15, 31))
    np.testing.assert_array_equal(extraction.machine.output_of_state, result.outputs)


def test_majority_transition_with_ties_and_renumbering():
    tree = prefix_tree(1, 4)  # a chain: nodes 0..4
    result = ProbeResult(tree, np.zeros((5, 1), np.float32), np.array([1, 0, 0, 1, 1]))
    # clusters 7 = {0, 2}, 3 = {1, 3}, 9 = {4}: node 0's cluster becomes state 0
    labels = np.array([7, 3, 7, 3, 9])
    extraction = extract_machine(result, labels, ("a",), ("x", "y"))
    np.testing.assert_array_equal(extraction.labels, [0, 1, 0, 1, 2])
    # state 0's members 0 and 2 step to states 1 and 1; state 1's members 1, 3 to 0 and 2 (tie)
    np.testing.assert_array_equal(extraction.machine.transitions[:, 0], [1, 0, -1])
    np.testing.assert_array_equal(extraction.machine.output_of_state, [0, 0, 1])  # tie -> 0
    assert extraction.transition_agreement == 0.75
    assert extraction.finite  # open state 2 is unreachable: the tie went to state 0
    np.testing.assert_array_equal(extraction.support[:, 0], [2, 2, 0])


def test_reachable_open_state_makes_machine_infinite():
    tree = prefix_tree(1, 2)
    result = ProbeResult(tree, np.zeros((3, 1), np.float32), np.zeros(3, dtype=np.int64))
    extraction = extract_machine(result, np.array([0, 1, 2]), ("a",), ("x",))
    assert not extraction.finite and extraction.n_states == 3
    np.testing.assert_array_equal(extraction.open_states, [2])
    closed = extract_machine(result, np.array([0, 0, 0]), ("a",), ("x",))
    assert closed.finite and closed.n_states == 1


def zero_counter_machine():
    """Parity, except that it outputs 'even' when the string has >= 3 zeros and odd parity."""
    transitions, outputs, ids = [], [], {}
    states = [(p, z) for z in range(4) for p in range(2)]
    ids = {s: i for i, s in enumerate(states)}
    for p, z in states:
        transitions.append([ids[(p, min(z + 1, 3))], ids[(1 - p, z)]])
        outputs.append(0 if (z == 3 and p == 1) else p)
    return Machine(("0", "1"), ("even", "odd"), np.array(transitions), np.array(outputs))


def brute_force_first_disagreement(machine, reference, depth):
    for d in range(depth + 1):
        for s in itertools.product(range(2), repeat=d):
            if machine.output_of(s) != reference(s):
                return s
    return None


def test_fidelity_witness_is_shortest():
    machine = zero_counter_machine()
    expected = brute_force_first_disagreement(machine, lambda s: sum(s) % 2, 8)
    assert expected == (0, 0, 0, 1)
    report = fidelity(machine, NoisyParity(noise=0.0), lengths=(50, 200), n_strings=3,
                      truth=PARITY, brute_force_depth=8, rng=np.random.default_rng(0))
    assert report.network_witness == expected and report.truth_witness == expected
    assert 0.0 < report.network_agreement[200] < 1.0
    assert report.network_agreement == report.truth_agreement


def test_fidelity_witness_from_samples_beyond_brute_force_depth():
    machine = zero_counter_machine()
    report = fidelity(machine, NoisyParity(noise=0.0), lengths=(30,), n_strings=4,
                      brute_force_depth=2, rng=np.random.default_rng(1))
    witness = report.network_witness
    assert witness is not None and len(witness) >= 4
    assert machine.output_of(witness) != sum(witness) % 2
    assert all(machine.output_of(witness[:k]) == sum(witness[:k]) % 2 for k in range(len(witness)))


def test_fidelity_perfect_machine():
    report = fidelity(PARITY, NoisyParity(), lengths=(100, 1000), n_strings=2, truth=PARITY,
                      rng=np.random.default_rng(2))
    assert report.network_witness is None and report.truth_witness is None
    assert report.network_agreement == {100: 1.0, 1000: 1.0}
    assert report.brute_force_depth == 15  # 2**16 - 1 strings


def test_tree_outputs_falls_off_open_transitions():
    machine = Machine(("0", "1"), ("even", "odd"), np.array([[0, -1]]), np.array([1]))
    outputs = tree_outputs(machine, prefix_tree(2, 2))  # (), 0, 1, 00, 01, 10, 11
    np.testing.assert_array_equal(outputs, [1, 1, -1, 1, -1, -1, -1])


def test_network_accuracy():
    rng = np.random.default_rng(3)
    perfect = network_accuracy(NoisyParity(), PARITY, length=64, n_strings=20, rng=rng)
    assert perfect.last_position == 1.0 and perfect.per_position == 1.0
    faulty = network_accuracy(NoisyParity(), zero_counter_machine(), length=64, n_strings=300,
                              rng=rng, batch_size=128)
    # with >= 3 zeros (almost surely), the truth outputs 'even' always: the net is right when even
    assert 0.35 < faulty.last_position < 0.65 and faulty.length == 64
