"""The merge condition, measured: do Nerode-equivalent prefixes share a hidden state?

Two prefixes are *Nerode-equivalent* under a task when every continuation gives them the same
future outputs. For prefixes (which are reachable by definition) of a *minimal* machine this is
exactly "they end in the same state of the minimal ground-truth machine", so the task's machine
labels every probed prefix with its equivalence class.

Given a partition of the prefixes' hidden states (a merger's ``labels_``), pairs of distinct
prefixes are counted from the (truth class x cluster) contingency table, never enumerated:

- merged pairs    = sum over clusters c of C(n_c, 2)
- equivalent      = sum over truth classes t of C(n_t, 2)
- both            = sum over cells (t, c) of C(n_tc, 2)
- ``precision`` = both / merged (merged pairs that are equivalent; 1.0 when nothing merged),
  ``recall`` = both / equivalent (equivalent pairs that merged; 1.0 when no pair is equivalent).

Distances: the root-mean-square distance within equivalence classes and across them is exact
(from per-class sums: sum_{i<j} |x_i - x_j|^2 = n sum |x_i|^2 - |sum x_i|^2); quantiles, the largest
equivalent distance and the smallest inequivalent distance come from a seeded sample of pairs of
each kind (exact when the tree is small; see :func:`distance_stats`).

Example::

    m = nerode.measure(task.machine, probe_result, labels, epsilon=eps)
    m["precision"], m["recall"], m["distance"]["equivalent"]["max"]
"""

from __future__ import annotations

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.probe import PrefixTree, ProbeResult

__all__ = [
    "truth_classes",
    "pair_counts",
    "distance_stats",
    "measure",
]


def truth_classes(truth: Machine, tree: PrefixTree) -> np.ndarray:
    """The Nerode class of every tree node: its state in the minimal ``truth`` machine.

    Parameters
    ----------
    truth : a complete machine over the tree's alphabet (minimised here, so any machine will do).
    tree : the probed prefix tree.

    Returns
    -------
    (N,) int64 minimal-state id of each node's string.

    Raises
    ------
    ValueError : if the truth machine is not complete or its alphabet size differs from the tree's.
    """
    if truth.n_symbols != tree.n_symbols:
        raise ValueError(f"truth has {truth.n_symbols} symbols but the tree has {tree.n_symbols}")
    if not truth.is_complete():
        raise ValueError("the truth machine must be complete to define Nerode classes")
    minimal = truth.minimize()
    state = np.empty(tree.n_nodes, dtype=np.int64)  # (N,)
    state[0] = minimal.start
    for d in range(1, tree.max_depth + 1):
        nodes = tree.level(d)
        state[nodes] = minimal.transitions[state[tree.parent[nodes]], tree.symbol[nodes]]
    return state


