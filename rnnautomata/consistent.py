"""Partitions that the network's own behaviour vouches for: merging with a consistency check.

The ε rules of :mod:`rnnautomata.merge` decide from geometry alone, so the partition they give
depends on a scale that has to be chosen, and the right scale differs across tasks, networks
and checkpoints. :class:`ConsistentMerger` uses the geometry only to *order* candidate merges
and lets the network's outputs decide which ones to accept — state merging as in RPNI/EDSM
(Oncina & García 1992; Lang, Pearlmutter & Price 1998), with the hidden-state distance as the
merge order:

1. Start with every node of the probed prefix tree as its own state. Candidate merges are the
   edges of a k-nearest-neighbour graph of the hidden states (plus enough further edges to
   connect it), tried in order of increasing distance (single-linkage order).
2. Merging two states *folds* them: their children under each symbol are merged too,
   recursively, so the quotient stays a deterministic machine (every state has at most one
   successor per symbol). A merge is accepted only if no state of the folded quotient holds
   prefixes with different network outputs; otherwise it is undone. Prefixes whose output the
   network was never trained on (``voting = False``) carry no output and never conflict.
3. A second pass tries to close what is left open: each state with an undefined successor, and
   then every state, is tried against its nearest states by centroid distance.

Every accepted partition reproduces the network's output on every probed prefix, and every
transition it defines is *congruent* (all members' children lie in one state) — by
construction, with no ε. What the probe cannot see (strings longer than the tree) is checked by
:func:`rnnautomata.robust.extract_robust`, which adds counterexamples to the tree and merges
again.

>>> import numpy as np
>>> from rnnautomata.probe import prefix_tree
>>> tree = prefix_tree(2, 3)  # parity: output = number of 1s mod 2
>>> parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)])
>>> states = parity[:, None] + 0.01 * np.arange(tree.n_nodes)[:, None] / tree.n_nodes  # (N, 1)
>>> merger = ConsistentMerger(tree, parity).fit(states)
>>> merger.n_clusters_, merger.labels_[:4].tolist()
(2, [0, 0, 1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator, ClusterMixin

from rnnautomata.merge import _first_appearance
from rnnautomata.probe import PrefixTree

__all__ = ["ConsistentMerger", "FoldPartition", "candidate_edges"]


def candidate_edges(X: np.ndarray, n_neighbors: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate merges: the k-nearest-neighbour graph of X, made connected, by distance.

    Exact duplicates are collapsed first. The kNN graph is joined into one component by the
    minimum spanning tree of its components' representatives (so every pair of points is
    linked through some chain of candidates, as in single linkage).

    Parameters
    ----------
    X : np.ndarray
        (N, S) points.
    n_neighbors : int
        Neighbours per point.

    Returns
    -------
    a, b, distance : np.ndarray
        (E,) endpoints and lengths of the candidate edges, sorted by length (ties by endpoints).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n = len(X)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    rows = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).reshape(-1)  # one key per row
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    uniq = X[first]  # (M, S)
    # duplicates: each row links to the first row with the same state, at distance 0
    dup = np.flatnonzero(first[inverse] != np.arange(n))
    a_list, b_list, d_list = [first[inverse[dup]]], [dup], [np.zeros(len(dup))]
    m = len(uniq)
    if m > 1:
        centred = uniq - uniq.mean(0)  # (M, S)
        src, dst, dd = _knn_edges(centred, min(n_neighbors, m - 1))
        graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m))
        n_comp, comp = connected_components(graph, directed=False)
        if n_comp > 1:  # join the components: MST over their representatives' exact distances
            reps = np.unique(comp, return_index=True)[1]  # (C,) first point of each component
            d2 = _squared_distances(centred[reps], centred[reps])  # (C, C)
            mst = minimum_spanning_tree(np.sqrt(d2) + 1e-300).tocoo()
            src = np.concatenate([src, reps[mst.row]])
            dst = np.concatenate([dst, reps[mst.col]])
            dd = np.concatenate([dd, mst.data])
        a_list.append(first[src])
        b_list.append(first[dst])
        d_list.append(dd)
    a = np.concatenate(a_list).astype(np.int64)
    b = np.concatenate(b_list).astype(np.int64)
    d = np.concatenate(d_list)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo * n + hi, return_index=True)[1]  # first of each (lo, hi) pair, in (lo, hi) order
    lo, hi, d = lo[key], hi[key], d[key]
    order = np.lexsort((hi, lo, d))
    return lo[order], hi[order], d[order]


def _squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(len(A), len(B)) squared Euclidean distances by one matrix product."""
    d2 = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * A @ B.T
    return np.maximum(d2, 0.0)


