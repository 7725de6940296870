"""Mergers against independent references: a pure-Python leader rule and scipy's single linkage."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from rnnautomata.merge import (
    MERGERS, KMeansMerger, LeaderMerger, SingleLinkageMerger, epsilon_from_states, make_merger,
)


def naive_leader(X, epsilon):
    """The seed's rule, one point at a time."""
    leaders, labels = [], []
    for x in X:
        for group, leader in enumerate(leaders):
            if np.linalg.norm(x - leader) <= epsilon:
                labels.append(group)
                break
        else:
            labels.append(len(leaders))
            leaders.append(x)
    return np.array(labels)


def canonical(labels):
    """Relabel by first appearance, so equal partitions give equal arrays."""
    mapping = {}
    return np.array([mapping.setdefault(label, len(mapping)) for label in labels])


def blobs(rng, n, dim, n_centres, spread):
    centres = rng.normal(size=(n_centres, dim))
    return centres[rng.integers(0, n_centres, size=n)] + spread * rng.normal(size=(n, dim))


DATASETS = {
    "gaussian": lambda rng: rng.normal(size=(300, 4)),
    "blobs": lambda rng: blobs(rng, 400, 6, 5, 0.05),
    "dense_2d": lambda rng: rng.uniform(size=(500, 2)),
}


@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.3, 1.0, 3.0])
@pytest.mark.parametrize("block_size", [4096, 7])
def test_leader_matches_naive(data, epsilon, block_size):
    X = DATASETS[data](np.random.default_rng(1))
    merger = LeaderMerger(epsilon=epsilon, block_size=block_size).fit(X)
    expected = naive_leader(X, epsilon)
    np.testing.assert_array_equal(merger.labels_, expected)
    assert merger.n_clusters_ == expected.max() + 1
    np.testing.assert_array_equal(merger.leaders_, [np.flatnonzero(expected == g)[0]
                                                    for g in range(merger.n_clusters_)])


@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("epsilon", [0.02, 0.05, 0.3, 1.0])
def test_single_linkage_matches_scipy(data, epsilon):
    X = DATASETS[data](np.random.default_rng(2))
    merger = SingleLinkageMerger(epsilon=epsilon).fit(X)
    expected = fcluster(linkage(X, method="single"), t=epsilon, criterion="distance")
    np.testing.assert_array_equal(merger.labels_, canonical(expected))
    assert merger.n_clusters_ == len(set(expected))


def test_single_linkage_collapses_near_duplicates_exactly():
    rng = np.random.default_rng(3)
    X = blobs(rng, 3000, 3, 40, 0.002)  # tight clusters: many rows share a grid cell
    for epsilon in (0.01, 0.05, 0.2):
        merger = SingleLinkageMerger(epsilon=epsilon).fit(X)
        expected = fcluster(linkage(X, method="single"), t=epsilon, criterion="distance")
        np.testing.assert_array_equal(merger.labels_, canonical(expected))
        assert merger.n_cells_ < len(X)


def test_single_linkage_exact_duplicates_at_zero_epsilon():
    X = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(SingleLinkageMerger(0.0).fit(X).labels_, [0, 0, 1, 0])


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.5])
def test_single_linkage_coarsens_leader(epsilon):
    """Each leader group lies within epsilon of its leader, hence inside one component."""
    X = np.random.default_rng(4).normal(size=(400, 3))
    leader = LeaderMerger(epsilon).fit(X).labels_
    single = SingleLinkageMerger(epsilon).fit(X).labels_
    for group in np.unique(leader):
        assert len(np.unique(single[leader == group])) == 1
    assert single.max() <= leader.max()


def test_leader_many_groups_is_fast_enough():
    X = np.random.default_rng(5).normal(size=(2000, 50))
    merger = LeaderMerger(0.1).fit(X)
    assert merger.n_clusters_ == 2000


def test_kmeans_labels_by_first_appearance():
    X = blobs(np.random.default_rng(6), 200, 3, 3, 0.01)
    merger = KMeansMerger(n_clusters=3, random_state=0).fit(X)
    assert merger.labels_[0] == 0 and merger.n_clusters_ == 3
    np.testing.assert_array_equal(merger.labels_, canonical(merger.labels_))
    np.testing.assert_array_equal(merger.labels_, SingleLinkageMerger(0.5).fit(X).labels_)


def test_epsilon_from_states_is_scaled_std_norm_of_concatenation():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(50, 4)) + 10, rng.normal(size=(30, 4)) * 3
    expected = 0.02 * np.linalg.norm(np.concatenate([a, b]).std(0))
    assert epsilon_from_states([a, b], scale=0.02) == pytest.approx(expected, rel=1e-9)
    assert epsilon_from_states(a) == pytest.approx(0.01 * np.linalg.norm(a.std(0)), rel=1e-9)


def test_registry_and_errors():
    assert set(MERGERS) == {"leader", "single_linkage", "kmeans"}
    assert isinstance(make_merger("leader", epsilon=0.1), LeaderMerger)
    with pytest.raises(ValueError, match="known mergers: kmeans, leader, single_linkage"):
        make_merger("dbscan")
    with pytest.raises(ValueError):
        LeaderMerger(epsilon=-1).fit(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        SingleLinkageMerger(epsilon=0.1).fit(np.zeros(3))
