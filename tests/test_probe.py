"""Prefix trees against itertools enumeration; probed states against naive full rollouts."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rnnautomata.probe import prefix_tree, prefix_tree_from_strings, probe


class TinyElman(nn.Module):
    """A seeded tanh RNN following the one-step API (test double, independent of models/rnn.py)."""

    def __init__(self, n_symbols=3, hidden_size=5, n_outputs=2, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n_symbols, self.n_outputs = n_symbols, n_outputs
        self.hidden_size = self.state_size = hidden_size
        self.W = nn.Parameter(torch.randn(hidden_size, hidden_size, generator=g) / hidden_size**0.5)
        self.U = nn.Parameter(torch.randn(n_symbols, hidden_size, generator=g))
        self.h0 = nn.Parameter(torch.randn(hidden_size, generator=g) * 0.1)
        self.V = nn.Parameter(torch.randn(hidden_size, n_outputs, generator=g))

    def initial_state(self, batch_size):
        return self.h0.expand(batch_size, -1).clone()  # (B, H)

    def step(self, state, symbols):
        return torch.tanh(state @ self.W.T + self.U[symbols])  # (B, H)

    def readout(self, state):
        return state @ self.V  # (B, O)


def brute_force_strings(n_symbols, depth):
    return [s for d in range(depth + 1) for s in itertools.product(range(n_symbols), repeat=d)]


@pytest.mark.parametrize("n_symbols,depth", [(2, 0), (2, 5), (3, 4), (1, 3), (4, 2)])
def test_prefix_tree_matches_itertools(n_symbols, depth):
    tree = prefix_tree(n_symbols, depth)
    expected = brute_force_strings(n_symbols, depth)
    assert tree.n_nodes == len(expected)
    assert [tree.string(i) for i in range(tree.n_nodes)] == expected
    index = {s: i for i, s in enumerate(expected)}
    for i, s in enumerate(expected):
        assert tree.depth[i] == len(s)
        assert tree.parent[i] == (index[s[:-1]] if s else -1)
        assert tree.symbol[i] == (s[-1] if s else -1)
        for a in range(n_symbols):
            assert tree.children[i, a] == index.get(s + (a,), -1)
    matrix = tree.symbols_matrix()
    for i, s in enumerate(expected):
        assert tuple(matrix[i, : len(s)]) == s and np.all(matrix[i, len(s):] == -1)


def test_prefix_tree_large_is_sized():
    tree = prefix_tree(2, 19)
    assert tree.n_nodes == 2**20 - 1
    assert tree.level(19) == slice(2**19 - 1, 2**20 - 1)


def test_prefix_tree_from_strings_matches_brute_force():
    rng = np.random.default_rng(0)
    strings = [tuple(rng.integers(0, 3, size=rng.integers(0, 7))) for _ in range(40)]
    tree = prefix_tree_from_strings(strings, n_symbols=3)
    prefixes = sorted({s[:k] for s in strings for k in range(len(s) + 1)} | {()},
                      key=lambda s: (len(s), s))
    assert [tree.string(i) for i in range(tree.n_nodes)] == [tuple(map(int, p)) for p in prefixes]
    index = {tuple(map(int, p)): i for i, p in enumerate(prefixes)}
    for s, i in index.items():
        for a in range(3):
            assert tree.children[i, a] == index.get(s + (a,), -1)
    with pytest.raises(ValueError):
        prefix_tree_from_strings([(0, 3)], n_symbols=3)


def test_prefix_tree_from_full_enumeration_equals_prefix_tree():
    full = prefix_tree(2, 4)
    strings = list(itertools.product(range(2), repeat=4))
    for given in (strings, np.array(strings)[::-1]):  # list of tuples, or a (B, T) array
        sampled = prefix_tree_from_strings(given, n_symbols=2)
        for name in ("parent", "symbol", "depth", "children"):
            np.testing.assert_array_equal(getattr(full, name), getattr(sampled, name))


@pytest.mark.parametrize("batch_size", [65536, 3])
def test_probe_equals_naive_rollout(batch_size):
    model = TinyElman()
    model.train()
    tree = prefix_tree(3, 4)
    result = probe(model, tree, batch_size=batch_size)
    assert model.training  # mode restored
    assert result.states.shape == (tree.n_nodes, 5) and result.states.dtype == np.float32
    with torch.no_grad():
        for i in range(tree.n_nodes):
            state = model.initial_state(1)  # (1, H)
            for symbol in tree.string(i):
                state = model.step(state, torch.tensor([symbol]))
            np.testing.assert_allclose(result.states[i], state[0].numpy(), atol=1e-5)
            assert result.outputs[i] == int(model.readout(state).argmax(-1))


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("lstm_state", ["h", "hc"])
def test_one_pass_probe_equals_the_incremental_probe_for_every_rnn(arch, lstm_state):
    """The causal path (prefix_states over the leaves) and the one-step path give the same states
    and outputs, on a full tree and on a sampled tree whose leaves have different lengths."""
    from rnnautomata.models.rnn import RecurrentModel, _init_weights

    torch.manual_seed(0)
    model = RecurrentModel(2, 3, hidden_size=6, arch=arch, nonlinearity="tanh", initial_state=0.3)
    _init_weights(model, "xavier_normal", 1.0, torch.Generator().manual_seed(1))
    rng = np.random.default_rng(0)
    strings = [rng.integers(0, 2, size=n) for n in rng.integers(1, 8, size=20)]
    for tree in (prefix_tree(2, 6), prefix_tree_from_strings(strings, 2)):
        steps = probe(model, tree, lstm_state=lstm_state)
        one_pass = probe(model, tree, lstm_state=lstm_state, incremental=False, batch_size=17)
        np.testing.assert_allclose(one_pass.states, steps.states, atol=1e-5)
        np.testing.assert_array_equal(one_pass.outputs, steps.outputs)


def test_leaf_below_is_a_descendant_leaf():
    from rnnautomata.probe import leaf_below

    tree = prefix_tree_from_strings([(0, 1, 1), (1,), (0, 0)], 2)
    below = leaf_below(tree)
    for node in range(tree.n_nodes):
        leaf = int(below[node])
        assert (tree.children[leaf] < 0).all()
        assert tree.string(leaf)[: tree.depth[node]] == tree.string(node)