def _pairs(n: np.ndarray) -> int:
    n = n.astype(np.int64)
    return int((n * (n - 1) // 2).sum())


def pair_counts(classes: np.ndarray, labels: np.ndarray) -> dict:
    """Precision and recall of a partition against Nerode classes, by counting pairs.

    Parameters
    ----------
    classes : (N,) truth class of each prefix.
    labels : (N,) cluster of each prefix (any integer ids).

    Returns
    -------
    dict with ``n_pairs``, ``merged_pairs``, ``equivalent_pairs``, ``merged_equivalent_pairs``,
    ``precision``, ``recall``, ``n_classes`` (truth classes present), ``n_clusters``,
    ``clusters_per_class`` (mean number of clusters a class is split into) and
    ``classes_per_cluster`` (mean number of classes a cluster mixes).
    """
    classes = np.asarray(classes).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if classes.shape != labels.shape:
        raise ValueError(f"classes has {classes.size} entries but labels has {labels.size}")
    _, t = np.unique(classes, return_inverse=True)  # (N,) dense truth ids
    _, c = np.unique(labels, return_inverse=True)  # (N,) dense cluster ids
    n_t, n_c = int(t.max()) + 1 if t.size else 0, int(c.max()) + 1 if c.size else 0
    cells, cell_count = np.unique(t * max(n_c, 1) + c, return_counts=True)  # sparse contingency table
    merged = _pairs(np.bincount(c, minlength=n_c))
    equivalent = _pairs(np.bincount(t, minlength=n_t))
    both = _pairs(cell_count)
    n = classes.size
    return {
        "n_pairs": n * (n - 1) // 2,
        "merged_pairs": merged,
        "equivalent_pairs": equivalent,
        "merged_equivalent_pairs": both,
        "precision": both / merged if merged else 1.0,
        "recall": both / equivalent if equivalent else 1.0,
        "n_classes": n_t,
        "n_clusters": n_c,
        "clusters_per_class": len(cells) / n_t if n_t else 0.0,
        "classes_per_cluster": len(cells) / n_c if n_c else 0.0,
    }


def _rms_within_across(X: np.ndarray, classes: np.ndarray) -> tuple[float | None, float | None]:
    """Exact RMS distance over equivalent pairs and over inequivalent pairs."""
    X = X.astype(np.float64)
    sq = (X**2).sum(1)  # (N,)
    n = len(X)
    total = n * sq.sum() - float(np.square(X.sum(0)).sum())  # sum over unordered pairs of |xi - xj|^2
    _, t = np.unique(classes, return_inverse=True)
    k = int(t.max()) + 1
    counts = np.bincount(t, minlength=k).astype(np.float64)  # (k,)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, t, X)  # (k, S)
    within = float((counts * np.bincount(t, weights=sq, minlength=k)).sum() - np.square(sums).sum())
    n_within = float((counts * (counts - 1) / 2).sum())
    n_across = n * (n - 1) / 2 - n_within
    rms_w = float(np.sqrt(max(within, 0.0) / n_within)) if n_within else None
    rms_a = float(np.sqrt(max(total - within, 0.0) / n_across)) if n_across else None
    return rms_w, rms_a


def _sample_pairs(t: np.ndarray, equivalent: bool, n_pairs: int, rng: np.random.Generator):
    """Up to ``n_pairs`` index pairs (i, j), i != j, of equivalent or inequivalent prefixes."""
    n = len(t)
    order = np.argsort(t, kind="stable")
    counts = np.bincount(t)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if equivalent:
        weight = counts * (counts - 1) / 2.0
        if weight.sum() == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        g = rng.choice(len(counts), size=n_pairs, p=weight / weight.sum())  # (P,) class of each pair
        a = rng.integers(0, counts[g])
        b = rng.integers(0, counts[g] - 1)
        b = b + (b >= a)  # distinct members of class g
        return order[offsets[g] + a], order[offsets[g] + b]
    if (counts == n).any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i = rng.integers(0, n, size=4 * n_pairs)
    j = rng.integers(0, n, size=4 * n_pairs)
    keep = np.flatnonzero(t[i] != t[j])[:n_pairs]
    return i[keep], j[keep]


def _all_pairs(n: int):
    i, j = np.triu_indices(n, k=1)
    return i.astype(np.int64), j.astype(np.int64)


def distance_stats(
    states: np.ndarray,
    classes: np.ndarray,
    epsilon: float | None = None,
    max_pairs: int = 200_000,
    rng: np.random.Generator | None = None,
) -> dict:
    """Euclidean distances between equivalent and between inequivalent prefixes' states.

    Parameters
    ----------
    states : (N, S) hidden states.
    classes : (N,) Nerode class of each prefix.
    epsilon : the merge radius; when given, also the fraction of pairs of each kind closer than it.
    max_pairs : when N(N-1)/2 exceeds this, each kind is estimated from ``max_pairs`` sampled pairs
        (``exact`` is then False; ``max`` and ``min`` are sample extremes).
    rng : source of the sampled pairs (None: seed 0).

    Returns
    -------
    dict ``{"exact": bool, "equivalent": {...}, "inequivalent": {...}, "separation": float | None}``;
    each kind holds ``rms`` (exact), ``mean``, ``min``, ``q05``, ``median``, ``q95``, ``max`` and, with
    ``epsilon``, ``within_epsilon``. ``separation`` = smallest inequivalent distance / largest
    equivalent distance: above 1, some ε separates the classes perfectly.
    """
    X = np.asarray(states, dtype=np.float64)  # (N, S)
    classes = np.asarray(classes).reshape(-1)
    _, t = np.unique(classes, return_inverse=True)
    rng = np.random.default_rng(0) if rng is None else rng
    n = len(X)
    exact = n * (n - 1) // 2 <= max_pairs
    rms_w, rms_a = _rms_within_across(X, t)
    out: dict = {"exact": exact}
    if exact:
        i_all, j_all = _all_pairs(n)
        same = t[i_all] == t[j_all]
    for kind, rms in (("equivalent", rms_w), ("inequivalent", rms_a)):
        if exact:
            want = same if kind == "equivalent" else ~same
            i, j = i_all[want], j_all[want]
        else:
            i, j = _sample_pairs(t, kind == "equivalent", max_pairs, rng)
        d = np.linalg.norm(X[i] - X[j], axis=1)  # (P,)
        if not len(d):
            out[kind] = None
            continue
        q05, med, q95 = np.quantile(d, [0.05, 0.5, 0.95])
        entry = {"n_pairs": int(len(d)), "rms": rms, "mean": float(d.mean()), "min": float(d.min()),
                 "q05": float(q05), "median": float(med), "q95": float(q95), "max": float(d.max())}
        if epsilon is not None:
            entry["within_epsilon"] = float((d < epsilon).mean())
        out[kind] = entry
    eq, ineq = out["equivalent"], out["inequivalent"]
    if eq is None or ineq is None:
        out["separation"] = None
    else:
        out["separation"] = float(ineq["min"] / eq["max"]) if eq["max"] > 0 else float("inf")
    return out


def measure(
    truth: Machine,
    probe_result: ProbeResult,
    labels: np.ndarray,
    epsilon: float | None = None,
    max_pairs: int = 200_000,
    rng: np.random.Generator | None = None,
) -> dict:
    """The merge condition at one checkpoint: pair precision/recall plus distance statistics.

    Parameters
    ----------
    truth : the task's ground-truth machine.
    probe_result : the probed tree and its (N, S) states.
    labels : (N,) the merger's cluster of each prefix.
    epsilon, max_pairs, rng : passed to :func:`distance_stats`.

    Returns
    -------
    dict: the keys of :func:`pair_counts` plus ``"distance"`` (:func:`distance_stats`); plain
    JSON-serialisable values.
    """
    classes = truth_classes(truth, probe_result.tree)
    out = pair_counts(classes, labels)
    out["distance"] = distance_stats(probe_result.states, classes, epsilon, max_pairs, rng)
    return out
