"""Partitions of hidden states: which prefixes does the network treat as the same state?

Step 2 of DESIGN.md's "Extraction, precisely". Every merger is a scikit-learn estimator
(``ClusterMixin, BaseEstimator``): `__init__` only stores its parameters, `fit(X)` validates them and
X, returns self and sets `labels_` ((N,) ints numbered by first appearance, so row 0's cluster is 0),
`n_clusters_` and `n_features_in_`; `fit_predict`, `get_params`/`set_params`, `sklearn.clone` and
the repr come from scikit-learn. The names are registered in :mod:`rnnautomata.merge_registry`.

>>> import numpy as np
>>> hidden = np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0]])   # (N, H)
>>> merger = LeaderMerger(epsilon=0.05).fit(hidden)
>>> merger.labels_.tolist(), merger.n_clusters_
([0, 0, 1], 2)
>>> merger
LeaderMerger(epsilon=0.05)

Leader versus single linkage at the same epsilon
------------------------------------------------
`LeaderMerger` is the greedy rule of van Rossem & Saxe: in row order, a point joins the first
group whose *leader* (first member) lies within epsilon, else it leads a new group. Each group is
a subset of a ball of radius epsilon about its leader, so every member is an epsilon-neighbour of
the leader, and the whole group lies in one connected component of the epsilon-neighbour graph.
`SingleLinkageMerger` returns exactly those components. Hence the single-linkage partition is a
coarsening of the leader partition and gives *at most* as many clusters. It can give fewer for two
reasons: two points within epsilon of each other may follow different leaders (leader keeps them
apart, single linkage joins them), and single linkage chains, joining points arbitrarily far apart
through a path of epsilon-steps. Leader groups also depend on the row order; components do not.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_array

from rnnautomata.errors import ConfigError
from rnnautomata.merge_registry import MERGERS

__all__ = [
    "MERGERS",
    "KMeansMerger",
    "LeaderMerger",
    "SingleLinkageMerger",
    "epsilon_from_states",
    "make_merger",
    "merger_for",
    "uses_epsilon",
]


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber `labels` (N,) so that clusters are numbered by their first row."""
    if labels.size == 0:
        return labels.astype(np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _as_points(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array (n_points, n_features), got shape {X.shape}")
    return X


def _check_points(X, estimator) -> np.ndarray:
    """X as a finite numeric 2-d array with at least one row (scikit-learn's ``check_array``),
    its error cut to the first line."""
    try:
        return check_array(X, estimator=estimator)
    except ValueError as err:
        raise ValueError(str(err).strip().splitlines()[0]) from err


def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite non-negative number, got {epsilon}")
    return epsilon


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def epsilon_from_states(arrays: np.ndarray | Sequence[np.ndarray], scale: float = 0.01) -> float:
    """One epsilon for a whole trajectory: `scale` x the norm of the per-unit standard deviation.

    Parameters
    ----------
    arrays : array (N, S) or sequence of arrays (N_i, S)
        States, e.g. one probe per checkpoint; statistics are over all rows concatenated.
    scale : float
        Fraction of the spread (the seed uses 0.01).

    Returns
    -------
    float
        scale * || std over rows, per unit ||.
    """
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    total, total_sq, count = 0.0, 0.0, 0
    shift = None
    for a in arrays:
        a = _as_points(a)
        if len(a) and shift is None:  # shift by the first row for a stable one-pass variance
            shift = a[0].astype(np.float64)
        for start in range(0, len(a), 65536):  # chunks keep the float64 copies small
            centred = a[start : start + 65536].astype(np.float64) - shift  # (B, S)
            total = total + centred.sum(0)
            total_sq = total_sq + np.einsum("ij,ij->j", centred, centred)
        count += len(a)
    if count == 0:
        raise ValueError("epsilon_from_states needs at least one state")
    mean = total / count
    variance = np.maximum(total_sq / count - mean**2, 0.0)  # (S,)
    return float(scale * np.sqrt(variance.sum()))


class LeaderMerger(ClusterMixin, BaseEstimator):
    """The greedy leader rule: in row order, join the first group whose leader is within epsilon.

    Distances are Euclidean and "within" means <= epsilon. The fit runs leader by leader: the
    first unassigned row leads a new group, which takes every unassigned row within epsilon of it
    (all later rows, so no earlier leader could claim them). Rows are processed in blocks whose
    distances to all current leaders come from one matrix product, so the cost is
    O(N x n_groups x S) flops in a few hundred vectorised calls when groups are few.

    Parameters
    ----------
    epsilon : float
        Radius of a group about its leader.
    block_size : int
        Rows compared with the leaders at once.

    Attributes
    ----------
    labels_ : np.ndarray
        (N,) int64 group of each row, numbered by first appearance.
    n_clusters_ : int
    leaders_ : np.ndarray
        (n_clusters_,) row index of each group's leader.
    n_features_in_ : int
        S, the number of columns seen in fit.
    """

    def __init__(self, epsilon: float = 0.01, block_size: int = 16384):
        self.epsilon = epsilon
        self.block_size = block_size

    def fit(self, X, y=None) -> LeaderMerger:
        """Group the rows of X (N, S); returns self."""
        X = _check_points(X, self)
        epsilon = _check_epsilon(self.epsilon)
        block_size = _check_positive_int(self.block_size, "block_size")
        n = len(X)
        labels = np.full(n, -1, dtype=np.int64)
        centre = X.mean(0, dtype=np.float64) if n else 0.0  # centring keeps |x|^2 terms small
        leader_rows: list[int] = []
        leaders = np.empty((0, X.shape[1]))  # (L, S) float64
        leader_sq = np.empty(0)  # (L,)
        eps_sq = epsilon**2
        start = 0
        while start < n:
            # Keep the (B, L) distance block near 2**23 entries however many leaders there are.
            rows = max(64, min(block_size, 2**23 // max(len(leader_rows), 1)))
            block = X[start : start + rows].astype(np.float64) - centre  # (B, S)
            block_sq = np.einsum("ij,ij->i", block, block)  # (B,)
            block_labels = np.full(len(block), -1, dtype=np.int64)
            if len(leaders):
                d2 = block @ leaders.T  # (B, L), then in place: |x|^2 + |l|^2 - 2 x.l
                d2 *= -2.0
                d2 += block_sq[:, None]
                d2 += leader_sq[None, :]
                near = d2 <= eps_sq  # (B, L)
                first = near.argmax(1)  # first (oldest) leader within epsilon, if any
                block_labels = np.where(near[np.arange(len(block)), first], first, -1)
            rest = np.flatnonzero(block_labels < 0)
            if len(rest):
                # New leaders among the unclaimed rows of this block, leader by leader.
                points = block[rest]  # (R, S)
                sq = block_sq[rest]
                unassigned = np.ones(len(rest), dtype=bool)
                new_leaders = []
                while unassigned.any():
                    i = int(np.argmax(unassigned))  # first unassigned row leads
                    todo = np.flatnonzero(unassigned)
                    d2 = sq[todo] + sq[i] - 2.0 * points[todo] @ points[i]  # (R_todo,)
                    claimed = todo[d2 <= eps_sq]
                    claimed = np.union1d(claimed, [i])
                    block_labels[rest[claimed]] = len(leader_rows) + len(new_leaders)
                    unassigned[claimed] = False
                    new_leaders.append(i)
                leader_rows.extend(int(start + rest[i]) for i in new_leaders)
                leaders = np.vstack([leaders, points[new_leaders]])
                leader_sq = np.concatenate([leader_sq, sq[new_leaders]])
            labels[start : start + len(block)] = block_labels
            start += len(block)
        # Groups are created in row order of their leaders, which is first-appearance order.
        self.labels_ = labels
        self.n_clusters_ = len(leader_rows)
        self.leaders_ = np.asarray(leader_rows, dtype=np.int64)
        self.n_features_in_ = X.shape[1]
        return self


class SingleLinkageMerger(ClusterMixin, BaseEstimator):
    """Connected components of the epsilon-neighbour graph (edges where distance <= epsilon).

    This equals single-linkage clustering cut at distance epsilon, without an N x N matrix:

    1. Rows falling in the same cell of a grid of side epsilon / sqrt(S) are within epsilon of one
       another, so they are joined at once (cells are hashed; a hash collision is detected and
       the colliding rows kept apart by a second hash). Converged states collapse to a few cells.
    2. Each cell keeps its first row as representative and its radius r (largest distance of a
       member to the representative). Two cells can only be linked if their representatives lie
       within epsilon + 2 max(r); a KD-tree over the representatives, rotated to their principal
       axes (an isometry), finds those candidate pairs. A pair is linked at once
       when the representatives are within epsilon, skipped when they are farther than
       epsilon + r_a + r_b, and otherwise (rare) decided by the exact smallest member distance,
       only if the two cells are not already connected.

    Cost: O(N S) for the grid, plus the KD-tree search over cells, which is fast when the states
    are tight clouds or well separated, and slowest for a loose cloud of many distinct states
    whose spacing is close to epsilon (many candidate pairs).

    Parameters
    ----------
    epsilon : float
        Link distance.

    Attributes
    ----------
    labels_ : np.ndarray
        (N,) int64 component of each row, numbered by first appearance.
    n_clusters_ : int
    n_cells_ : int
        Number of grid cells (near-duplicate groups) after step 1.
    n_features_in_ : int
        S, the number of columns seen in fit.
    """

    def __init__(self, epsilon: float = 0.01):
        self.epsilon = epsilon

    def fit(self, X, y=None) -> SingleLinkageMerger:
        """Group the rows of X (N, S); returns self."""
        X = _check_points(X, self)
        epsilon = _check_epsilon(self.epsilon)
        n, dim = X.shape
        cell = self._cells(X, epsilon)  # (N,) cell id, cells numbered by first row
        n_cells = int(cell.max()) + 1
        order = np.argsort(cell, kind="stable")  # rows grouped by cell, first row first
        bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
        rep_rows = order[bounds[:-1]]  # (C,) first row of each cell
        reps = X[rep_rows].astype(np.float64)  # (C, S)
        radius = np.zeros(n_cells)
        for start in range(0, n, 65536):
            rows = slice(start, start + 65536)
            diff = X[rows].astype(np.float64) - reps[cell[rows]]  # (B, S)
            np.maximum.at(radius, cell[rows], np.sqrt(np.einsum("ij,ij->i", diff, diff)))

        from scipy.sparse.csgraph import connected_components  # here: importing the registry stays light
        from scipy.spatial import cKDTree

        # Rotating to principal axes preserves distances and lets the KD-tree split where the
        # states actually vary.
        centred = reps - reps.mean(0)  # (C, S)
        _, axes = np.linalg.eigh(centred.T @ centred)  # (S, S) ascending variance
        rotated = centred @ axes[:, ::-1]  # (C, S)
        pairs = cKDTree(rotated).query_pairs(
            epsilon + 2.0 * radius.max(), output_type="ndarray")
        a, b = pairs[:, 0], pairs[:, 1]  # (P,)
        gap = np.empty(len(pairs))  # (P,) distance between representatives
        for start in range(0, len(pairs), 65536):
            chunk = slice(start, start + 65536)
            diff = rotated[a[chunk]] - rotated[b[chunk]]  # (B, S)
            gap[chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        sure = gap <= epsilon
        _, component = connected_components(self._graph(a[sure], b[sure], n_cells), directed=False)
        maybe = (~sure) & (gap - radius[a] - radius[b] <= epsilon)
        maybe &= component[a] != component[b]
        # The rare undecided pairs: exact member distances, with a small union-find on top of
        # the components so far to skip pairs that became connected meanwhile.
        root = {}

        def find(c):
            while root.get(c, c) != c:
                c = root[c]
            return c

        extra_a, extra_b = [], []
        for i, j in zip(a[maybe], b[maybe]):
            ci, cj = find(component[i]), find(component[j])
            if ci == cj:
                continue
            members_i = X[order[bounds[i] : bounds[i + 1]]].astype(np.float64)
            members_j = X[order[bounds[j] : bounds[j + 1]]].astype(np.float64)
            if _min_distance(members_i, members_j, epsilon) <= epsilon:
                root[ci] = cj
                extra_a.append(i)
                extra_b.append(j)
        if extra_a:
            graph = self._graph(
                np.concatenate([a[sure], extra_a]), np.concatenate([b[sure], extra_b]), n_cells
            )
            _, component = connected_components(graph, directed=False)
        self.labels_ = _first_appearance(component[cell])
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.n_cells_ = n_cells
        self.n_features_in_ = dim
        return self

    @staticmethod
    def _graph(a, b, n):
        from scipy.sparse import coo_matrix

        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        return coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()

    @staticmethod
    def _cells(X: np.ndarray, epsilon: float) -> np.ndarray:
        """(N,) grid-cell id per row (numbered by first row); cell-mates are within epsilon."""
        n, dim = X.shape
        if epsilon == 0.0:  # only exact duplicates can be joined
            _, inverse = np.unique(X, axis=0, return_inverse=True)
            return _first_appearance(inverse.reshape(-1))
        side = epsilon / np.sqrt(dim)  # a cell's diameter is side * sqrt(dim) = epsilon
        origin = X.min(0).astype(np.float64)
        coeffs = np.random.default_rng(0).integers(1, 2**63, size=(2, dim), dtype=np.uint64) | 1
        hashes = np.empty((2, n), dtype=np.uint64)  # two independent 64-bit hashes of the cell
        for start in range(0, n, 65536):
            chunk = np.subtract(X[start : start + 65536], origin, dtype=np.float64)  # (B, S)
            chunk *= 1.0 / side
            cells = np.floor(chunk, out=chunk).astype(np.int64).view(np.uint64)  # (B, S)
            for k in range(2):
                hashes[k, start : start + 65536] = (cells * coeffs[k]).sum(1)
        _, first, inverse = np.unique(hashes[0], return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # A collision of the first hash shows in the second (missed with probability 2**-64);
        # such rows stand alone rather than join a far-away cell.
        collided = hashes[1] != hashes[1][first[inverse]]
        ids = inverse.copy()
        ids[collided] = len(first) + np.arange(collided.sum())
        return _first_appearance(ids)


def _min_distance(A: np.ndarray, B: np.ndarray, stop_below: float) -> float:
    """Smallest distance between rows of A and B, stopping early once <= stop_below."""
    best = np.inf
    b_sq = np.einsum("ij,ij->i", B, B)
    for start in range(0, len(A), 1024):
        chunk = A[start : start + 1024]  # (b, S)
        d2 = np.einsum("ij,ij->i", chunk, chunk)[:, None] + b_sq[None, :] - 2 * chunk @ B.T
        best = min(best, float(np.sqrt(max(d2.min(), 0.0))))
        if best <= stop_below * (1 - 1e-9):
            return best
    # Near the threshold recompute exactly (no cancellation) for the closest pair.
    if best <= stop_below * (1 + 1e-6):
        return float(min(np.linalg.norm(B - a, axis=1).min() for a in A))
    return best


class KMeansMerger(ClusterMixin, BaseEstimator):
    """k-means with a fixed number of clusters (scikit-learn's KMeans), labels by first appearance.

    Parameters
    ----------
    n_clusters : int
    random_state : int, np.random.RandomState or None
        The randomness of the initialisation, passed to sklearn (a study passes its ``seed``).
    n_init : int
        Restarts.

    Attributes
    ----------
    labels_ : np.ndarray
        (N,) int64 cluster of each row, numbered by first appearance.
    n_clusters_ : int
        Clusters actually used (at most ``n_clusters``).
    n_features_in_ : int
        S, the number of columns seen in fit.
    """

    def __init__(self, n_clusters: int = 2, random_state: int | None = None, n_init: int = 4):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.n_init = n_init

    def fit(self, X, y=None) -> KMeansMerger:
        """Cluster the rows of X (N, S); returns self."""
        from sklearn.cluster import KMeans

        X = _check_points(X, self)
        kmeans = KMeans(self.n_clusters, random_state=self.random_state, n_init=self.n_init)
        self.labels_ = _first_appearance(kmeans.fit_predict(X))
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.n_features_in_ = X.shape[1]
        return self


def make_merger(name: str, **params):
    """Build the merger registered as `name` with keyword `params`.

    Raises
    ------
    ConfigError (a ValueError)
        If `name` is not in MERGERS.
    """
    if name not in MERGERS:
        raise ConfigError(f"unknown merger {name!r}; known mergers: {', '.join(sorted(MERGERS))}")
    return MERGERS[name](**params)


def uses_epsilon(name: str) -> bool:
    """Whether the merger registered as `name` merges within a radius ε (k-means does not)."""
    if name not in MERGERS:
        make_merger(name)  # the one-line error naming the known mergers
    return "epsilon" in inspect.signature(MERGERS[name]).parameters


def merger_for(name: str, extract, epsilon: float, seed: int):
    """The merger `name` as a study's ``[extract]`` section sets it up: radius ``epsilon`` for the
    ε mergers; ``extract.n_clusters`` clusters seeded by the study's ``seed`` for k-means."""
    if uses_epsilon(name):
        return make_merger(name, epsilon=epsilon)
    return make_merger(name, n_clusters=extract.n_clusters, random_state=seed)