_KD_MAX_WIDTH = 16  # state widths up to this use the KD-tree for 2048+ points (fast in few dimensions)


def _knn_edges(P: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges from every row of P (M, S) to its k nearest other rows: exact, by blocks of matrix
    products when M is small, else by a KD-tree on principal axes. A KD-tree is also used from
    M = 2048 on when the states are narrow (S ≤ _KD_MAX_WIDTH): at depth 12 of a d_model = 16
    transformer (M = 8191) it takes 0.06 s where the blocks take 1.3-1.5 s (benchmarks/bench_transformer.py)."""
    m = len(P)
    if k < 1:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    if m <= 8192 and (m < 2048 or P.shape[1] > _KD_MAX_WIDTH):
        import torch

        P32 = torch.from_numpy(P.astype(np.float32))  # candidates in single precision; their lengths exactly below
        src, dst = [], []
        for start in range(0, m, 1024):
            block = torch.cdist(P32[start : start + 1024], P32)  # (b, M)
            rows = torch.arange(len(block))
            block[rows, start + rows] = float("inf")  # not itself
            nbr = torch.topk(block, k, dim=1, largest=False, sorted=False).indices  # (b, k)
            src.append(np.repeat(start + rows.numpy(), k))
            dst.append(nbr.reshape(-1).numpy())
        src, dst = np.concatenate(src), np.concatenate(dst).astype(np.int64)
        diff = P[src] - P[dst]  # (E, S)
        return src, dst, np.sqrt(np.einsum("ij,ij->i", diff, diff))
    # rotating to principal axes (an isometry) lets the KD-tree split where the states vary
    _, _, axes = np.linalg.svd(P[:: max(1, m // 4096)], full_matrices=False)
    rotated = P @ axes.T  # (M, r)
    dist, nbr = cKDTree(rotated).query(rotated, k=k + 1)  # (M, k + 1), the first is itself
    src = np.repeat(np.arange(m), k)
    dst, dd = nbr[:, 1:].reshape(-1), dist[:, 1:].reshape(-1)
    ok = dst < m
    return src[ok], dst[ok], dd[ok]


@dataclass
class FoldPartition:
    """A union-find over tree nodes whose classes stay deterministic and output-consistent.

    ``try_merge(u, v)`` merges the classes of nodes u and v, folding their successors, and keeps
    the result only if no class then holds two different outputs. Union by size without path
    compression, so that a rejected fold can be undone from its log.
    """

    parent: list
    size: list
    out: list
    child: list  # per root: list of n_symbols child nodes (-1 = none)

    @classmethod
    def from_tree(cls, tree: PrefixTree, outputs: np.ndarray) -> FoldPartition:
        n = tree.n_nodes
        return cls(list(range(n)), [1] * n, [int(o) for o in outputs],
                   [list(row) for row in tree.children.tolist()])

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            x = parent[x]
        return x

    def try_merge(self, u: int, v: int) -> bool:
        """Merge the classes of u and v with their successors; False (and unchanged) on conflict."""
        parent, size, out, child, find = self.parent, self.size, self.out, self.child, self.find
        log = []  # (root s joined into r, r's previous output, r's previous child row)
        stack = [(u, v)]
        ok = True
        while stack:
            x, y = stack.pop()
            r, s = find(x), find(y)
            if r == s:
                continue
            if size[r] < size[s]:
                r, s = s, r
            o_r, o_s = out[r], out[s]
            if o_r >= 0 and o_s >= 0 and o_r != o_s:
                ok = False
                break
            row_r, row_s = child[r], child[s]
            log.append((s, r, o_r, row_r))
            parent[s] = r
            size[r] += size[s]
            if o_r < 0:
                out[r] = o_s
            new_row = list(row_r)
            for a, cs in enumerate(row_s):
                if cs < 0:
                    continue
                cr = new_row[a]
                if cr < 0:
                    new_row[a] = cs
                else:
                    stack.append((cr, cs))
            child[r] = new_row
        if not ok:
            for s, r, o_r, row_r in reversed(log):
                parent[s] = s
                size[r] -= size[s]
                out[r] = o_r
                child[r] = row_r
        return ok

    def labels(self) -> np.ndarray:
        """(N,) class of every node, numbered by first appearance."""
        find = self.find
        return _first_appearance(np.array([find(i) for i in range(len(self.parent))], dtype=np.int64))


class ConsistentMerger(ClusterMixin, BaseEstimator):
    """Merge hidden states nearest first, keeping only merges the network's outputs allow.

    A scikit-learn estimator like the mergers of :mod:`rnnautomata.merge` (``get_params``,
    ``sklearn.clone``, ``fit_predict``), but it needs the probed tree and the network's outputs, so
    they are parameters given at construction; X must then have one row per tree node, so it is
    not a general clusterer (``parametrize_with_checks`` does not apply). No ε: see the module
    docstring for the algorithm.

    Parameters
    ----------
    tree : PrefixTree
        The probed tree; row i of X is node i's state.
    outputs : array_like of int
        (N,) the network's output class after each node's string.
    voting : array_like of bool or None
        (N,) whether each node's output counts (False: the network was never trained on that
        prefix, so its output is free). None: every node votes.
    n_neighbors : int
        Nearest neighbours per state among the candidate merges.
    n_class_candidates : int
        In the second pass, how many nearest classes (by centroid) each class is tried against.

    Attributes
    ----------
    labels_ : np.ndarray
        (N,) int64 state of every node, numbered by first appearance (node 0's is 0).
    n_clusters_ : int
    n_accepted_ : int
        Merges accepted (each may fold many node pairs).
    n_rejected_ : int
        Merges tried and undone because they would mix outputs.
    n_features_in_ : int
        S, the number of columns seen in fit.
    threshold_ : float
        Length of the longest accepted candidate edge in the first pass (the ε that single
        linkage would have needed to make these merges; reported, never used as a rule).
    """

    def __init__(self, tree: PrefixTree, outputs, voting=None, n_neighbors: int = 8,
                 n_class_candidates: int = 16):
        self.tree = tree
        self.outputs = outputs
        self.voting = voting
        self.n_neighbors = n_neighbors
        self.n_class_candidates = n_class_candidates

    def fit(self, X, y=None) -> ConsistentMerger:
        """Partition the rows of X (N, S), one per tree node; returns self."""
        X = np.asarray(X)
        tree = self.tree
        if X.ndim != 2 or len(X) != tree.n_nodes:
            raise ValueError(f"X must have one row per tree node ({tree.n_nodes}), got shape {X.shape}")
        out = np.asarray(self.outputs, dtype=np.int64).reshape(-1)
        if len(out) != tree.n_nodes:
            raise ValueError(f"outputs has {len(out)} entries but the tree has {tree.n_nodes} nodes")
        if self.voting is not None:
            voting = np.asarray(self.voting, dtype=bool).reshape(-1)
            out = np.where(voting, out, -1)
        part = FoldPartition.from_tree(tree, out)
        a, b, d = candidate_edges(X, self.n_neighbors)
        accepted = rejected = 0
        threshold = 0.0
        find, try_merge = part.find, part.try_merge
        for u, v, dist in zip(a.tolist(), b.tolist(), d.tolist()):
            if find(u) == find(v):
                continue
            if try_merge(u, v):
                accepted += 1
                threshold = dist
            else:
                rejected += 1
        acc2, rej2 = self._close(part, X)
        self.labels_ = part.labels()
        self.n_clusters_ = int(self.labels_.max()) + 1 if len(self.labels_) else 0
        self.n_accepted_ = accepted + acc2
        self.n_rejected_ = rejected + rej2
        self.threshold_ = float(threshold)
        self.n_features_in_ = X.shape[1]
        return self

    def _close(self, part: FoldPartition, X: np.ndarray) -> tuple[int, int]:
        """Second pass: try each class against its nearest classes by centroid, open ones first."""
        accepted = rejected = 0
        for open_only in (True, False):
            labels = part.labels()
            n_classes = int(labels.max()) + 1
            if n_classes < 2:
                break
            counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
            centroid = np.zeros((n_classes, X.shape[1]))
            np.add.at(centroid, labels, X.astype(np.float64))
            centroid /= counts[:, None]
            rep = np.zeros(n_classes, dtype=np.int64)
            rep[labels[::-1]] = np.arange(len(labels))[::-1]  # first node of each class
            if open_only:
                roots = [part.find(int(r)) for r in rep]
                is_open = np.array([min(part.child[r]) < 0 for r in roots])
                todo = np.flatnonzero(is_open)
            else:
                todo = np.arange(n_classes)
            if len(todo) == 0:
                continue
            k = min(self.n_class_candidates + 1, n_classes)
            _, nbr = cKDTree(centroid).query(centroid[todo], k=k)  # (T, k)
            nbr = np.asarray(nbr).reshape(len(todo), -1)
            for c, row in zip(todo.tolist(), nbr.tolist()):
                for other in row:
                    if other == c or other >= n_classes:
                        continue
                    u, v = int(rep[c]), int(rep[other])
                    if part.find(u) == part.find(v):
                        continue
                    if part.try_merge(u, v):
                        accepted += 1
                    else:
                        rejected += 1
        return accepted, rejected
