"""Mergers against independent references (a pure-Python leader rule, scipy's single linkage, the
connected components of a brute-force ε-graph in networkx, Lloyd's fixed point for k-means) and
against scikit-learn's estimator conventions (``parametrize_with_checks``)."""

import networkx as nx
import numpy as np
import pytest
import sklearn
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.utils.estimator_checks import check_clustering, parametrize_with_checks

from rnnautomata.merge import MERGERS, KMeansMerger, LeaderMerger, SingleLinkageMerger, epsilon_from_states, make_merger


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


def test_leader_far_apart_rows_each_lead_their_own_group():
    """2000 rows in 50-d (pairwise distances near 10) at epsilon 0.1: every row leads (the many-
    leaders path of the blocked fit, with distance blocks resized as the leaders grow)."""
    X = np.random.default_rng(5).normal(size=(2000, 50))
    merger = LeaderMerger(0.1).fit(X)
    assert merger.n_clusters_ == 2000
    np.testing.assert_array_equal(merger.labels_, np.arange(2000))
    np.testing.assert_array_equal(merger.leaders_, np.arange(2000))


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


# --- a fixed set of hidden states: a random contracting Elman net over every binary string <= 7 --


def elman_states(depth=7, hidden=5, seed=11):
    """(N, hidden) tanh states after each binary string of length <= depth, breadth-first; the
    recurrence contracts (spectral norm 0.5), so long strings with equal suffixes crowd together."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(hidden, hidden))
    W *= 0.5 / np.linalg.norm(W, 2)
    U = rng.normal(size=(2, hidden))
    states, frontier = [np.zeros(hidden)], [np.zeros(hidden)]
    for _ in range(depth):
        frontier = [np.tanh(W @ h + U[s]) for h in frontier for s in (0, 1)]
        states.extend(frontier)
    return np.array(states)


def epsilon_graph_components(X, epsilon):
    """Connected components of the graph linking rows within epsilon (brute force, networkx)."""
    dist = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)  # (N, N)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(X)))
    graph.add_edges_from(zip(*np.nonzero(np.triu(dist <= epsilon, k=1))))
    label = np.empty(len(X), dtype=np.int64)
    for c, members in enumerate(nx.connected_components(graph)):
        label[list(members)] = c
    return canonical(label)


@pytest.mark.parametrize("scale", [0.01, 0.1, 0.5])
def test_epsilon_mergers_on_hidden_states_match_independent_references(scale):
    X = elman_states()  # (255, 5)
    epsilon = epsilon_from_states(X, scale=scale)
    leader = LeaderMerger(epsilon=epsilon).fit(X)
    np.testing.assert_array_equal(leader.labels_, naive_leader(X, epsilon))
    single = SingleLinkageMerger(epsilon=epsilon).fit(X)
    np.testing.assert_array_equal(single.labels_, epsilon_graph_components(X, epsilon))
    assert 1 < single.n_clusters_ <= leader.n_clusters_ < len(X)  # a real merge, not a trivial one


@pytest.mark.parametrize("n_clusters", [2, 4, 8])
def test_kmeans_on_hidden_states_is_a_lloyd_fixed_point(n_clusters):
    """Every row is nearest to its own cluster's mean (Lloyd's algorithm has converged), and the
    labels are sklearn's KMeans with the same seed, renumbered by first appearance."""
    X = elman_states()
    merger = KMeansMerger(n_clusters=n_clusters, random_state=3).fit(X)
    labels = merger.labels_
    assert merger.n_clusters_ == n_clusters and labels[0] == 0
    means = np.array([X[labels == c].mean(0) for c in range(n_clusters)])  # (K, S)
    nearest = np.linalg.norm(X[:, None, :] - means[None], axis=-1).argmin(1)
    np.testing.assert_array_equal(nearest, labels)
    reference = KMeans(n_clusters, random_state=3, n_init=merger.n_init).fit_predict(X)
    np.testing.assert_array_equal(labels, canonical(reference))


# --- scikit-learn's estimator conventions -------------------------------------------------------

def _expected_failed_checks(estimator):
    """The checks that do not apply, with the reason."""
    if isinstance(estimator, (LeaderMerger, SingleLinkageMerger)):
        return {name: "the default epsilon (0.01) is a scale for hidden states; on check_clustering's "
                      "unit-variance blobs nearly every point is its own group, and n_clusters, the "
                      "check's only knob, is not a parameter of an ε merger (test_check_clustering_at_"
                      "a_scaled_epsilon runs it at an epsilon fitted to the data)"
                for name in ("check_clustering",)}
    return {}


_CHECK_OPTIONS = {"xfail_strict": True} if tuple(map(int, sklearn.__version__.split(".")[:2])) >= (1, 8) else {}


@parametrize_with_checks([LeaderMerger(), SingleLinkageMerger(), KMeansMerger(random_state=0)],
                         expected_failed_checks=_expected_failed_checks, **_CHECK_OPTIONS)
def test_sklearn_estimator_conventions(estimator, check):
    check(estimator)


@pytest.mark.parametrize("merger", [LeaderMerger(epsilon=1.0), SingleLinkageMerger(epsilon=0.3)],
                         ids=repr)
def test_check_clustering_at_a_scaled_epsilon(merger):
    """check_clustering (3 standardised blobs, adjusted Rand index > 0.4) with epsilon a fraction of
    the data's unit spread."""
    check_clustering(type(merger).__name__, merger)


def test_estimator_api_params_clone_repr():
    merger = LeaderMerger(epsilon=0.2, block_size=7)
    assert merger.get_params() == {"epsilon": 0.2, "block_size": 7}
    assert repr(merger) == "LeaderMerger(block_size=7, epsilon=0.2)"
    twin = clone(merger)
    assert twin is not merger and twin.get_params() == merger.get_params()
    assert not hasattr(twin, "labels_")
    X = elman_states(depth=4)
    np.testing.assert_array_equal(twin.fit_predict(X), merger.fit(X).labels_)
    assert merger.set_params(epsilon=0.0) is merger and merger.fit(X).n_clusters_ == len(np.unique(X, axis=0))
    kmeans = make_merger("kmeans", n_clusters=3, random_state=np.random.RandomState(0))
    assert set(kmeans.get_params()) == {"n_clusters", "random_state", "n_init"}


def test_init_stores_and_fit_validates():
    """sklearn's rule: __init__ accepts anything; fit raises a one-line ValueError."""
    X = np.zeros((3, 2))
    for merger, field in [(LeaderMerger(epsilon=-1.0), "epsilon"), (LeaderMerger(block_size=0), "block_size"),
                          (SingleLinkageMerger(epsilon=float("nan")), "epsilon")]:
        with pytest.raises(ValueError, match=field) as err:
            merger.fit(X)
        assert "\n" not in str(err.value)
    for bad in (np.zeros(3), np.array([[0.0, np.nan]]), np.zeros((0, 2))):
        with pytest.raises(ValueError) as err:
            LeaderMerger().fit(bad)
        assert "\n" not in str(err.value)
