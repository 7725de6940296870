"""Merge-condition measures: known answers, brute-force pair counts, and a whole (tiny) run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnautomata import nerode
from rnnautomata.config import study_from_dict
from rnnautomata.data import regular
from rnnautomata.merge import LeaderMerger
from rnnautomata.probe import ProbeResult, prefix_tree
from rnnautomata.train import train

from conftest import tiny_raw


def _brute_pairs(classes, labels):
    merged = equivalent = both = 0
    for i, j in itertools.combinations(range(len(classes)), 2):
        m, e = labels[i] == labels[j], classes[i] == classes[j]
        merged += m
        equivalent += e
        both += m and e
    return merged, equivalent, both


def test_truth_classes_are_minimal_states_of_each_prefix():
    task = regular.tomita(3)
    tree = prefix_tree(2, 6)
    classes = nerode.truth_classes(task.machine, tree)
    m = task.machine.minimize()
    for node in range(tree.n_nodes):
        state = m.start
        for a in tree.string(node):
            state = m.transitions[state, a]
        assert classes[node] == state


def test_truth_classes_of_a_non_minimal_machine_are_nerode_classes():
    """Two copies of the parity machine (4 states) still give 2 classes."""
    m = regular.streaming_parity().machine
    doubled = m.replace(transitions=np.array([[2, 1], [3, 0], [0, 3], [1, 2]]), output_of_state=np.array([0, 1, 0, 1]))
    classes = nerode.truth_classes(doubled, prefix_tree(2, 5))
    assert set(classes.tolist()) == {0, 1}


def test_pair_counts_known_answer():
    out = nerode.pair_counts(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]))
    assert (out["merged_pairs"], out["equivalent_pairs"], out["merged_equivalent_pairs"]) == (3, 2, 1)
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 2)
    assert out["n_classes"] == 2 and out["n_clusters"] == 2


def test_pair_counts_match_brute_force_on_random_partitions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        classes = rng.integers(0, 4, n)
        labels = rng.integers(0, 6, n) * 11  # arbitrary ids
        merged, equivalent, both = _brute_pairs(classes, labels)
        out = nerode.pair_counts(classes, labels)
        assert (out["merged_pairs"], out["equivalent_pairs"], out["merged_equivalent_pairs"]) == (merged, equivalent, both)
        assert out["n_pairs"] == n * (n - 1) // 2


def test_pair_counts_extremes():
    classes = np.array([0, 0, 1, 2, 2, 2])
    perfect = nerode.pair_counts(classes, classes + 10)
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0
    singletons = nerode.pair_counts(classes, np.arange(6))
    assert singletons["precision"] == 1.0 and singletons["recall"] == 0.0  # nothing merged
    one = nerode.pair_counts(classes, np.zeros(6))
    assert one["recall"] == 1.0 and one["precision"] == pytest.approx(4 / 15)


def test_distance_stats_exact_matches_brute_force():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    classes = rng.integers(0, 3, 30)
    out = nerode.distance_stats(X, classes, epsilon=1.0)
    assert out["exact"]
    eq, ineq = [], []
    for i, j in itertools.combinations(range(30), 2):
        (eq if classes[i] == classes[j] else ineq).append(np.linalg.norm(X[i] - X[j]))
    for kind, d in (("equivalent", eq), ("inequivalent", ineq)):
        d = np.array(d)
        got = out[kind]
        assert got["n_pairs"] == len(d)
        assert got["max"] == pytest.approx(d.max()) and got["min"] == pytest.approx(d.min())
        assert got["rms"] == pytest.approx(np.sqrt((d**2).mean()))
        assert got["within_epsilon"] == pytest.approx((d < 1.0).mean())
    assert out["separation"] == pytest.approx(min(ineq) / max(eq))


def test_distance_stats_sampled_keeps_exact_rms():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 4))
    classes = rng.integers(0, 5, 300)
    exact = nerode.distance_stats(X, classes)
    sampled = nerode.distance_stats(X, classes, max_pairs=2000, rng=np.random.default_rng(0))
    assert exact["exact"] and not sampled["exact"]
    for kind in ("equivalent", "inequivalent"):
        assert sampled[kind]["rms"] == pytest.approx(exact[kind]["rms"])
        assert sampled[kind]["n_pairs"] == 2000
        assert sampled[kind]["median"] == pytest.approx(exact[kind]["median"], rel=0.1)


def test_measure_on_states_that_encode_the_truth():
    """States = the truth state's corner plus small noise: ε merging recovers the classes exactly."""
    task = regular.tomita(4)
    tree = prefix_tree(2, 8)
    classes = nerode.truth_classes(task.machine, tree)
    rng = np.random.default_rng(0)
    states = (np.eye(4)[classes] + 0.01 * rng.normal(size=(tree.n_nodes, 4))).astype(np.float32)
    result = ProbeResult(tree, states, np.zeros(tree.n_nodes, dtype=np.int64))
    labels = LeaderMerger(epsilon=0.2).fit(states).labels_
    out = nerode.measure(task.machine, result, labels, epsilon=0.2)
    assert out["precision"] == 1.0 and out["recall"] == 1.0
    assert out["distance"]["separation"] > 1
    assert out["distance"]["equivalent"]["within_epsilon"] == 1.0
    assert out["distance"]["inequivalent"]["within_epsilon"] == 0.0


def test_nerode_over_run(tmp_path):
    study = study_from_dict(tiny_raw())
    train(study, tmp_path / "run", progress=False)
    from rnnautomata.dynamics import nerode_over_run

    out = nerode_over_run(tmp_path / "run")
    assert out["format"] == "rnnautomata.nerode/1" and out["task"] == "streaming_parity"
    assert out["n_prefixes"] == 31 and out["epsilon"] > 0
    assert len(out["checkpoints"]) >= 2
    for c in out["checkpoints"]:
        assert 0.0 <= c["precision"] <= 1.0 and 0.0 <= c["recall"] <= 1.0
        assert c["n_classes"] == 2
    import json

    json.dumps(out)  # plain data
