"""Congruence of a partition of a prefix tree (rnnautomata.congruence): hand-built labelings with
known answers, and random ones against a brute-force count."""

import doctest

import numpy as np
import pytest

import rnnautomata.congruence as congruence_module
from rnnautomata.congruence import congruence
from rnnautomata.probe import prefix_tree, prefix_tree_from_strings


def brute_force(tree, labels):
    """(fraction, edge_fraction, n_pairs, n_congruent) by dictionaries over every edge."""
    children: dict[tuple[int, int], list[int]] = {}
    for node in range(tree.n_nodes):
        for a in range(tree.n_symbols):
            kid = int(tree.children[node, a])
            if kid >= 0:
                children.setdefault((int(labels[node]), a), []).append(int(labels[kid]))
    ok = {pair: len(set(kids)) == 1 for pair, kids in children.items()}
    n_edges = sum(len(k) for k in children.values())
    good_edges = sum(len(k) for pair, k in children.items() if ok[pair])
    n_pairs, n_ok = len(ok), sum(ok.values())
    return (n_ok / n_pairs if n_pairs else 1.0, good_edges / n_edges if n_edges else 1.0, n_pairs, n_ok)


def test_docstring_example():
    assert doctest.testmod(congruence_module).failed == 0


def test_singletons_and_a_true_machine_are_congruent():
    tree = prefix_tree(2, 5)
    c = congruence(tree, np.arange(tree.n_nodes))
    assert (c.fraction, c.edge_fraction, c.n_congruent) == (1.0, 1.0, c.n_pairs)
    parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
    c = congruence(tree, parity)
    assert (c.fraction, c.edge_fraction, c.n_pairs) == (1.0, 1.0, 4)


def test_moving_one_prefix_breaks_exactly_one_pair():
    tree = prefix_tree(2, 4)
    # cluster 0 = the empty prefix and every string ending in 1, cluster 1 = every string ending in 0:
    # the "last symbol" machine, closed under every symbol
    labels = np.array([0] + [0 if tree.string(i)[-1] == 1 else 1 for i in range(1, tree.n_nodes)])
    assert congruence(tree, labels).fraction == 1.0
    # move "00" into cluster 0: pair (1, 0) now has children "00" (0) and "100", "0100", ... (1);
    # pair (0, 0) gains "000" (1) beside "0", "10", ... (1) and stays congruent; (0, 1) and (1, 1)
    # all go to 0
    node_00 = next(i for i in range(tree.n_nodes) if tree.string(i) == (0, 0))
    labels[node_00] = 0
    c = congruence(tree, labels)
    assert (c.n_pairs, c.n_congruent, c.fraction) == (4, 3, 0.75)
    assert (c.fraction, c.edge_fraction, c.n_pairs, c.n_congruent) == pytest.approx(brute_force(tree, labels))


@pytest.mark.parametrize("seed", range(6))
def test_random_labelings_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_symbols = int(rng.integers(1, 4))
    if seed % 2:
        tree = prefix_tree(n_symbols, int(rng.integers(0, 5)))
    else:
        strings = [rng.integers(0, n_symbols, size=int(rng.integers(0, 7))) for _ in range(12)]
        tree = prefix_tree_from_strings(strings, n_symbols)
    labels = rng.integers(0, int(rng.integers(1, 6)), size=tree.n_nodes) * 3  # sparse ids
    c = congruence(tree, labels)
    assert (c.fraction, c.edge_fraction, c.n_pairs, c.n_congruent) == pytest.approx(brute_force(tree, labels))


def test_bad_labels_are_refused():
    tree = prefix_tree(2, 2)
    with pytest.raises(ValueError, match="7 nodes"):
        congruence(tree, [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        congruence(tree, [-1] * 7)


def test_track_writes_congruence_for_an_rnn_run(tmp_path, tiny_study):
    """Every checkpoint of an RNN run gets the ε rule's congruence (recomputed here from the
    checkpoint) and the ε-free machine's."""
    from rnnautomata.dynamics import track
    from rnnautomata.merge import make_merger
    from rnnautomata.probe import probe
    from rnnautomata.train import load_model, train

    train(tiny_study, tmp_path / "r", progress=False)
    dyn = track(tmp_path / "r", progress=False)
    tree = prefix_tree(2, tiny_study.probe.depth)
    for c in dyn["checkpoints"]:
        model, _ = load_model(tmp_path / "r", c["step"])
        labels = make_merger(dyn["merger"], epsilon=dyn["epsilon"]).fit(probe(model, tree).states).labels_
        assert c["congruence"] == congruence(tree, labels).fraction
        assert 0.0 <= c["robust"]["congruence"] <= 1.0
